//go:build unix

package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func execdOut(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "execd"), args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return string(out), code
}

// Issue 15 item 4: the configuration file sets what flags do not, flags
// override it, check-config reports every problem with its line, and a
// hangup rereads it: the log level changes at once, the rest is logged
// as waiting for a restart.
func TestE2EConfigFile(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	conf := filepath.Join(t.TempDir(), "execd.toml")
	require.NoError(t, os.WriteFile(conf, []byte(`# execd settings
log-format = "json"
log-level = "warn"
listen = "127.0.0.1:1"
`), 0o600))
	out, code := execdOut(t, "check-config", "--config", conf)
	assert.Equal(t, 0, code, out)
	assert.Equal(t, conf+": OK\n", out)

	d := startDaemon(t, state, "--config", conf) // --listen on the command line wins
	c := newClient(t)
	r := c.run("", d.addr, "echo", "hi")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "hi\n", r.stdout)
	assert.NotContains(t, d.log.String(), `"level":"INFO"`, "log-level from the file: %s", d.log)
	assert.NotContains(t, d.log.String(), "level=", "log-format from the file")

	require.NoError(t, os.WriteFile(conf, []byte("log-format = \"json\"\nlog-level = \"debug\"\nlisten = \"127.0.0.1:2\"\nmax-conns = 5\n"), 0o600))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(d.log.String(), "configuration reloaded") }, 10*time.Second, 10*time.Millisecond, d.log.String())
	assert.Regexp(t, `"msg":"configuration changed; these settings take effect at the next start","settings":\["max-conns"\]`, d.log.String(),
		"listen is the command line's: not a change")
	require.Equal(t, 0, c.run("", d.addr, "true").code)
	require.Eventually(t, func() bool { return strings.Contains(d.log.String(), `"level":"DEBUG"`) }, 10*time.Second, 10*time.Millisecond,
		"debug lines after the reload")

	require.NoError(t, os.WriteFile(conf, []byte("log-level = \"loud\"\n"), 0o600))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(d.log.String(), "configuration file not reloaded") }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, c.run("", d.addr, "true").code, "the daemon serves on with the settings in force")

	require.NoError(t, os.WriteFile(conf, []byte("lisen = \"x\"\n\nkill-grace = 3\nframing = \"sideways\"\n"), 0o600))
	out, code = execdOut(t, "check-config", "--config", conf)
	assert.Equal(t, 1, code)
	assert.Equal(t, conf+`:1: unknown setting "lisen" (did you mean "listen"?)`+"\n"+
		conf+`:3: kill-grace: want a duration with its unit, such as "3s"`+"\n"+
		conf+`:4: framing: want on or off, got "sideways"`+"\n", out)
	out, code = execdOut(t, "--config", conf, "--listen", freeAddr(t), "--state-dir", t.TempDir())
	assert.Equal(t, 2, code, "a daemon does not start on a bad file")
	assert.Contains(t, out, `:1: unknown setting "lisen"`)
	out, code = execdOut(t, "--config", filepath.Join(t.TempDir(), "none.toml"), "--state-dir", t.TempDir())
	assert.Equal(t, 2, code, "a file named on the command line must exist: %s", out)
}

// The user and audit commands find the state directory the configuration
// file names; "execd user check" reports the users database's problems.
func TestE2EConfigStateDirAndUserCheck(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	conf := filepath.Join(t.TempDir(), "execd.toml")
	require.NoError(t, os.WriteFile(conf, []byte("state-dir = \""+state+"\"\n"), 0o600))
	// A record written by hand, with neither key nor password.
	home := filepath.Join(t.TempDir(), "alice")
	require.NoError(t, os.WriteFile(filepath.Join(state, "users.toml"), []byte("[users.alice]\nhome = \""+home+"\"\nallow = [\"exec\"]\n"), 0o600))

	out, code := execdOut(t, "--config", conf, "user", "check")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "users.toml:1: user alice can never log in: no key and no password")
	if os.Geteuid() == 0 {
		assert.Contains(t, out, "users.toml:1: user alice: user alice has no run_as and this machine has no account alice")
	}
	out, code = execdOut(t, "--config", conf, "user", "set", "alice", "--run-as", selfName(t), "--add-key",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k")
	require.Equal(t, 0, code, out)
	out, code = execdOut(t, "--config", conf, "user", "check")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, filepath.Join(state, "users.toml")+": OK\n", out)
}

// Issue 15 item 6: the shipped logrotate snippet, run by logrotate itself
// (its paths pointed at this test's daemon, its postrotate at its pid),
// rotates and compresses the audit log and the log file; the daemon goes
// on in fresh files after the hangup, and "execd audit" reads the
// rotated, gzip-ed and current files as one log, in order.
func TestE2ELogrotateSnippet(t *testing.T) {
	t.Parallel()
	logrotate := needTool(t, "logrotate")
	state := t.TempDir()
	logDir := t.TempDir()
	d := startDaemon(t, state, "--log-file", filepath.Join(logDir, "execd.log"))
	snippet, err := os.ReadFile("../../dist/logrotate/execd")
	require.NoError(t, err)
	conf := strings.NewReplacer(
		"/var/lib/execd/audit.log", filepath.Join(state, "audit.log"),
		"/var/log/execd/*.log", filepath.Join(logDir, "*.log"),
		"systemctl kill --signal=HUP --kill-who=main execd.service", fmt.Sprintf("kill -HUP %d", d.cmd.Process.Pid),
	).Replace(string(snippet))
	require.NotEqual(t, string(snippet), conf)
	confPath := filepath.Join(t.TempDir(), "execd")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o644))
	rotate := func() {
		out, err := exec.Command(logrotate, "-f", "-s", filepath.Join(logDir, "status"), confPath).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	c := newClient(t)
	audit := filepath.Join(state, "audit.log")
	for i, word := range []string{"one", "two", "three"} {
		if i > 0 {
			rotate()
		}
		require.Equal(t, 0, c.run("", d.addr, "echo", word).code)
		require.Eventually(t, func() bool { return fileHas(audit, word) }, 10*time.Second, 10*time.Millisecond,
			"%s in a fresh audit.log after the hangup", word)
	}
	assert.FileExists(t, audit+".1", "delaycompress: the last rotated file stays plain")
	assert.FileExists(t, audit+".2.gz")
	assert.FileExists(t, filepath.Join(logDir, "execd.log.2.gz"))
	assert.True(t, fileHas(filepath.Join(logDir, "execd.log"), "hangup: log files reopened"), "the log file goes on too")

	out, code := execdOut(t, "--state-dir", state, "--config", os.DevNull, "audit", "--event", "exec")
	require.Equal(t, 0, code, out)
	var words []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		for _, w := range []string{`"one"`, `"two"`, `"three"`} {
			if slices.Contains(f, w) {
				words = append(words, w)
			}
		}
	}
	assert.Equal(t, []string{`"one"`, `"two"`, `"three"`}, words, out)
	out, code = execdOut(t, "--state-dir", state, "--config", os.DevNull, "audit", "--event", "exec", "--current")
	require.Equal(t, 0, code, out)
	assert.NotContains(t, out, `"one"`)
	assert.Contains(t, out, `"three"`)
}

// default-run-as: a daemon run as root runs the commands of users without
// run_as as that account, not as root, and gives their files to it.
func TestE2EDefaultRunAs(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching accounts needs root")
	}
	nobody, err := user.Lookup("nobody")
	require.NoError(t, err)
	state := t.TempDir()
	conf := filepath.Join(t.TempDir(), "execd.toml")
	require.NoError(t, os.WriteFile(conf, []byte("default-run-as = \"nobody\"\n"), 0o600))
	d := startDaemon(t, state, "--config", conf)
	c := newClient(t)
	r := c.run("", d.addr, "id", "-un")
	assert.Equal(t, "root\n", r.stdout, "the first start's owner stays themselves: %s", r.stderr)
	// A user added later acts as the default account, in a home of
	// their own under the state directory that belongs to it.
	out, err := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "--config", conf,
		"user", "add", "dan", "--no-password", "--add-key", "@"+filepath.Join(c.config, "rexec", "id_ed25519.pub")).CombinedOutput()
	require.NoError(t, err, string(out))
	home := filepath.Join(state, "home", "dan")
	assert.Contains(t, string(out), "acts as the account nobody, home "+home)
	require.NoError(t, os.Chmod(filepath.Dir(state), 0o711)) // the test's own directory, on the way to it
	r = c.run("", "-l", "dan", d.addr, "id", "-un")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "nobody\n", r.stdout)

	_, port, _ := strings.Cut(d.addr, ":")
	local := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(local, []byte("x"), 0o600))
	r = c.run("", "put", "-q", "-p", port, local, "dan@127.0.0.1:f")
	require.Equal(t, 0, r.code, r.stderr)
	fi, err := os.Stat(filepath.Join(home, "f"))
	require.NoError(t, err)
	assert.Equal(t, uint32(mustAtoi(t, nobody.Uid)), fi.Sys().(*syscall.Stat_t).Uid, "the put file belongs to the account")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// The shipped service definitions start execd with flags it has: the
// launchd plist, read with Python's plistlib (a real plist parser), the
// systemd unit's ExecStart, and the packages' execd.toml, which
// check-config passes.
func TestE2EServiceDefinitions(t *testing.T) {
	t.Parallel()
	python := needTool(t, "python3")
	out, err := exec.Command(python, "-c", `import json, plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
print(json.dumps(p))`, "../../dist/launchd/org.execd.execd.plist").CombinedOutput()
	require.NoError(t, err, string(out))
	var plist struct {
		Label            string
		ProgramArguments []string
		RunAtLoad        bool
		KeepAlive        map[string]bool
	}
	require.NoError(t, json.Unmarshal(out, &plist))
	assert.Equal(t, "org.execd.execd", plist.Label)
	assert.True(t, plist.RunAtLoad)
	assert.Equal(t, map[string]bool{"SuccessfulExit": false}, plist.KeepAlive, "restarted when it fails, not after a clean stop")
	require.Equal(t, "/usr/local/bin/execd", plist.ProgramArguments[0])

	unit, err := os.ReadFile("../../dist/systemd/execd.service")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+)(.*)$`).FindStringSubmatch(string(unit))
	require.NotNil(t, m)
	assert.Equal(t, "/usr/bin/execd", m[1])

	help, code := execdOut(t, "--help")
	require.Equal(t, 0, code)
	for _, args := range [][]string{plist.ProgramArguments[1:], strings.Fields(m[2])} {
		for _, a := range args {
			if strings.HasPrefix(a, "--") {
				assert.Contains(t, help, "  "+a+" ", "execd has the flag %s", a)
			}
		}
	}
	out2, code := execdOut(t, "check-config", "--config", "../../dist/execd.toml")
	assert.Equal(t, 0, code, out2)
}
