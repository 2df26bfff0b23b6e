//go:build unix

package main_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The real git, rsync, Ansible and pdsh, each pointed at rexec where it
// would run ssh: the lines README's "Using rexec where ssh is expected"
// gives.

// gitEnv keeps git away from the machine's own configuration.
var gitEnv = []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org"}

func TestE2EGitThroughSSHMode(t *testing.T) {
	t.Parallel()
	git := needTool(t, "git")
	c := newClient(t)
	tg := startSSHTarget(t, c, "")
	repo := filepath.Join(tg.home, "my repo.git") // a space in the path
	work := t.TempDir()
	run := func(env []string, dir string, args ...string) string {
		t.Helper()
		r := c.tool(60*time.Second, dir, append(append([]string{}, gitEnv...), env...), "", git, args...)
		require.Equal(t, 0, r.code, "git %s: %s", strings.Join(args, " "), r.stderr)
		return r.stdout + r.stderr
	}
	run(nil, "", "init", "-q", "--bare", "-b", "main", repo)
	src := filepath.Join(work, "src")
	run(nil, "", "init", "-q", "-b", "main", src)
	require.NoError(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("one\n"), 0o644))
	run(nil, src, "add", "a.txt")
	run(nil, src, "commit", "-q", "-m", "one")

	viaCommand := []string{"GIT_SSH_COMMAND=" + filepath.Join(binDir, "rexec") + " --ssh"}
	viaLink := []string{"GIT_SSH=" + filepath.Join(binDir, "ssh")}
	url := "ssh://127.0.0.1:" + tg.port + repo
	// push with GIT_SSH_COMMAND: git probes with -G and picks its ssh variant
	run(viaCommand, src, "push", "-q", url, "main")
	// clone through the link named ssh, protocol v2 through SendEnv=GIT_PROTOCOL
	clone := filepath.Join(work, "clone")
	out := run(append(viaLink, "GIT_TRACE_PACKET=1"), "", "clone", url, clone)
	assert.Contains(t, out, "< version 2", "git spoke protocol v2")
	got, err := os.ReadFile(filepath.Join(clone, "a.txt"))
	require.NoError(t, err)
	assert.Equal(t, "one\n", string(got))
	// a new commit, pushed with the scp-like syntax to an alias of
	// config.toml, fetched into the clone
	require.NoError(t, os.WriteFile(filepath.Join(src, "b.txt"), []byte("two\n"), 0o644))
	run(nil, src, "add", "b.txt")
	run(nil, src, "commit", "-q", "-m", "two")
	run(viaCommand, src, "push", "-q", "box:my repo.git", "main")
	run(viaCommand, clone, "fetch", "-q", "origin")
	head := strings.TrimSpace(run(nil, src, "rev-parse", "HEAD"))
	fetched := strings.TrimSpace(run(nil, clone, "rev-parse", "origin/main"))
	assert.Equal(t, head, fetched)
}

func TestE2ERsyncThroughSSHMode(t *testing.T) {
	t.Parallel()
	rsync := needTool(t, "rsync")
	c := newClient(t)
	tg := startSSHTarget(t, c, "")
	src := filepath.Join(t.TempDir(), "src")
	files := map[string]string{
		"plain.txt":                 "plain\n",
		"with space.txt":            "space\n",
		"中文 名/文件.txt":               "chinese\n",
		"-leading dash":             "dash\n",
		"sub dir/-x/deep file":      "deep\n",
		"sub dir/quote's \"q\".txt": "quotes\n",
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	require.NoError(t, os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644))
	e := filepath.Join(binDir, "rexec") + " --ssh"
	sync := func(args ...string) string {
		t.Helper()
		r := c.tool(60*time.Second, "", nil, "", rsync, append([]string{"-a", "--stats", "-e", e}, args...)...)
		require.Equal(t, 0, r.code, "rsync %s: %s", strings.Join(args, " "), r.stderr)
		return r.stdout
	}
	same := func(dir string) {
		t.Helper()
		for name, body := range files {
			got, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err, name)
			assert.Equal(t, body, string(got), name)
		}
		got, err := os.ReadFile(filepath.Join(dir, "big.bin"))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(big, got), "big.bin arrived whole")
	}
	for _, dest := range []string{"dst 中文 x", "-dash dest"} {
		t.Run(dest, func(t *testing.T) {
			sync(src+"/", "box:"+dest+"/")
			same(filepath.Join(tg.home, dest))
			pulled := filepath.Join(t.TempDir(), "pulled")
			sync("box:"+dest+"/", pulled+"/")
			same(pulled)
			// a second push after a small change sends a delta only
			changed := append([]byte{}, big...)
			copy(changed[500000:], "a change in the middle")
			require.NoError(t, os.WriteFile(filepath.Join(src, "big.bin"), changed, 0o644))
			later := time.Now().Add(time.Hour) // not the same size and time as the copy, for rsync's quick check
			require.NoError(t, os.Chtimes(filepath.Join(src, "big.bin"), later, later))
			defer func() { require.NoError(t, os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644)) }()
			stats := sync(src+"/", "box:"+dest+"/")
			literal := statBytes(t, stats, "Literal data")
			matched := statBytes(t, stats, "Matched data")
			assert.Less(t, literal, int64(64<<10), stats)
			assert.Greater(t, matched, int64(900<<10), stats)
			got, err := os.ReadFile(filepath.Join(tg.home, dest, "big.bin"))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(changed, got), "the changed file arrived whole")
		})
	}
}

// statBytes reads a "Name: 1,234 bytes" line of rsync --stats.
func statBytes(t *testing.T, stats, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(name) + `: ([\d,]+) bytes`).FindStringSubmatch(stats)
	require.NotNil(t, m, "no %q in %s", name, stats)
	n, err := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	require.NoError(t, err)
	return n
}

func TestE2EAnsibleThroughSSHMode(t *testing.T) {
	t.Parallel()
	ansible := needTool(t, "ansible")
	playbook := needTool(t, "ansible-playbook")
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		python = needTool(t, "python3")
	}
	c := newClient(t)
	tg := startSSHTarget(t, c, "")
	dir := t.TempDir()
	plugins, err := filepath.Abs(filepath.Join("..", "..", "clients", "ansible", "connection_plugins"))
	require.NoError(t, err)
	inventories := map[string]string{
		// The stock ssh connection plugin, with rexec called as ssh. Its
		// sftp and scp would run OpenSSH's own programs: files go through
		// rexec with the piped method (dd on the remote side).
		"ssh": fmt.Sprintf("box ansible_host=127.0.0.1 ansible_port=%s ansible_user=%s ansible_ssh_executable=%s ansible_ssh_transfer_method=piped ansible_python_interpreter=%s",
			tg.port, localUser(t), filepath.Join(binDir, "ssh"), python),
		// Our own connection plugin, on the Python client.
		"execd": fmt.Sprintf("box ansible_host=127.0.0.1 ansible_port=%s ansible_connection=execd ansible_python_interpreter=%s", tg.port, python),
		// The plugin with an alias of rexec's config.toml alone (box:
		// its address and port are the config file's), as rexec takes it.
		"alias": fmt.Sprintf("box ansible_connection=execd ansible_python_interpreter=%s", python),
	}
	big := make([]byte, 3<<20+12345)
	for i := range big {
		big[i] = byte(i * 13 % 253)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "play.yml"), []byte(`- hosts: lab
  gather_facts: false
  tasks:
    - name: a file with content
      copy:
        content: "from a playbook\n"
        dest: "{{ dest }}/play.txt"
    - name: read it back
      command: cat "{{ dest }}/play.txt"
      register: out
    - assert:
        that: out.stdout == "from a playbook"
    - name: a failing command is seen as failing
      shell: exit 3
      register: bad
      ignore_errors: true
    - assert:
        that: bad.rc == 3
`), 0o644))
	for _, conn := range []string{"ssh", "execd", "alias"} {
		inv := filepath.Join(dir, conn+".ini")
		require.NoError(t, os.WriteFile(inv, []byte("[lab]\n"+inventories[conn]+"\n"), 0o644))
		for _, pipelining := range []string{"False", "True"} {
			t.Run(conn+"/pipelining="+pipelining, func(t *testing.T) {
				t.Parallel()
				ansibleRun(t, c, conn, pipelining, dir, inv, plugins, ansible, playbook, tg.home, big)
			})
		}
	}
}

// The plugin refuses a daemon whose identity is not the one given: the
// host is unreachable, with the reason.
func TestE2EAnsiblePluginRefusesChangedIdentity(t *testing.T) {
	t.Parallel()
	ansible := needTool(t, "ansible")
	c := newClient(t)
	tg := startSSHTarget(t, c, "")
	plugins, err := filepath.Abs(filepath.Join("..", "..", "clients", "ansible", "connection_plugins"))
	require.NoError(t, err)
	inv := filepath.Join(t.TempDir(), "hosts.ini")
	require.NoError(t, os.WriteFile(inv, fmt.Appendf(nil, "[lab]\nbox ansible_host=127.0.0.1 ansible_port=%s ansible_connection=execd ansible_execd_fingerprint=SHA256:%s\n",
		tg.port, strings.Repeat("A", 43)), 0o644))
	r := c.tool(60*time.Second, "", []string{"ANSIBLE_CONNECTION_PLUGINS=" + plugins, "ANSIBLE_NOCOLOR=1"}, "", ansible, "-i", inv, "lab", "-m", "ping")
	assert.Equal(t, 4, r.code, "ansible's status for an unreachable host: %s %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "UNREACHABLE")
	assert.Contains(t, r.stdout, "is not the expected SHA256:AAAA")
}

// ansibleRun drives ad-hoc modules and a playbook through one connection.
func ansibleRun(t *testing.T, c *client, conn, pipelining, dir, inv, plugins, ansible, playbook, home string, big []byte) {
	env := []string{"ANSIBLE_PIPELINING=" + pipelining, "ANSIBLE_HOST_KEY_CHECKING=False",
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCAL_TEMP=" + filepath.Join(dir, "tmp"),
		"ANSIBLE_CONNECTION_PLUGINS=" + plugins}
	dest := filepath.Join(home, conn+"-p"+pipelining)
	require.NoError(t, os.MkdirAll(dest, 0o755))
	adhoc := func(args ...string) string {
		t.Helper()
		r := c.tool(120*time.Second, dir, env, "", ansible, append([]string{"-i", inv, "lab"}, args...)...)
		require.Equal(t, 0, r.code, "ansible %s: %s %s", strings.Join(args, " "), r.stdout, r.stderr)
		return r.stdout
	}
	assert.Contains(t, adhoc("-m", "ping"), `"ping": "pong"`)
	assert.Regexp(t, `(?s)CHANGED \| rc=0 >>\n.*hello there`, adhoc("-m", "shell", "-a", "echo hello  there | tr -s ' '"))
	adhoc("-m", "copy", "-a", "src="+filepath.Join(dir, "big.bin")+" dest="+dest+"/big.bin")
	got, err := os.ReadFile(filepath.Join(dest, "big.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "copy")
	fetched := filepath.Join(dir, "fetched-"+conn+pipelining)
	adhoc("-m", "fetch", "-a", "src="+dest+"/big.bin dest="+fetched+" flat=yes")
	got, err = os.ReadFile(fetched)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "fetch")
	r := c.tool(120*time.Second, dir, env, "", playbook, "-i", inv, "-e", "dest="+dest, "play.yml")
	require.Equal(t, 0, r.code, "%s %s", r.stdout, r.stderr)
	assert.Regexp(t, `box\s+: ok=5\s+changed=\d+\s+unreachable=0\s+failed=0`, r.stdout)
	assert.Contains(t, r.stdout, "...ignoring")
	// a file outside the home, both ways
	outside := filepath.Join(t.TempDir(), "outside.bin")
	adhoc("-m", "copy", "-a", "src="+filepath.Join(dir, "big.bin")+" dest="+outside)
	got, err = os.ReadFile(outside)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "copy outside the home")
}

func TestE2EPdshThroughSSHMode(t *testing.T) {
	t.Parallel()
	pdsh := needTool(t, "pdsh")
	c := newClient(t)
	startSSHTarget(t, c, "")
	tg2 := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	_, port2, _ := strings.Cut(tg2.addr, ":")
	conf := filepath.Join(c.config, "rexec", "config.toml")
	old, err := os.ReadFile(conf)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(old, "[hosts.box2]\nhost = \"127.0.0.1\"\nport = %s\n", port2), 0o600))
	// pdsh's exec module runs the command line per host with %h replaced
	r := c.tool(60*time.Second, "", nil, "", pdsh, "-R", "exec", "-w", "box,box2",
		filepath.Join(binDir, "ssh"), "%h", "echo", "up;", "exit", "0")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	assert.ElementsMatch(t, []string{"box: up", "box2: up"}, lines)
}
