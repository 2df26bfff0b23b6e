//go:build unix

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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
)

// runBounded runs rexec with stdin from /dev/null and fails the test if it
// has not exited within limit (it is then killed by its pid).
func (c *client) runBounded(limit time.Duration, args ...string) (result, time.Duration) {
	c.t.Helper()
	cmd := c.command(args...)
	null, err := os.Open(os.DevNull)
	require.NoError(c.t, err)
	defer func() { _ = null.Close() }()
	cmd.Stdin = null
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(c.t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("rexec %s did not exit within %s; stderr: %s", strings.Join(args, " "), limit, errb.String())
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}, time.Since(start)
}

// startHeld starts rexec running script on addr with its stdin and stdout
// piped, and returns them with the first line the script printed. The
// process is killed by its pid at the end of the test.
func (c *client) startHeld(addr, script string) (*exec.Cmd, io.WriteCloser, *bufio.Scanner, string) {
	c.t.Helper()
	cmd := c.command(addr, "sh", "-c", script)
	in, err := cmd.StdinPipe()
	require.NoError(c.t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(c.t, err)
	require.NoError(c.t, cmd.Start())
	c.t.Cleanup(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(out)
	require.True(c.t, sc.Scan(), "no first line from %q", script)
	return cmd, in, sc, sc.Text()
}

// Item 13: a reset in the middle of output ends rexec at once with 255
// and one line, when it may not reconnect (--reconnect-for 0, and -H);
// by default it reconnects and the command's output is whole.
func TestE2EResetMidOutputExits(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir())
	c := newClient(t)
	r := c.run("", d.addr, "true")
	require.Equal(t, 0, r.code, r.stderr)
	p := execdtest.StartProxy(t, d.addr)
	p.ResetNext(true, 200<<10)
	r, took := c.runBounded(10*time.Second, "--reconnect-for", "0", p.Addr, "--", "sh", "-c", "for i in $(seq 0 29); do seq 1 20000; sleep 0.1; done")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "connection lost")
	assert.Less(t, took, 3*time.Second)

	p.ResetNext(true, 200<<10)
	r, _ = c.runBounded(20*time.Second, p.Addr, "--", "sh", "-c", "for i in $(seq 0 9); do seq 1 20000; sleep 0.1; done")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "connection lost")
	assert.Contains(t, r.stderr, "reconnected;")
	var want strings.Builder
	for range 10 {
		for i := 1; i <= 20000; i++ {
			fmt.Fprintln(&want, i)
		}
	}
	assert.True(t, r.stdout == want.String(), "the output is whole after the reset: %d bytes, want %d", len(r.stdout), want.Len())

	p.ResetNext(true, 200<<10)
	r, took = c.runBounded(10*time.Second, "-H", p.Addr, "--", "sh", "-c", "for i in $(seq 0 29); do seq 1 20000; sleep 0.1; done")
	assert.Equal(t, 255, r.code, "fan-out: a lost host is 255")
	assert.Contains(t, r.stderr, "connection lost")
	assert.Less(t, took, 3*time.Second)
}

// Item 1: a hangup neither ends the daemon nor the commands it runs.
func TestE2EDaemonSurvivesHangup(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir())
	c := newClient(t)
	cmd, stdin, sc, first := c.startHeld(d.addr, "echo $$; read x; echo finished")
	pid, err := strconv.Atoi(first)
	require.NoError(t, err)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	r := c.run("", d.addr, "echo", "still serving")
	assert.Equal(t, result{"still serving\n", "", 0}, r, "daemon log: %s", d.log)
	assert.True(t, execdtest.ProcessAlive(pid), "the running command survives the hangup")
	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	require.True(t, sc.Scan())
	assert.Equal(t, "finished", sc.Text())
	require.NoError(t, cmd.Wait())
	assert.Contains(t, d.log.String(), "hangup: log files reopened")
}

// Item 15: six daemons starting at the same moment, sharing the user's
// config directory, agree on one rexec key: each lets the user in.
func TestE2EParallelFirstStartsShareOneKey(t *testing.T) {
	t.Parallel()
	const n = 6
	daemons := make([]*daemon, n)
	cmds := make([]*exec.Cmd, n)
	for i := range n {
		d := &daemon{addr: freeAddr(t), log: &syncBuffer{}, done: make(chan error, 1)}
		d.cmd = exec.Command(filepath.Join(binDir, "execd"), "--listen", d.addr, "--state-dir", t.TempDir(), "--kill-grace", "1s")
		d.cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+userConfig(t))
		d.cmd.Stderr = d.log
		daemons[i], cmds[i] = d, d.cmd
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, cmd := range cmds {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = cmd.Start() }()
	}
	wg.Wait()
	for i, d := range daemons {
		require.NoError(t, errs[i])
		d.wait()
		t.Cleanup(func() { d.stop(t) })
	}
	c := newClient(t)
	for _, d := range daemons {
		require.Eventually(t, func() bool {
			nc, err := net.Dial("tcp", d.addr)
			if err == nil {
				_ = nc.Close()
			}
			return err == nil
		}, 10*time.Second, 20*time.Millisecond, "daemon did not start: %s", d.log)
		r := c.run("", d.addr, "echo", "in")
		assert.Equal(t, "in\n", r.stdout, "daemon %s: %s\nlog: %s", d.addr, r.stderr, d.log)
	}
	generated := 0
	for _, d := range daemons {
		generated += strings.Count(d.log.String(), "generated now")
	}
	assert.Equal(t, 1, generated, "one daemon made the key")
}

// startSignalled starts rexec, waits until ready reports true, sends sig
// and returns the result and how long rexec took after the signal.
func (c *client) signalled(ready func() bool, sig syscall.Signal, stdin io.Reader, args ...string) (result, time.Duration) {
	c.t.Helper()
	cmd := c.command(args...)
	cmd.Stdin = stdin
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(c.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() { _ = cmd.Process.Kill(); <-done }()
	require.Eventually(c.t, ready, 20*time.Second, 5*time.Millisecond, "transfer did not start: %s", &errb)
	sent := time.Now()
	require.NoError(c.t, cmd.Process.Signal(sig))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("rexec %v did not stop on %v: %s", args, sig, &errb)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}, time.Since(sent)
}

// sizeAbove reports whether the file at path exists with more than n bytes.
func sizeAbove(path string, n int64) func() bool {
	return func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > n
	}
}

// Item 14: INT, TERM and HUP stop a single-host get, put and the file
// shell's transfers at once, keep the partial copy, and exit 128+N.
func TestE2ESignalsStopTransfers(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--dir", home)
	c := newClient(t)
	require.Equal(t, 0, c.run("", d.addr, "true").code)
	const big = 8 << 30 // sparse: read as zeros, far more than moves in the time allowed
	require.NoError(t, os.WriteFile(filepath.Join(home, "big.img"), nil, 0o644))
	require.NoError(t, os.Truncate(filepath.Join(home, "big.img"), big))
	local := t.TempDir()

	part := filepath.Join(local, ".big.img.rexec-part")
	r, took := c.signalled(sizeAbove(part, 0), syscall.SIGINT, nil, "get", d.addr+":big.img", local)
	assert.Equal(t, 130, r.code, r.stderr)
	assert.Contains(t, r.stderr, "interrupted by SIGINT")
	assert.Less(t, took, 3*time.Second)
	assert.True(t, sizeAbove(part, 0)(), "the partial copy is kept")
	_, err := os.Stat(filepath.Join(local, "big.img"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	src := filepath.Join(t.TempDir(), "up.img")
	require.NoError(t, os.WriteFile(src, nil, 0o644))
	require.NoError(t, os.Truncate(src, big))
	remotePart := filepath.Join(home, ".up.img.rexec-part")
	r, took = c.signalled(sizeAbove(remotePart, 0), syscall.SIGTERM, nil, "put", src, d.addr+":")
	assert.Equal(t, 143, r.code, r.stderr)
	assert.Less(t, took, 3*time.Second)
	require.Eventually(t, sizeAbove(remotePart, 0), 5*time.Second, 10*time.Millisecond, "the daemon keeps the partial copy")

	shellPart := filepath.Join(local, "sub", ".big.img.rexec-part")
	require.NoError(t, os.Mkdir(filepath.Join(local, "sub"), 0o755))
	r, took = c.signalled(sizeAbove(shellPart, 0), syscall.SIGHUP, strings.NewReader("lcd "+filepath.Join(local, "sub")+"\nget big.img\nls\n"), "files", d.addr)
	assert.Equal(t, 129, r.code, "stdout %s stderr %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "interrupted by SIGHUP")
	assert.Less(t, took, 3*time.Second)
}

// Item 17: names, link targets and messages from a daemon reach the
// terminal with their control characters escaped.
func TestE2EHostileNamesEscaped(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	tree := filepath.Join(home, "tree")
	require.NoError(t, os.Mkdir(tree, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "\x1b]0;pwned\x07"), []byte("x"), 0o644))
	require.NoError(t, os.Symlink("/etc/\x1b[5m", filepath.Join(tree, "evil\x1b[2J")))
	d := startDaemon(t, t.TempDir(), "--dir", home)
	c := newClient(t)
	local := t.TempDir()
	r := c.run("", "get", "-r", d.addr+":tree", local)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "\x1b")
	assert.Contains(t, r.stderr, `evil\033[2J -> /etc/\033[5m`)
	_, err := os.Stat(filepath.Join(local, "tree", "\x1b]0;pwned\x07"))
	require.NoError(t, err, "the file itself arrives under its real name")

	r = c.run("cd tree\nls\nget nothing\x1b[2J\n", "files", d.addr)
	assert.NotContains(t, r.stdout+r.stderr, "\x1b")
	assert.Contains(t, r.stdout, `\033]0;pwned\007`)
	assert.Contains(t, r.stdout, `nothing\033[2J`)
}

// Item 21: the file shell says "received" for a download; put - blames
// the local input, not the remote file, when stdin fails.
func TestE2ESmallWording(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(home, "f.txt"), []byte("hello"), 0o644))
	d := startDaemon(t, t.TempDir(), "--dir", home)
	c := newClient(t)
	local := t.TempDir()
	r := c.run("lcd "+local+"\nget f.txt\nput f.txt g.txt\n", "files", d.addr)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Regexp(t, `1 file\(s\) verified \(\S+\), 5 B received\n`, r.stdout)
	assert.Regexp(t, `1 file\(s\) verified \(\S+\), 5 B sent\n`, r.stdout)

	dir, err := os.Open(t.TempDir()) // reading a directory fails: EISDIR
	require.NoError(t, err)
	defer dir.Close()
	cmd := c.command("put", "-", d.addr+":x")
	cmd.Stdin = dir
	out, _ := cmd.CombinedOutput()
	assert.Equal(t, 1, cmd.ProcessState.ExitCode())
	assert.Contains(t, string(out), "rexec: local input: ")
	assert.Contains(t, string(out), "nothing was written to x")
	_, err = os.Stat(filepath.Join(home, "x"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
