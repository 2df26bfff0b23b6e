package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/testmain"
)

// roleEnv makes the test binary play a daemon or its guard (TestMain).
const roleEnv = "EXECD_PROC_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "guard":
		if err := RunGuard(os.Stdin, os.Stderr); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	case "daemon":
		os.Exit(fakeDaemon())
	}
	testmain.Main(m, testmain.Options{})
}

// treeScript starts a setsid child and a group member, and prints their
// pids and its own, each with its role. The setsid child prints its own
// once it has a session of its own: before that, it is in the group.
const treeScript = `setsid sh -c 'echo setsid $$; exec sleep 301' & sleep 302 & echo member $!; echo shell $$; wait`

// fakeDaemon starts treeScript under a keeper with a guard, copies its
// pids to stdout and blocks until killed.
func fakeDaemon() int {
	self, _ := os.Executable()
	k, err := NewKeeper(KeeperConfig{
		Cgroup:      os.Getenv("EXECD_PROC_TEST_CGROUP"),
		Guard:       []string{"/usr/bin/env", roleEnv + "=guard", self},
		GuardStderr: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	spec := Spec{Shell: treeScript, Keeper: k}
	if os.Getenv("EXECD_PROC_TEST_PTY") != "" {
		// Under job control each job is a process group of its own.
		spec.Shell, spec.Pty = "set -m; "+treeScript, &frame.PtyRequest{}
	}
	p, err := Start(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("guard %d\n", k.guard.pid())
	os.Stdout.Sync()
	sc := bufio.NewScanner(p.Stdout)
	for range 3 {
		sc.Scan()
		fmt.Println(strings.TrimRight(sc.Text(), "\r"))
	}
	select {}
}

// alive reports whether pid is a process that has not ended (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || !bytes.HasPrefix(bytes.TrimSpace(b[i+1:]), []byte("Z"))
}

// eventuallyGone waits up to 5 s for every pid to end.
func eventuallyGone(t *testing.T, pids ...int) {
	t.Helper()
	assert.Eventually(t, func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, "processes %v outlived the command or the daemon", pids)
}

func killOnCleanup(t *testing.T, pids ...int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// readPids reads "ROLE PID" lines until it has the pid of each role, and
// returns them in the order of roles.
func readPids(t *testing.T, sc *bufio.Scanner, roles ...string) []int {
	t.Helper()
	got := map[string]int{}
	for len(got) < len(roles) && sc.Scan() {
		role, p, _ := strings.Cut(sc.Text(), " ")
		pid, err := strconv.Atoi(p)
		require.NoError(t, err, sc.Text())
		got[role] = pid
	}
	pids := make([]int, len(roles))
	for i, r := range roles {
		require.Contains(t, got, r, "pids: %v %v", got, sc.Err())
		pids[i] = got[r]
	}
	return pids
}

func cgroupKeeper(t *testing.T) *Keeper {
	t.Helper()
	k, err := NewKeeper(KeeperConfig{Cgroup: "auto"})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, k.Close()) })
	if !k.Cgroups() {
		t.Skipf("this machine gives no cgroup v2 to this process: %s", k)
	}
	return k
}

// Ending a command ends everything it started, a setsid child included,
// and its cgroup is removed.
func TestKeeperEndsSetsidChildren(t *testing.T) {
	t.Parallel()
	k := cgroupKeeper(t)
	p, err := Start(Spec{Shell: treeScript, Keeper: k})
	require.NoError(t, err)
	pids := readPids(t, bufio.NewScanner(p.Stdout), "setsid", "member", "shell")
	killOnCleanup(t, pids...)
	cgDir := p.cg.dir
	assert.DirExists(t, cgDir)

	p.Terminate(200 * time.Millisecond)
	p.Wait()
	eventuallyGone(t, pids...)
	p.Release()
	assert.Eventually(t, func() bool { _, err := os.Stat(cgDir); return os.IsNotExist(err) },
		5*time.Second, 10*time.Millisecond, "the command's cgroup is removed")
}

// A command that ignores TERM, and its setsid child, end by KILL after
// the grace period.
func TestKeeperKillsWhatIgnoresTerm(t *testing.T) {
	t.Parallel()
	k := cgroupKeeper(t)
	p, err := Start(Spec{Shell: `trap "" TERM; setsid sh -c 'trap "" TERM HUP; echo setsid $$; sleep 303' & echo shell $$; wait`, Keeper: k})
	require.NoError(t, err)
	pids := readPids(t, bufio.NewScanner(p.Stdout), "setsid", "shell")
	killOnCleanup(t, pids...)
	p.Terminate(100 * time.Millisecond)
	p.Wait()
	eventuallyGone(t, pids...)
	p.Release()
}

// kill -9 of the daemon: the guard ends the command tree. With cgroups,
// everything; without, the command's process group (a setsid child
// escapes it: that is what the cgroup is for).
func TestGuardEndsCommandsOfAKilledDaemon(t *testing.T) {
	for _, tc := range []struct {
		cgroup      string
		pty         bool
		setsidGoes  bool
		needCgroups bool
	}{
		{cgroup: "auto", setsidGoes: true, needCgroups: true},
		{cgroup: "off", setsidGoes: false},
		{cgroup: "off", pty: true, setsidGoes: false}, // every group of the session
	} {
		t.Run(fmt.Sprintf("cgroup=%s,pty=%v", tc.cgroup, tc.pty), func(t *testing.T) {
			t.Parallel()
			if tc.needCgroups {
				cgroupKeeper(t)
			}
			self, err := os.Executable()
			require.NoError(t, err)
			d := exec.Command(self)
			d.Env = append(os.Environ(), roleEnv+"=daemon", "EXECD_PROC_TEST_CGROUP="+tc.cgroup)
			if tc.pty {
				d.Env = append(d.Env, "EXECD_PROC_TEST_PTY=1")
			}
			d.Stderr = os.Stderr
			out, err := d.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, d.Start())
			t.Cleanup(func() { _ = d.Process.Kill(); _ = d.Wait() })
			pids := readPids(t, bufio.NewScanner(out), "guard", "setsid", "member", "shell")
			guard, setsid, member, shell := pids[0], pids[1], pids[2], pids[3]
			killOnCleanup(t, pids...)

			require.NoError(t, d.Process.Signal(syscall.SIGKILL))
			_ = d.Wait()
			eventuallyGone(t, guard, member, shell)
			if tc.setsidGoes {
				eventuallyGone(t, setsid)
			} else {
				assert.True(t, alive(setsid), "without a cgroup a setsid child is out of reach")
			}
		})
	}
}
