package rexec_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/rexec"
)

// resumeFixture is a daemon behind a cutting proxy, and a client of the
// proxy that can dial again.
type resumeFixture struct {
	d      *execdtest.Server
	p      *execdtest.Proxy
	window uint32 // the client's credit per output stream; 0: the default
}

func startResume(t *testing.T, srv *execd.Server) *resumeFixture {
	if srv.KillGrace == 0 {
		srv.KillGrace = 500 * time.Millisecond
	}
	d := execdtest.Start(t, srv, false)
	return &resumeFixture{d: d, p: execdtest.StartProxy(t, d.Addr)}
}

func (f *resumeFixture) dial(ctx context.Context) (*rexec.Client, error) {
	return rexec.Dial(ctx, f.p.Addr, &rexec.Config{Window: f.window, HostKeyCallback: func(_, fp string) error {
		if fp != f.d.Fingerprint {
			return fmt.Errorf("fingerprint %s, want %s", fp, f.d.Fingerprint)
		}
		return nil
	}})
}

// session is a session on a new connection through the proxy that
// reconnects through it, counting the losses it survives.
func (f *resumeFixture) session(t *testing.T, losses *atomic.Int32) *rexec.Session {
	return f.sessionCounting(t, losses, new(atomic.Int32))
}

// sessionCounting is session, counting the resumptions too.
func (f *resumeFixture) sessionCounting(t *testing.T, losses, resumed *atomic.Int32) *rexec.Session {
	c, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.NewSession()
	require.NoError(t, err)
	s.Reconnect = &rexec.Reconnect{Dial: f.dial, For: 30 * time.Second, Notify: func(err error) {
		if err != nil {
			losses.Add(1)
		} else {
			resumed.Add(1)
		}
	}}
	return s
}

// numbered is the output of the shell loop numberedCmd prints: line i of
// a stream is its name, i, and a filler, so that every byte is known.
func numbered(stream string, i int) string {
	return fmt.Sprintf("%s %09d %s\n", stream, i, strings.Repeat("x", 50))
}

// numberedCmd prints n numbered lines on stdout and every 16th number on
// stderr, as numbered describes, then exits with 7.
func numberedCmd(n int) string {
	return fmt.Sprintf(`awk 'BEGIN { f = sprintf("%%50s", ""); gsub(/ /, "x", f)
  for (i = 0; i < %d; i++) { printf "out %%09d %%s\n", i, f; if (i %% 16 == 0) printf "err %%09d %%s\n", i, f > "/dev/stderr" }
  exit 7 }'`, n)
}

// lineChecker checks, as the bytes arrive, that a stream is exactly the
// numbered lines from 0 in order: nothing missing, nothing twice.
type lineChecker struct {
	mu      sync.Mutex
	stream  string
	step    int // the numbers of the stream are multiples of step
	next    int
	pending []byte
	bytes   atomic.Int64
	err     error
	// wrote, if set, is called with the bytes so far after each write,
	// before the write returns (the stream waits for it).
	wrote func(n int64)
}

func (c *lineChecker) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes.Add(int64(len(p)))
	c.pending = append(c.pending, p...)
	for {
		i := strings.IndexByte(string(c.pending[:min(len(c.pending), 128)]), '\n')
		if i < 0 {
			break
		}
		if want := numbered(c.stream, c.next); string(c.pending[:i+1]) != want && c.err == nil {
			c.err = fmt.Errorf("%s: got %q where line %d was due", c.stream, c.pending[:i+1], c.next)
		}
		c.next += c.step
		c.pending = c.pending[i+1:]
	}
	if c.wrote != nil {
		c.wrote(c.bytes.Load())
	}
	return len(p), nil
}

func (c *lineChecker) check(t *testing.T, lines int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NoError(t, c.err)
	assert.Empty(t, c.pending, "a partial line at the end")
	assert.Equal(t, lines, c.next/c.step, "%s lines", c.stream)
}

// Issue 17: a command writing numbered lines on stdout (200 MiB; 16 MiB
// with -short) and stderr while the connection is reset more than 20
// times: the session reconnects by itself, the local streams receive
// every byte once and in order, and Wait returns the command's status.
func TestResumeOutputThroughCuts(t *testing.T) {
	t.Parallel()
	lines := 200 << 20 / len(numbered("out", 0))
	if testing.Short() {
		lines /= 12
	}
	f := startResume(t, &execd.Server{})
	if testing.Short() {
		// What is in flight when a cut comes (a window) arrives before
		// the loss is seen: a smaller window leaves room for 25 cuts.
		f.window = 256 << 10
	}
	var losses, resumed atomic.Int32
	s := f.sessionCounting(t, &losses, &resumed)
	stdout := &lineChecker{stream: "out", step: 1}
	stderr := &lineChecker{stream: "err", step: 16}
	s.Stdout, s.Stderr = stdout, stderr

	// 25 resets, each once the resumed session has delivered another
	// 1/80 to 1/40 of the output, at a random point in that. The reset is
	// made from the stream's own write, which waits for it: however busy
	// the machine, the output cannot run past the point meant for it.
	total := int64(lines * len(numbered("out", 0)))
	rng := rand.New(rand.NewPCG(1, 2))
	var cuts atomic.Int32
	at := total/80 + rng.Int64N(total/80)
	stdout.wrote = func(n int64) {
		if cuts.Load() >= 25 || resumed.Load() < cuts.Load() || n < at {
			return
		}
		if f.p.ResetOpen() > 0 {
			cuts.Add(1)
			at = n + total/80 + rng.Int64N(total/80)
		}
	}
	require.NoError(t, s.StartShell(t.Context(), numberedCmd(lines)))
	err := s.Wait()
	var ee *rexec.ExitError
	require.ErrorAs(t, err, &ee, "the command's own status")
	assert.Equal(t, 7, ee.Status)
	stdout.check(t, lines)
	stderr.check(t, (lines+15)/16)
	assert.EqualValues(t, 25, cuts.Load(), "cuts")
	assert.GreaterOrEqual(t, int(losses.Load()), 25, "losses survived")
}

// Issue 17: 50 MiB of stdin (4 MiB with -short) reach the command exactly
// once while the connection is reset every 2 MiB sent.
func TestResumeStdinThroughCuts(t *testing.T) {
	t.Parallel()
	size := 50 << 20
	if testing.Short() {
		size = 4 << 20
	}
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(data)
	f := startResume(t, &execd.Server{})
	var losses atomic.Int32
	s := f.session(t, &losses)
	var read atomic.Int64
	s.Stdin = &countingReader{r: &slowReader{data: data}, n: &read}
	var out execdtest.SyncBuffer
	s.Stdout = &out
	require.NoError(t, s.Start(t.Context(), "sha256sum"))
	cuts := 0
	cutsDone := make(chan struct{})
	go func() {
		defer close(cutsDone)
		for next := int64(2 << 20); next < int64(size); next += 2 << 20 {
			for read.Load() < next && s.Exit() == nil && t.Context().Err() == nil {
				time.Sleep(time.Millisecond)
			}
			if f.p.ResetOpen() > 0 {
				cuts++
			}
		}
	}()
	require.NoError(t, s.Wait())
	<-cutsDone
	fields := strings.Fields(out.String())
	require.Len(t, fields, 2, "%q", out.String())
	assert.Equal(t, hex.EncodeToString(sum[:]), fields[0], "the command read every byte once, in order")
	assert.GreaterOrEqual(t, cuts, size>>21-1, "cuts")
	assert.Positive(t, losses.Load(), "losses survived")
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// slowReader hands out data in small reads, as a pipe would.
type slowReader struct{ data []byte }

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 16<<10)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// Issue 17: a client that never comes back: the daemon ends the command's
// process group once the grace period is over, and the session gives up
// after its own bound with ErrConnectionLost.
func TestResumeGraceOver(t *testing.T) {
	t.Parallel()
	f := startResume(t, &execd.Server{ResumeGrace: time.Second})
	var losses atomic.Int32
	s := f.session(t, &losses)
	s.Reconnect.Dial = func(context.Context) (*rexec.Client, error) { return nil, errors.New("no network") }
	s.Reconnect.For = 2 * time.Second
	child := startPid(t, s, "sleep 600 & echo $!; wait")
	require.True(t, execdtest.ProcessAlive(child))
	f.p.ResetOpen()
	start := time.Now()
	err := s.Wait()
	require.ErrorIs(t, err, rexec.ErrConnectionLost)
	assert.Contains(t, err.Error(), "no connection for 2s")
	require.Eventually(t, func() bool { return !execdtest.ProcessAlive(child) }, 10*time.Second, 20*time.Millisecond,
		"the process group outlived the grace period")
	assert.Greater(t, time.Since(start), 900*time.Millisecond, "ended before the grace period was over")
}

// startPid starts a command line that prints a pid first, and returns it;
// the rest of the output is discarded.
func startPid(t *testing.T, s *rexec.Session, cmdline string) int {
	t.Helper()
	pr, pw := io.Pipe()
	s.Stdout = pw
	require.NoError(t, s.StartShell(t.Context(), cmdline))
	var line string
	_, err := fmt.Fscanln(pr, &line)
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	t.Cleanup(func() { _ = pw.Close() })
	pid, err := strconv.Atoi(line)
	require.NoError(t, err)
	return pid
}

// Issue 17: a pty session cut and reattached: the program is told to
// redraw (SIGWINCH, as tmux sends on attach), and a line typed after the
// reattach is read once.
func TestResumePty(t *testing.T) {
	t.Parallel()
	f := startResume(t, &execd.Server{})
	var losses atomic.Int32
	s := f.session(t, &losses)
	require.NoError(t, s.RequestPty("xterm", 24, 80))
	var out execdtest.SyncBuffer
	s.Stdout = &out
	stdin, err := s.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, s.StartShell(t.Context(), `trap 'echo redraw' WINCH; stty -echo; echo ready; while :; do read line || continue; echo "got $line"; [ "$line" = quit ] && exit 3; done`))
	waitFor := func(what string, n int) {
		t.Helper()
		require.Eventually(t, func() bool { return strings.Count(out.String(), what) >= n }, 10*time.Second, 10*time.Millisecond, "%q in %q", what, out.String())
	}
	waitFor("ready", 1)
	_, err = io.WriteString(stdin, "one\n")
	require.NoError(t, err)
	waitFor("got one", 1)
	f.p.ResetOpen()
	waitFor("redraw", 1)
	_, err = io.WriteString(stdin, "two\nquit\n")
	require.NoError(t, err)
	var ee *rexec.ExitError
	require.ErrorAs(t, s.Wait(), &ee)
	assert.Equal(t, 3, ee.Status)
	assert.Equal(t, 1, strings.Count(out.String(), "got one"), "%q", out.String())
	assert.Equal(t, 1, strings.Count(out.String(), "got two"), "%q", out.String())
	assert.Equal(t, int32(1), losses.Load())
}

// A user may leave at most as many commands waiting for a reconnect as
// they may have channels: one more lost connection ends its command at
// once, so that nobody piles up processes and kept output.
func TestResumeWaitingBound(t *testing.T) {
	t.Parallel()
	f := startResume(t, &execd.Server{MaxChannels: 2})
	pids := make([]int, 3)
	for i := range pids {
		var losses atomic.Int32
		s := f.session(t, &losses)
		s.Reconnect.Dial = func(context.Context) (*rexec.Client, error) { return nil, errors.New("no network") }
		s.Reconnect.For = time.Second
		pids[i] = startPid(t, s, "echo $$; exec sleep 600")
	}
	f.p.ResetOpen()
	require.Eventually(t, func() bool {
		alive := 0
		for _, p := range pids {
			if execdtest.ProcessAlive(p) {
				alive++
			}
		}
		return alive == 2
	}, 10*time.Second, 10*time.Millisecond, "two commands wait, the third ended")
	time.Sleep(200 * time.Millisecond)
	alive := 0
	for _, p := range pids {
		if execdtest.ProcessAlive(p) {
			alive++
		}
	}
	assert.Equal(t, 2, alive)
}

// A finished command whose client closed its connection once it had the
// exit is forgotten at once: a daemon running many short commands keeps
// nothing for them. One whose connection was reset after the exit waits.
func TestResumeFinishedForgotten(t *testing.T) {
	t.Parallel()
	f := startResume(t, &execd.Server{})
	for range 20 {
		c, err := f.dial(t.Context())
		require.NoError(t, err)
		s, err := c.NewSession()
		require.NoError(t, err)
		s.Reconnect = &rexec.Reconnect{Dial: f.dial}
		out, err := s.Output(t.Context(), "echo", "hi")
		require.NoError(t, err)
		require.Equal(t, "hi\n", string(out))
		require.NoError(t, c.Close()) // at once, as rexec does: maybe before the daemon's ping
	}
	require.Eventually(t, func() bool { return f.d.Server.Status().Waiting == 0 }, 10*time.Second, 10*time.Millisecond,
		"waiting: %d", f.d.Server.Status().Waiting)
}

// A reconnect that finds the daemon restarted says so, rather than that
// the command "ended and was delivered": the restart ended it.
func TestResumeAfterRestartSaysSo(t *testing.T) {
	t.Parallel()
	first := &execd.Server{KillGrace: 200 * time.Millisecond}
	d := execdtest.Start(t, first, true)
	addr := d.Addr
	dial := func(ctx context.Context) (*rexec.Client, error) {
		return rexec.Dial(ctx, addr, &rexec.Config{Plaintext: true})
	}
	c, err := dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.NewSession()
	require.NoError(t, err)
	var losses atomic.Int32
	s.Reconnect = &rexec.Reconnect{Dial: dial, For: 20 * time.Second, Notify: func(err error) {
		if err != nil {
			losses.Add(1)
		}
	}}
	require.NoError(t, s.Start(t.Context(), "sleep", "30"))
	require.NoError(t, first.Close()) // the daemon goes, and its command with it
	execdtest.StartAt(t, &execd.Server{}, true, addr)
	err = s.Wait()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the daemon restarted while the connection was down, which ended the command")
	assert.Equal(t, int32(1), losses.Load())
}

// Issue 27 item 8: the output kept for clients that lost their
// connection is bounded per user and for the daemon: past the bound a
// command runs without resumption (no job id), and the memory is given
// back when the kept commands end.
func TestResumeMemoryBounded(t *testing.T) {
	t.Parallel()
	srv := &execd.Server{ResumeMemoryPerUser: 16 << 20, ResumeGrace: 2 * time.Second}
	f := startResume(t, srv)
	var sessions []*rexec.Session
	kept := 0
	for range 8 {
		s := f.session(t, new(atomic.Int32))
		s.Stdout = io.Discard
		require.NoError(t, s.Start(t.Context(), "yes"))
		if s.Job() != "" {
			kept++
		}
		sessions = append(sessions, s)
	}
	// Each keeps its --resume-buffer (2 MiB) per stream, 4 MiB: four fit.
	assert.Equal(t, 4, kept, "resumable until the user's bound")
	assert.LessOrEqual(t, srv.KeptMemory(), int64(16<<20))
	assert.Positive(t, srv.KeptMemory())
	f.p.ResetOpen() // every connection lost at once: the kept ones wait, full
	assert.LessOrEqual(t, srv.KeptMemory(), int64(16<<20))
	for _, s := range sessions {
		_ = s.Close()
	}
	require.Eventually(t, func() bool { return srv.KeptMemory() == 0 }, 30*time.Second, 20*time.Millisecond,
		"the memory is given back when the commands end: %d", srv.KeptMemory())
}
