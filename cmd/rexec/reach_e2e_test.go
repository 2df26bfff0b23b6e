//go:build linux

package main_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// machine is a daemon running as root with users of both kinds, each
// with a key of their own, and throwaway accounts made for the test.
type machine struct {
	t     *testing.T
	d     *daemon
	state string
	base  string // a directory every account may pass through
	keys  map[string]string
	c     *client
}

// needRootAccounts skips where accounts cannot be made (not root).
func needRootAccounts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making accounts and acting as them needs root (CI runs as root)")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("useradd not found")
	}
}

// addAccount makes an OS account (home under base, owned by it, login
// shell bash) and removes it at the end of the test.
func (m *machine) addAccount(prefix string) (name, home string) {
	t := m.t
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	name = prefix + hex.EncodeToString(rnd[:])
	home = filepath.Join(m.base, name)
	out, err := exec.Command("useradd", "-M", "-d", home, "-s", "/bin/bash", "-U", name).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v %s", name, err, out)
		}
	})
	require.NoError(t, os.Mkdir(home, 0o700))
	u, err := user.Lookup(name)
	require.NoError(t, err)
	uid, gid := atoi(t, u.Uid), atoi(t, u.Gid)
	require.NoError(t, os.Chown(home, uid, gid))
	return name, home
}

// admin runs "execd user ..." on the machine's state directory.
func (m *machine) admin(args ...string) string {
	m.t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "execd"), append([]string{"--state-dir", m.state, "--config", os.DevNull, "user"}, args...)...).CombinedOutput()
	require.NoError(m.t, err, string(out))
	return string(out)
}

// addUser adds an execd user logging in with a key of their own.
func (m *machine) addUser(name string, flags ...string) string {
	m.t.Helper()
	key := filepath.Join(m.base, "key-"+name)
	out, err := exec.Command(filepath.Join(binDir, "rexec"), "keygen", "-f", key, "-C", name).CombinedOutput()
	require.NoError(m.t, err, string(out))
	m.keys[name] = key
	return m.admin(append([]string{"add", name, "--no-password", "--add-key", "@" + key + ".pub"}, flags...)...)
}

// as runs rexec as the execd user.
func (m *machine) as(name, stdin string, args ...string) result {
	m.t.Helper()
	return m.c.run(stdin, append([]string{"-i", m.keys[name], "-l", name}, args...)...)
}

func newMachine(t *testing.T) *machine {
	needRootAccounts(t)
	base := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(base), 0o711))
	require.NoError(t, os.Chmod(base, 0o711))
	return &machine{t: t, state: t.TempDir(), base: base, keys: map[string]string{}, c: newClient(t)}
}

// start starts the daemon and pins its identity.
func (m *machine) start(extra ...string) {
	m.d = startDaemon(m.t, m.state, extra...)
	for name := range m.keys {
		r := m.as(name, "", "--argv", m.d.addr, "true")
		require.Contains(m.t, r.stderr, "pinned new host", r.stderr)
		return
	}
}

// TestE2EReach walks issue 28 as a new user would on a daemon running as
// root: the owner reaches /var/log, a confined user keeps the jail, a
// run_as user's file operations meet the kernel's refusals, a user with
// no account never runs as root, the environment is sshd's, and command
// lines run through the login shell.
func TestE2EReach(t *testing.T) {
	m := newMachine(t)
	acct, acctHome := m.addAccount("rxa")
	m.addUser("owner", "--run-as", "root", "--home", m.base)
	out := m.addUser(acct)
	assert.Contains(t, out, "acts as the account "+acct+", home "+acctHome)
	out = m.addUser("ftp", "--allow", "get,put")
	assert.Contains(t, out, "confined to "+filepath.Join(m.state, "home", "ftp"))
	aliceHome := filepath.Join(m.base, "alice")
	m.addUser("alice", "--run-as", "nobody", "--home", aliceHome)
	cmd := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", m.state, "--config", os.DevNull, "user", "add", "nobodyhere", "--no-password", "--add-key", "@"+m.keys["owner"]+".pub")
	warn, err := cmd.CombinedOutput()
	require.NoError(t, err, string(warn))
	assert.Contains(t, string(warn), "warning: user nobodyhere: user nobodyhere has no run_as and this machine has no account nobodyhere")
	m.keys["nobodyhere"] = m.keys["owner"]
	closedHome := filepath.Join(m.base, "closed")
	require.NoError(t, os.Mkdir(closedHome, 0o700)) // root's: nobody may enter
	m.addUser("closed", "--run-as", "nobody", "--home", closedHome)

	// A log only root may read, where logs are: absolute paths.
	logs := filepath.Join(m.base, "var-log")
	require.NoError(t, os.Mkdir(logs, 0o755))
	logFile := filepath.Join(logs, "syslog")
	require.NoError(t, os.WriteFile(logFile, []byte("line one\nline two\n"), 0o600))
	m.start("--path", "/usr/local/bin:/usr/bin:/bin")
	addr := m.d.addr

	t.Run("owner reaches the whole machine", func(t *testing.T) {
		r := m.as("owner", "", "get", addr+":"+logFile, "-")
		assert.Equal(t, result{"line one\nline two\n", "", 0}, r, "get FILE - writes to stdout")
		r = m.as("owner", "", "tail", "-n", "1", addr+":"+logFile)
		assert.Equal(t, "line two\n", r.stdout, r.stderr)
		r = m.as("owner", "", "-C", "/", addr, "pwd")
		assert.Equal(t, result{"/\n", "", 0}, r)
		local := filepath.Join(t.TempDir(), "up.txt")
		require.NoError(t, os.WriteFile(local, []byte("uploaded"), 0o644))
		r = m.as("owner", "", "put", local, addr+":"+logs+"/")
		require.Equal(t, 0, r.code, r.stderr)
		b, err := os.ReadFile(filepath.Join(logs, "up.txt"))
		require.NoError(t, err)
		assert.Equal(t, "uploaded", string(b))
		r = m.as("owner", "", "get", "-r", addr+":"+logs, filepath.Join(t.TempDir(), "copy"))
		assert.Equal(t, 0, r.code, r.stderr)
		// get HOST:<Tab> completes the remote path, as scp's completion does.
		r = m.c.run("", "__complete", "get", "-i", m.keys["owner"], "-l", "owner", addr+":"+logs+"/sy")
		lines := strings.Split(r.stdout, "\n")
		require.GreaterOrEqual(t, len(lines), 2, r.stdout)
		assert.Equal(t, []string{addr + ":" + logFile, ":6"}, lines[:2], "the file, then no space and no local files")
		r = m.c.run("", "__complete", "get", "-i", m.keys["owner"], "-l", "owner", addr+":"+filepath.Dir(logs)+"/var-")
		assert.Contains(t, r.stdout, addr+":"+logs+"/\n", "directories end in /")
	})

	t.Run("a confined user keeps the jail", func(t *testing.T) {
		r := m.as("ftp", "", "get", addr+":"+logFile, t.TempDir())
		assert.Equal(t, 1, r.code)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		assert.Contains(t, r.stderr, "absolute paths are not served to a confined user")
		r = m.as("ftp", "", "get", addr+":../../etc/passwd", t.TempDir())
		assert.Contains(t, r.stderr, "leads outside the served directory")
	})

	t.Run("run_as nobody meets the kernel's refusals", func(t *testing.T) {
		ro := filepath.Join(aliceHome, "ro")
		require.NoError(t, os.Mkdir(ro, 0o755))
		secret := filepath.Join(ro, "secret")
		require.NoError(t, os.WriteFile(secret, []byte("root's"), 0o600))
		dl := t.TempDir()
		r := m.as("alice", "", "get", addr+":ro/secret", dl)
		assert.NotEqual(t, 0, r.code)
		assert.Contains(t, r.stderr, secret+": permission denied")
		assert.NoFileExists(t, filepath.Join(dl, "secret"))
		r = m.as("alice", "", "get", addr+":ro/secret", "-")
		assert.Equal(t, result{"", "rexec: " + secret + ": permission denied\n", 1}, r, "one line, the path once")
		pw := filepath.Join(t.TempDir(), "pw.txt")
		require.NoError(t, os.WriteFile(pw, []byte("replaced"), 0o644))
		r = m.as("alice", "", "put", pw, addr+":ro/secret")
		assert.NotEqual(t, 0, r.code)
		assert.Contains(t, r.stderr, "permission denied")
		b, err := os.ReadFile(secret)
		require.NoError(t, err)
		assert.Equal(t, "root's", string(b), "the file is untouched")
		st, err := os.Stat(secret)
		require.NoError(t, err)
		assert.Equal(t, uint32(0), st.Sys().(*syscall.Stat_t).Uid, "still root's")
		r = m.as("alice", "", addr, "--", "cat", "ro/secret")
		assert.NotEqual(t, 0, r.code)
		assert.Contains(t, r.stderr, "Permission denied")
		// What alice makes is nobody's.
		r = m.as("alice", "", "put", pw, addr+":mine.txt")
		require.Equal(t, 0, r.code, r.stderr)
		st, err = os.Stat(filepath.Join(aliceHome, "mine.txt"))
		require.NoError(t, err)
		nobody, err := user.Lookup("nobody")
		require.NoError(t, err)
		assert.Equal(t, uint32(atoi(t, nobody.Uid)), st.Sys().(*syscall.Stat_t).Uid)
	})

	t.Run("no account, no root", func(t *testing.T) {
		r := m.as("nobodyhere", "", addr, "--", "id", "-u")
		assert.Equal(t, 127, r.code)
		assert.Equal(t, "", r.stdout)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
		assert.Contains(t, r.stderr, "no account nobodyhere")
		r = m.as("nobodyhere", "", "get", addr+":"+logFile, "-")
		assert.NotEqual(t, 0, r.code)
		assert.Contains(t, r.stderr, "no account nobodyhere")
		r = m.as(acct, "", addr, "--", "id", "-un")
		assert.Equal(t, result{acct + "\n", "", 0}, r, "a user of an account's name acts as it")
		check := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", m.state, "--config", os.DevNull, "user", "check")
		out, err := check.CombinedOutput()
		assert.Error(t, err, "a finding fails the check")
		assert.Contains(t, string(out), "user nobodyhere: user nobodyhere has no run_as")
		list := m.admin("list")
		assert.Regexp(t, `(?m)^ftp\s+confined\s`, list)
		assert.Regexp(t, `(?m)^alice\s+as nobody\s`, list)
		assert.Regexp(t, `(?m)^nobodyhere\s+no account\s`, list)
		show := m.admin("show", acct)
		assert.Contains(t, show, "shell:     /bin/bash")
		assert.Contains(t, show, "home:      "+acctHome)
	})

	t.Run("a home the account may not enter is named as the cause", func(t *testing.T) {
		r := m.as("closed", "", addr, "--", "id", "-u")
		assert.Equal(t, 127, r.code)
		assert.Equal(t, "rexec: working directory "+closedHome+": nobody may not enter it (permission denied)\n", r.stderr)
	})

	t.Run("the environment is sshd's, not the daemon's", func(t *testing.T) {
		cmd := m.c.command("-i", m.keys[acct], "-l", acct, addr, "--", "/usr/bin/env")
		cmd.Env = append(slices.DeleteFunc(cmd.Env, func(kv string) bool {
			return strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANGUAGE=")
		}), "LANG=C.UTF-8", "LC_TIME=C")
		b, err := cmd.Output()
		require.NoError(t, err)
		env := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
		var names []string
		for k := range env {
			names = append(names, k)
		}
		slices.Sort(names)
		assert.Equal(t, []string{"HOME", "LANG", "LC_TIME", "LOGNAME", "MAIL", "PATH", "REXEC_CONNECTION", "REXEC_USER", "SHELL", "USER"}, names)
		assert.Equal(t, acctHome, env["HOME"])
		assert.Equal(t, acct, env["USER"])
		assert.Equal(t, acct, env["LOGNAME"])
		assert.Equal(t, "/bin/bash", env["SHELL"])
		assert.Equal(t, "/usr/local/bin:/usr/bin:/bin", env["PATH"], "--path")
		assert.Equal(t, "/var/mail/"+acct, env["MAIL"])
		assert.Equal(t, "C.UTF-8", env["LANG"])
		assert.Regexp(t, `^127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+$`, env["REXEC_CONNECTION"])
		r := m.as(acct, "", "-e", "HOME=/tmp", "-e", "FOO=bar", addr, "--", "sh", "-c", `echo "$HOME $FOO"`)
		assert.Equal(t, acctHome+" bar\n", r.stdout, "a client cannot set HOME; other variables pass")
	})

	t.Run("command lines run through the login shell", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"echo a | tr a b; echo c"}, "b\nc\n"},
			{[]string{"cd /tmp && pwd"}, "/tmp\n"},
			{[]string{"cd", "/tmp", "&&", "pwd"}, "/tmp\n"},
			{[]string{"echo $HOME"}, acctHome + "\n"},
			{[]string{"test -n \"$BASH_VERSION\" && echo bash"}, "bash\n"},
			{[]string{"-s", "echo", "$USER"}, acct + "\n"},
			{[]string{"echo", "a | b"}, "a | b\n"}, // several words: exact argv
		} {
			args := []string{addr}
			if tc.args[0] == "-s" {
				args = []string{"-s", addr}
				tc.args = tc.args[1:]
			}
			r := m.as(acct, "", append(args, tc.args...)...)
			assert.Equal(t, result{tc.want, "", 0}, r, "%q", tc.args)
		}
		r := m.as(acct, "", "--argv", addr, "ls / | wc -l")
		assert.Equal(t, 127, r.code)
		assert.Contains(t, r.stderr, "--argv ran it as one program name")
	})
}

// TestE2EReachConcurrentAccounts: two users acting as two accounts move
// files at once; each file belongs to its own account, and neither can
// read the other's 0600 file, however their operations interleave.
func TestE2EReachConcurrentAccounts(t *testing.T) {
	m := newMachine(t)
	a, aHome := m.addAccount("rxb")
	b, bHome := m.addAccount("rxc")
	m.addUser(a)
	m.addUser(b)
	m.start()
	addr := m.d.addr
	shared := filepath.Join(m.base, "shared")
	require.NoError(t, os.Mkdir(shared, 0o777|os.ModeSticky))
	require.NoError(t, os.Chmod(shared, 0o777|os.ModeSticky))

	src := filepath.Join(t.TempDir(), "data.bin")
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(src, data, 0o644))
	homes := map[string]string{a: aHome, b: bHome}
	for name, home := range homes {
		p := filepath.Join(home, "private.txt")
		require.NoError(t, os.WriteFile(p, []byte("only "+name), 0o600))
		u, err := user.Lookup(name)
		require.NoError(t, err)
		require.NoError(t, os.Chown(p, atoi(t, u.Uid), atoi(t, u.Gid)))
	}

	const rounds = 4
	var wg sync.WaitGroup
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		me, other := pair[0], pair[1]
		wg.Go(func() {
			for i := range rounds {
				dst := fmt.Sprintf("%s/%s-%d.bin", shared, me, i)
				if r := m.as(me, "", "put", src, addr+":"+dst); r.code != 0 {
					t.Errorf("%s put %s: %s", me, dst, r.stderr)
				}
				if r := m.as(me, "", "get", addr+":"+homes[other]+"/private.txt", "-"); r.code == 0 || r.stdout != "" {
					t.Errorf("%s read %s's private file: %q %q", me, other, r.stdout, r.stderr)
				}
				if r := m.as(me, "", "get", addr+":~/private.txt", "-"); r.stdout != "only "+me {
					t.Errorf("%s reads its own file: %q %q", me, r.stdout, r.stderr)
				}
			}
		})
	}
	wg.Wait()
	for _, name := range []string{a, b} {
		u, err := user.Lookup(name)
		require.NoError(t, err)
		for i := range rounds {
			p := fmt.Sprintf("%s/%s-%d.bin", shared, name, i)
			st, err := os.Stat(p)
			require.NoError(t, err)
			sys := st.Sys().(*syscall.Stat_t)
			assert.Equal(t, uint32(atoi(t, u.Uid)), sys.Uid, p)
			assert.Equal(t, uint32(atoi(t, u.Gid)), sys.Gid, p)
			got, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, data, got, p)
		}
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
