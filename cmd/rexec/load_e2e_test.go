//go:build linux

package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/internal/userkey"
	"github.com/execd-project/execd/rexec"
)

// Load tests of the daemon binary (issue 13, items 2 to 4): what silent
// and one-shot connections cost it, and what the open-file limit does.
// Skipped by -short; .ci/run runs them in the full suite.

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// libClient logs in to a daemon started by startDaemon with the key its
// first start made, as the OS user, through the library.
func libConfig(t *testing.T) *rexec.Config {
	t.Helper()
	key, err := userkey.Load(filepath.Join(userConfig(t), "rexec", "id_ed25519"))
	require.NoError(t, err)
	user, err := userkey.LocalUser(os.Getenv)
	require.NoError(t, err)
	return &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), User: user, Auth: []rexec.AuthMethod{rexec.PublicKey(key)}}
}

func oneShot(t *testing.T, addr string, cfg *rexec.Config) {
	t.Helper()
	c, err := rexec.Dial(t.Context(), addr, cfg)
	require.NoError(t, err)
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.Run(t.Context(), "true"))
	require.NoError(t, c.Close())
}

func TestLoadSilentConnectionRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--max-startups", "5000:30:5000", "--max-startups-per-source", "5000", "--handshake-timeout", "2m")
	cfg := libConfig(t)
	oneShot(t, d.addr, cfg)
	before := rssKiB(t, d.cmd.Process.Pid)
	const n = 2000
	execdtest.SilentConns(t, d.addr, "127.0.0.2", n)
	oneShot(t, d.addr, cfg) // accepted after the silent ones: they are all being served
	after := rssKiB(t, d.cmd.Process.Pid)
	per := (after - before) * 1024 / n
	t.Logf("execd RSS %d KiB, with %d silent connections %d KiB: %d bytes each", before, n, after, per)
	assert.Less(t, per, int64(64<<10))
}

func TestLoadSequentialOneShotsRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--idle-timeout", "1h")
	cfg := libConfig(t)
	n := 10000
	if raceEnabled {
		n = 2000 // the client side is slower under the race detector
	}
	for range 200 {
		oneShot(t, d.addr, cfg)
	}
	before := rssKiB(t, d.cmd.Process.Pid)
	start := time.Now()
	for range n {
		oneShot(t, d.addr, cfg)
	}
	after := rssKiB(t, d.cmd.Process.Pid)
	t.Logf("execd RSS after 200 one-shot connections %d KiB, after %d more %d KiB (%+d KiB) in %s", before, n, after, after-before, time.Since(start).Round(time.Millisecond))
	assert.Less(t, after-before, int64(8<<10), "finished connections are freed")
}

// A daemon at its open-file limit refuses or delays new connections, and
// keeps serving its running commands and, once files are free, new users.
func TestLoadOpenFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	t.Parallel()
	d := startDaemonUnder(t, []string{"prlimit", "--nofile=128:128"}, freeAddr(t), t.TempDir(), "--max-startups", "1000:30:1000", "--max-startups-per-source", "1000")
	c := newClient(t)
	type running struct {
		in  io.WriteCloser
		out *bufio.Scanner
		cmd *exec.Cmd
	}
	var cmds []running
	for range 3 {
		cmd, in, sc, first := c.startHeld(d.addr, "echo started; read x; echo got $x")
		require.Equal(t, "started", first)
		cmds = append(cmds, running{in, sc, cmd})
	}
	var silent []net.Conn
	for i := range 10 {
		silent = append(silent, execdtest.SilentConns(t, d.addr, fmt.Sprintf("127.0.0.%d", 10+i), 30)...)
	}
	// The daemon has reached its limit: it closes new connections at
	// once, or lets them wait in the backlog while it backs off.
	require.Eventually(t, func() bool {
		l := d.log.String()
		return strings.Contains(l, "connections refused before their handshake") || strings.Contains(l, "accept failed, retrying")
	}, 10*time.Second, 20*time.Millisecond, "daemon log: %s", d.log)
	require.True(t, d.running(), "the daemon is still running")
	t.Logf("daemon log: %s", d.log)
	for _, s := range silent {
		_ = s.Close()
	}
	var r result
	require.Eventually(t, func() bool {
		r = c.run("", d.addr, "echo", "served")
		return r.code == 0
	}, 15*time.Second, 100*time.Millisecond, "a new user is served once files are free: %+v", &r)
	assert.Equal(t, "served\n", r.stdout)
	for i, rc := range cmds {
		_, err := fmt.Fprintf(rc.in, "%d\n", i)
		require.NoError(t, err)
		require.True(t, rc.out.Scan())
		assert.Equal(t, fmt.Sprintf("got %d", i), rc.out.Text(), "running commands are intact")
		require.NoError(t, rc.in.Close())
		require.NoError(t, rc.cmd.Wait())
	}
}
