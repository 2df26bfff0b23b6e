//go:build linux

package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sectionBlocks is every sh block of the section under heading in the
// document file (a path from the module's root), in order.
func sectionBlocks(t *testing.T, file, heading string) []string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", file))
	require.NoError(t, err)
	_, sec, ok := strings.Cut(string(text), "\n"+heading+"\n")
	require.True(t, ok, "%s: %s", file, heading)
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	var blocks []string
	for {
		var block string
		if _, sec, ok = strings.Cut(sec, "```sh\n"); !ok {
			return blocks
		}
		block, sec, _ = strings.Cut(sec, "```")
		blocks = append(blocks, block)
	}
}

// labHosts starts a daemon for each name, serving a home of its own, and
// names it so in c's config.toml, its identity pinned; it returns the
// homes by name.
func labHosts(t *testing.T, c *client, names ...string) map[string]string {
	t.Helper()
	var conf strings.Builder
	homes := map[string]string{}
	for _, name := range names {
		home := t.TempDir()
		homes[name] = home
		d := startDaemon(t, t.TempDir(), "--dir", home)
		host, port, _ := strings.Cut(d.addr, ":")
		fmt.Fprintf(&conf, "[hosts.%s]\nhost = %q\nport = %s\n\n", name, host, port)
		require.Equal(t, 0, c.run("", d.addr, "true").code) // pins it
	}
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"), []byte(conf.String()), 0o600))
	return homes
}

// The README's everyday tasks, every sh block of them, run as written by
// bash (-e, pipefail) in one go, as a new user would paste them, against
// two daemons named lab1 and lab2 in the client's config.toml, with
// connection sharing on as by default. What each printed is checked.
func TestE2EReadmeEveryday(t *testing.T) {
	t.Parallel()
	needTool(t, "rsync") // task 7's example
	blocks := sectionBlocks(t, "README.md", "## Everyday tasks")
	require.GreaterOrEqual(t, len(blocks), 9, "one example for most of the ten tasks")
	script := strings.Join(blocks, "")

	c := newClient(t)
	homes := labHosts(t, c, "lab1", "lab2")
	for i, name := range []string{"lab1", "lab2"} {
		home := homes[name]
		require.NoError(t, os.MkdirAll(filepath.Join(home, "logs"), 0o755))
		var log strings.Builder
		for j := 1; j <= 30; j++ {
			fmt.Fprintf(&log, "%s %s line %d\n", map[bool]string{true: "ERROR", false: "INFO"}[j%6 == 0], name, j)
		}
		require.NoError(t, os.WriteFile(filepath.Join(home, "logs", "app.log"), []byte(log.String()), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(home, "name"), fmt.Appendf(nil, "host-%d\n", i+1), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(home, "build.sh"), []byte("#!/bin/sh\necho building\necho built\n"), 0o755))
	}

	// The user's working directory: what the examples send.
	work := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(work, "notes.txt"), []byte("my notes\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(work, "src", "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(work, "src", "sub", "a.txt"), []byte("synced\n"), 0o644))
	pub, err := os.ReadFile(filepath.Join(c.config, "rexec", "id_ed25519.pub"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(work, "bob.pub"), pub, 0o644))

	run, err := os.MkdirTemp("", "rt") // short: a master's socket path has a limit
	require.NoError(t, err)
	t.Cleanup(func() {
		killMasters(run)
		_ = os.RemoveAll(run)
	})
	bash := exec.Command("bash", "-e", "-o", "pipefail", "-c", script)
	bash.Dir = work
	bash.Env = append(append(os.Environ(), c.env()...), "PATH="+binDir+":"+os.Getenv("PATH"),
		"XDG_RUNTIME_DIR="+run, "REXEC_CONTROL=", "XDG_STATE_HOME="+t.TempDir(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	bash.Stdout, bash.Stderr = &out, &errb
	require.NoError(t, runBounded(bash, 2*time.Minute))
	require.Equal(t, 0, bash.ProcessState.ExitCode(), "script:\n%s\nstdout:\n%s\nstderr:\n%s", script, out.String(), errb.String())

	o := out.String()
	name, _ := os.Hostname()
	for _, want := range []string{
		name + "\n" + "1\n", // uname -n; ls logs | wc -l
		"ERROR lab1 line 6\nERROR lab1 line 12\nERROR lab1 line 18\nERROR lab1 line 24\nERROR lab1 line 30\n", // tail --grep
		"lab1: host-1\n", "lab2: host-2\n", // -H
		"building\nbuilt\n", // attach replays the job's output
	} {
		assert.Contains(t, o, want)
	}
	if sharingHere {
		assert.Regexp(t, regexp.MustCompile(`control master for \S+ running \(pid \d+\)`), o+errb.String())
	}
	assert.Contains(t, o, "bob", "execd user list")
	assert.Contains(t, o, "glued", "the lab's verdicts")

	got, err := os.ReadFile(filepath.Join(work, "app.log"))
	require.NoError(t, err)
	want, _ := os.ReadFile(filepath.Join(homes["lab1"], "logs", "app.log"))
	assert.Equal(t, string(want), string(got), "rexec get")
	got, err = os.ReadFile(filepath.Join(homes["lab1"], "notes.txt"))
	require.NoError(t, err)
	assert.Equal(t, "my notes\n", string(got), "rexec put")
	got, err = os.ReadFile(filepath.Join(homes["lab1"], "dst", "sub", "a.txt"))
	require.NoError(t, err)
	assert.Equal(t, "synced\n", string(got), "rsync through rexec --ssh")
}

// docs/ssh.md's lines for tools that expect ssh, every sh block of its
// section run as written by bash, in order, with the real git, rsync,
// pdsh and ansible-playbook, against daemons named lab1 and lab2.
func TestE2EDocsSSHTools(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"git", "rsync", "pdsh", "ansible-playbook"} {
		needTool(t, tool)
	}
	blocks := sectionBlocks(t, "docs/ssh.md", "## Using rexec where ssh is expected")
	require.Len(t, blocks, 3, "the link, the tools, Ansible")
	script := strings.Join(blocks, "")

	c := newClient(t)
	homes := labHosts(t, c, "lab1", "lab2")
	bare := filepath.Join(homes["lab1"], "my repo.git")
	out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", bare).CombinedOutput()
	require.NoError(t, err, "%s", out)

	work := t.TempDir()
	names := []string{"a b.txt", "中文.txt", "-dash.txt", "sub/deep.txt"}
	for _, n := range names {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(work, "src", n)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(work, "src", n), []byte("content of "+n+"\n"), 0o644))
	}
	abs, err := filepath.Abs(filepath.Join("..", "..", "clients"))
	require.NoError(t, err)
	require.NoError(t, os.Symlink(abs, filepath.Join(work, "clients"))) // the repository's, as from its root
	require.NoError(t, os.WriteFile(filepath.Join(work, "hosts"), []byte("[lab]\nlab1 ansible_connection=execd\nlab2 ansible_connection=execd\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(work, "play.yml"), []byte(`- hosts: lab
  gather_facts: false
  tasks:
    - name: a command
      command: cat name
      register: out
    - assert:
        that: out.stdout == inventory_hostname
`), 0o644))
	for name, home := range homes {
		require.NoError(t, os.WriteFile(filepath.Join(home, "name"), []byte(name+"\n"), 0o644))
	}

	bash := exec.Command("bash", "-e", "-o", "pipefail", "-c", script)
	bash.Dir = work
	bash.Env = append(append(append(os.Environ(), c.env()...), gitEnv...), "PATH="+binDir+":"+os.Getenv("PATH"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCAL_TEMP="+filepath.Join(work, ".ansible-tmp"), "ANSIBLE_HOST_KEY_CHECKING=False")
	var stdout, stderr bytes.Buffer
	bash.Stdout, bash.Stderr = &stdout, &stderr
	require.NoError(t, runBounded(bash, 4*time.Minute))
	require.Equal(t, 0, bash.ProcessState.ExitCode(), "script:\n%s\nstdout:\n%s\nstderr:\n%s", script, stdout.String(), stderr.String())

	log, err := exec.Command("git", "--git-dir", bare, "log", "--format=%s", "main").CombinedOutput()
	require.NoError(t, err, "%s", log)
	assert.Equal(t, "hello\n", string(log), "the commit pushed through rexec --ssh")
	for _, n := range names {
		for _, dir := range []string{filepath.Join(homes["lab1"], "dst 中文 x"), filepath.Join(work, "pulled")} {
			got, err := os.ReadFile(filepath.Join(dir, n))
			require.NoError(t, err)
			assert.Equal(t, "content of "+n+"\n", string(got))
		}
	}
	o := stdout.String()
	t.Logf("the script's output:\n%s", o)
	assert.Regexp(t, `(?m)^lab1: .*load average`, o, "pdsh through the link named ssh")
	assert.Regexp(t, `(?m)^lab2: .*load average`, o)
	assert.Regexp(t, `lab1 +: ok=2 .*failed=0`, o, "the playbook through the execd plugin")
	assert.Regexp(t, `lab2 +: ok=2 .*failed=0`, o)
}
