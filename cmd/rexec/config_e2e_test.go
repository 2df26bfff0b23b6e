//go:build unix

package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
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
	require.NoError(t, os.WriteFile(filepath.Join(state, "users.toml"), []byte("[users.alice]\nhome = \"/home/alice\"\nallow = [\"exec\"]\n"), 0o600))

	out, code := execdOut(t, "--config", conf, "user", "check")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "users.toml:1: user alice can never log in: no key and no password")
	out, code = execdOut(t, "--config", conf, "user", "set", "alice", "--add-key",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k")
	require.Equal(t, 0, code, out)
	out, code = execdOut(t, "--config", conf, "user", "check")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, filepath.Join(state, "users.toml")+": OK\n", out)
}
