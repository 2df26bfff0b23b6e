package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestE2EPythonClient runs the Python reference client's tests against the
// execd binary: TLS with the pinned fingerprint, hello, password login,
// commands, a get, refusals. The golden-frame tests in the same file run
// without a daemon.
func TestE2EPythonClient(t *testing.T) {
	python, err := exec.LookPath("python3")
	require.NoError(t, err, "python3 is needed for the reference client's tests (.ci/run installs it)")
	state := t.TempDir()
	home := t.TempDir()
	d := startDaemon(t, state, "--dir", home)
	add := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "user", "add", "student", "--password-stdin", "--home", home, "--confine", "--run-as", selfName(t))
	add.Stdin = strings.NewReader("lab pass 1\n")
	out, err := add.CombinedOutput()
	require.NoError(t, err, string(out))
	fp, err := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "fingerprint").Output()
	require.NoError(t, err)
	// a user who logs in with a key only
	key := filepath.Join(t.TempDir(), "id_ed25519")
	out, err = exec.Command(filepath.Join(binDir, "rexec"), "keygen", "-f", key, "-C", "py").CombinedOutput()
	require.NoError(t, err, string(out))
	protected := filepath.Join(t.TempDir(), "id_protected")
	out, err = exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "py pass", "-f", protected).CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "user", "add", "keyed", "--no-password",
		"--add-key", "@"+key+".pub", "--add-key", "@"+protected+".pub", "--home", home, "--confine", "--run-as", selfName(t)).CombinedOutput()
	require.NoError(t, err, string(out))

	cmd := exec.Command(python, "-m", "unittest", "-v", "test_execd_client.py")
	cmd.Dir = filepath.Join("..", "..", "clients", "python")
	cmd.Env = append(os.Environ(),
		"EXECD_ADDR="+d.addr, "EXECD_USER=student", "EXECD_PASSWORD=lab pass 1",
		"EXECD_FINGERPRINT="+strings.TrimSpace(string(fp)), "EXECD_HOME="+home,
		"EXECD_KEY="+key, "EXECD_KEY_USER=keyed", "EXECD_KEY_PROTECTED="+protected, "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	out, err = cmd.CombinedOutput()
	t.Logf("%s", out)
	require.NoError(t, err, "the Python tests failed; the daemon's log:\n%s", d.log)
	require.NotContains(t, string(out), "skipped", "every Python test ran against the daemon")
}
