//go:build linux

package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
)

// commandTree starts a setsid child and a group member, and prints their
// pids and the shell's, each with its role. The setsid child prints its
// own once it has a session of its own: before that, it is in the group.
const commandTree = `setsid sh -c 'echo setsid $$; exec sleep 311' & sleep 312 & echo member $!; echo shell $$; wait`

// startTree runs commandTree through rexec and returns the pids of the
// setsid child, the group member and the shell; each is killed by its pid
// at the end of the test if still there.
func startTree(t *testing.T, c *client, addr string) []int {
	t.Helper()
	_, _, sc, first := c.startHeld(addr, commandTree)
	got := map[string]int{}
	for line := first; ; line = sc.Text() {
		role, p, _ := strings.Cut(line, " ")
		pid, err := strconv.Atoi(p)
		require.NoError(t, err, "%q", line)
		got[role] = pid
		if len(got) == 3 || !sc.Scan() {
			break
		}
	}
	var pids []int
	for _, role := range []string{"setsid", "member", "shell"} {
		require.Contains(t, got, role, "%v", got)
		pids = append(pids, got[role])
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			if execdtest.ProcessAlive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return pids
}

func allGone(pids ...int) func() bool {
	return func() bool {
		for _, pid := range pids {
			if execdtest.ProcessAlive(pid) {
				return false
			}
		}
		return true
	}
}

// needCgroups skips a test on a machine that gives the daemon no cgroup
// v2 (the daemon's log says why).
func needCgroups(t *testing.T, d *daemon) {
	t.Helper()
	if !regexp.MustCompile(`cgroup per command under`).MatchString(d.log.String()) {
		t.Skipf("the daemon has no cgroups here: %s", d.log)
	}
}

// Item 2 of issue 15: kill -9 of the daemon ends the whole command tree,
// the setsid child included, within a bounded time.
func TestE2EKilledDaemonLeavesNoCommand(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir())
	needCgroups(t, d)
	c := newClient(t)
	pids := startTree(t, c, d.addr)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.exited
	assert.Eventually(t, allGone(pids...), 5*time.Second, 10*time.Millisecond,
		"the command tree %v outlived the daemon", pids)
}

// The same with --cgroup off: the guard ends the command's process group;
// a setsid child is out of its reach (the README says so).
func TestE2EKilledDaemonWithoutCgroups(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--cgroup", "off")
	c := newClient(t)
	pids := startTree(t, c, d.addr)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.exited
	assert.Eventually(t, allGone(pids[1], pids[2]), 5*time.Second, 10*time.Millisecond,
		"the command's process group outlived the daemon")
	assert.True(t, execdtest.ProcessAlive(pids[0]), "without cgroups a setsid child escapes")
}

// When the guard is killed with the daemon, the next daemon's start
// ends what they left. Both daemons keep their cgroups under one made for
// this test, so that no other daemon's start sweeps it first.
func TestE2ENextDaemonEndsWhatADeadOneLeft(t *testing.T) {
	t.Parallel()
	probe := startDaemon(t, t.TempDir())
	needCgroups(t, probe)
	under := regexp.MustCompile(`cgroup per command under (\S+);`).FindStringSubmatch(probe.log.String())
	require.NotNil(t, under, probe.log.String())
	parent, err := os.MkdirTemp(filepath.Dir(under[1]), "test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.Remove(parent) })

	d := startDaemon(t, t.TempDir(), "--cgroup", parent)
	m := regexp.MustCompile(`guard process (\d+)`).FindStringSubmatch(d.log.String())
	require.NotNil(t, m, d.log.String())
	guard, _ := strconv.Atoi(m[1])
	c := newClient(t)
	pids := startTree(t, c, d.addr)

	require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.exited
	time.Sleep(300 * time.Millisecond) // what would have ended them has had its moment
	assert.True(t, execdtest.ProcessAlive(pids[0]), "with its guard killed too, nothing ended the tree")

	d2 := startDaemon(t, t.TempDir(), "--cgroup", parent)
	assert.Eventually(t, allGone(pids...), 5*time.Second, 10*time.Millisecond)
	assert.Contains(t, d2.log.String(), "left by daemons that died")
}
