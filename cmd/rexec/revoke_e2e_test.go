//go:build linux

package main_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hangup sends the daemon SIGHUP and waits until it has reread its users.
func (d *daemon) hangup(t *testing.T) {
	t.Helper()
	before := strings.Count(d.log.String(), "msg=\"hangup:")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Count(d.log.String(), "msg=\"hangup:") > before },
		20*time.Second, 10*time.Millisecond, "the daemon did not reread its users: %s", d.log)
}

// TestE2ERevocationThroughMaster walks issue 27's first repro with the
// real binaries, connection sharing on: a permission taken away, then
// the user removed, each followed by SIGHUP, reach the connection the
// user's control master holds and the command running on it; the
// removed user's detached job ends and its output goes; the same name
// added again with another key finds nothing of it.
func TestE2ERevocationThroughMaster(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	d := startDaemon(t, state)
	c := sharingClientOf(t, d, false)
	me := selfName(t)
	admin := func(args ...string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "execd"), append([]string{"--state-dir", state, "--config", os.DevNull, "user"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}

	r := c.runIn("", d.addr, "echo", "via-master")
	require.Equal(t, 0, r.code, r.stderr)
	master := c.master()
	require.NotZero(t, master, "a master holds the connection")

	// A command running through the master when exec is taken away.
	held := c.command(d.addr, "echo started; exec sleep 60")
	var errb strings.Builder
	held.Stderr = &errb
	out, err := held.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, held.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "started\n", line)
	admin("set", me, "--allow", "get")
	d.hangup(t)
	assert.Equal(t, 128+int(syscall.SIGTERM), waitExit(t, held, 20*time.Second, "the running command outlived the revocation"))
	assert.Contains(t, errb.String(), `permission revoked: user `+me+` may not run commands (no "exec" permission)`)

	r = c.runIn("", d.addr, "echo", "still-runs")
	assert.Equal(t, 255, r.code)
	assert.NotContains(t, r.stdout, "still-runs")
	assert.Contains(t, r.stderr, `no "exec" permission`)

	admin("set", me, "--allow", "exec,get,put")
	d.hangup(t)
	r = c.runIn("", "--detach", d.addr, "sh", "-c", "echo secret; exec sleep 60")
	require.Equal(t, 0, r.code, r.stderr)
	job := strings.TrimSpace(r.stdout)
	r = c.runIn("", "jobs", "--json", d.addr)
	require.Equal(t, 0, r.code, r.stderr)
	m := regexp.MustCompile(`"pid":(\d+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	pid, _ := strconv.Atoi(m[1])
	require.True(t, alive(pid))
	master = c.master()
	require.NotZero(t, master)

	admin("del", me)
	d.hangup(t)
	require.Eventually(t, func() bool { return !alive(master) }, 20*time.Second, 20*time.Millisecond, "the master ends with its revoked connection")
	require.Eventually(t, func() bool { return !alive(pid) }, 20*time.Second, 20*time.Millisecond, "the removed user's job ends")
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(state, "jobs", me, job))
		return os.IsNotExist(err)
	}, 20*time.Second, 20*time.Millisecond, "the removed user's job output is deleted")
	assert.Contains(t, d.log.String(), `why="user `+me+` was removed from the daemon"`)
	r = c.runIn("", d.addr, "sh", "-c", "echo deleted-user-still-runs")
	assert.Equal(t, 255, r.code)
	assert.NotContains(t, r.stdout, "deleted-user-still-runs")
	assert.Contains(t, r.stderr, "refused the login as "+me)

	key := filepath.Join(t.TempDir(), "other")
	kg, err := exec.Command(filepath.Join(binDir, "rexec"), "keygen", "-f", key).CombinedOutput()
	require.NoError(t, err, string(kg))
	admin("add", me, "--no-password", "--add-key", "@"+key+".pub", "--run-as", me)
	d.hangup(t)
	r = c.runIn("", "-i", key, "attach", d.addr, job)
	assert.Equal(t, 255, r.code)
	assert.NotContains(t, r.stdout, "secret")
	assert.Contains(t, r.stderr, "no command "+job)
	r = c.runIn("", "-i", key, "jobs", "-q", d.addr)
	assert.Equal(t, result{"", "", 0}, r, "the same name again is another user: no job of the old one")
}
