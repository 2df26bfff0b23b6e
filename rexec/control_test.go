package rexec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/rexec"
)

// masterFixture is a control master in the test's process: a client of the
// daemon (through a proxy that can cut it) sharing its connection on a
// socket.
type masterFixture struct {
	d    *execdtest.Server
	p    *execdtest.Proxy
	up   *rexec.Client
	sock string
	done chan struct{} // closed when ServeControl returned
	err  error         // what it returned
}

func startMaster(t *testing.T, opts rexec.ControlOptions) *masterFixture {
	d := execdtest.Start(t, &execd.Server{KillGrace: 500 * time.Millisecond}, false)
	f := &masterFixture{d: d, p: execdtest.StartProxy(t, d.Addr), done: make(chan struct{})}
	up, err := f.dial(t.Context())
	require.NoError(t, err)
	f.up = up
	dir, err := os.MkdirTemp("", "ctl") // short: a socket's path has a limit
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f.sock = filepath.Join(dir, "s")
	ln, err := net.Listen("unix", f.sock)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		f.err = up.ServeControl(ctx, ln, opts)
		close(f.done)
	}()
	t.Cleanup(func() {
		cancel()
		_ = up.Close()
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			t.Error("ServeControl did not return")
		}
	})
	return f
}

func (f *masterFixture) dial(ctx context.Context) (*rexec.Client, error) {
	return rexec.Dial(ctx, f.p.Addr, &rexec.Config{HostKeyCallback: func(_, fp string) error {
		if fp != f.d.Fingerprint {
			return fmt.Errorf("fingerprint %s, want %s", fp, f.d.Fingerprint)
		}
		return nil
	}})
}

// local is a client of the master, closed at the test's end.
func (f *masterFixture) local(t *testing.T) *rexec.Client {
	t.Helper()
	c, err := rexec.DialControl(t.Context(), f.sock, f.p.Addr, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestControlRelaysEverything(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	var wg sync.WaitGroup
	for i := range 3 {
		c := f.local(t)
		wg.Go(func() {
			// Streams byte for byte, stdin, exit status, many at once.
			for j := range 5 {
				s, err := c.NewSession()
				require.NoError(t, err)
				want := bytes.Repeat([]byte(fmt.Sprintf("%d.%d ", i, j)), 50000)
				s.Stdin = bytes.NewReader(want)
				var out, errb bytes.Buffer
				s.Stdout, s.Stderr = &out, &errb
				err = s.Run(t.Context(), "sh", "-c", "tee /dev/stderr; exit 7")
				var ee *rexec.ExitError
				require.ErrorAs(t, err, &ee)
				assert.Equal(t, 7, ee.ExitStatus())
				assert.True(t, bytes.Equal(want, out.Bytes()), "stdout through the master")
				assert.True(t, bytes.Equal(want, errb.Bytes()), "stderr through the master")
			}
			// Files: a put and a get.
			name := fmt.Sprintf("f%d", i)
			data := bytes.Repeat([]byte{byte(i)}, 3<<20)
			local := filepath.Join(t.TempDir(), name)
			require.NoError(t, os.WriteFile(local, data, 0o600))
			_, err := c.Put(t.Context(), []string{local}, name, nil)
			require.NoError(t, err)
			back := filepath.Join(t.TempDir(), "back")
			_, err = c.Get(t.Context(), name, back, nil)
			require.NoError(t, err)
			got, err := os.ReadFile(back)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(data, got))
		})
	}
	wg.Wait()
	// A pty too.
	c := f.local(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.RequestPty("xterm", 30, 100))
	out, err := s.Output(t.Context(), "stty", "size")
	require.NoError(t, err)
	assert.Equal(t, "30 100\r\n", string(out))
	user, _ := c.User()
	upUser, _ := f.up.User()
	assert.Equal(t, upUser, user)
}

func TestControlCheckAndExit(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	c := f.local(t)
	pid, err := c.ControlCheck(t.Context())
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), pid)
	// A client of the daemon itself has no master to ask.
	_, err = f.up.ControlCheck(t.Context())
	require.Error(t, err)

	// A command running when the exit is asked for finishes; no new
	// client is taken; the master ends once its last client leaves.
	running := f.local(t)
	s, err := running.NewSession()
	require.NoError(t, err)
	var out bytes.Buffer
	s.Stdout = &out
	require.NoError(t, s.StartShell(t.Context(), "sleep 0.3; echo finished"))
	pid, err = c.ControlExit(t.Context())
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), pid)
	require.Eventually(t, func() bool {
		_, err := rexec.DialControl(t.Context(), f.sock, "x", &rexec.Config{Timeout: time.Second})
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "a master asked to exit still takes clients")
	require.NoError(t, s.Wait())
	assert.Equal(t, "finished\n", out.String())
	_ = c.Close()
	_ = running.Close()
	select {
	case <-f.done:
		require.ErrorIs(t, f.err, rexec.ErrControlStopped)
	case <-time.After(10 * time.Second):
		t.Fatal("the master did not end after its last client left")
	}
}

func TestControlPersist(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: 50 * time.Millisecond})
	c := f.local(t)
	out, err := mustSession(t, c).Output(t.Context(), "echo", "one")
	require.NoError(t, err)
	assert.Equal(t, "one\n", string(out))
	select {
	case <-f.done:
		t.Fatal("the master ended while a client was connected")
	case <-time.After(200 * time.Millisecond):
	}
	_ = c.Close()
	select {
	case <-f.done:
		require.ErrorIs(t, f.err, rexec.ErrControlStopped)
	case <-time.After(10 * time.Second):
		t.Fatal("the master outlived its persist time")
	}
}

func mustSession(t *testing.T, c *rexec.Client) *rexec.Session {
	t.Helper()
	s, err := c.NewSession()
	require.NoError(t, err)
	return s
}

// A client that leaves takes its commands with it: nobody can resume
// them through a master, so the daemon ends them at once.
func TestControlClientLeavesEndsItsCommands(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	c := f.local(t)
	s := mustSession(t, c)
	s.Reconnect = &rexec.Reconnect{Dial: f.dial}
	var out execdtest.SyncBuffer
	s.Stdout = &out
	require.NoError(t, s.StartShell(t.Context(), `echo $$; exec sleep 300`))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "\n") }, 10*time.Second, 5*time.Millisecond)
	var pid int
	_, err := fmt.Sscan(out.String(), &pid)
	require.NoError(t, err)
	require.True(t, execdtest.ProcessAlive(pid))
	_ = c.Close()
	require.Eventually(t, func() bool { return !execdtest.ProcessAlive(pid) }, 10*time.Second, 10*time.Millisecond,
		"the command of a client that left its master is still running")
	require.Eventually(t, func() bool { return f.d.Server.Status().Waiting == 0 }, 10*time.Second, 10*time.Millisecond,
		"the command waits for a client that left")
}

// One client that does not read must not stall another: the master
// never blocks its reading of the daemon on a client.
func TestControlSlowClientStallsNoOther(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	slow := f.local(t)
	s := mustSession(t, slow)
	pr, pw := net.Pipe() // written to only as far as read: never
	defer func() { _ = pr.Close(); _ = pw.Close() }()
	s.Stdout = pw
	require.NoError(t, s.Start(t.Context(), "head", "-c", "50000000", "/dev/zero"))
	fast := f.local(t)
	for i := range 20 {
		out, err := mustSession(t, fast).Output(t.Context(), "echo", fmt.Sprint(i))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("%d\n", i), string(out))
	}
}

// A client that breaks the protocol loses its own connection to the
// master, and nobody else's.
func TestControlHostileClient(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	good := f.local(t)
	for _, tc := range []struct {
		name  string
		send  func(*mux.Conn) error
		fatal bool
	}{
		{"auth after the start", func(mc *mux.Conn) error {
			return mc.SendJSON(frame.Auth, 0, &frame.AuthMsg{Method: "password", User: "x", Password: "y"})
		}, true},
		{"exit, a daemon's frame", func(mc *mux.Conn) error { return mc.SendJSON(frame.Exit, 1, &frame.ExitMsg{}) }, true},
		{"an even channel id", func(mc *mux.Conn) error {
			return mc.SendJSON(frame.Open, 2, &frame.OpenMsg{Kind: frame.KindExec, Window: 1, Argv: []string{"true"}})
		}, false},
		{"stdin for a channel never opened", func(mc *mux.Conn) error { return mc.Send(frame.Stdin, 0, 9, []byte("x")) }, false},
		{"a broken open", func(mc *mux.Conn) error { return mc.Send(frame.Open, 0, 1, []byte("{")) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("unix", f.sock)
			require.NoError(t, err)
			defer func() { _ = nc.Close() }()
			require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
			mc := mux.NewConn(nc, nil, 0, 0)
			require.NoError(t, mc.SendJSON(frame.Hello, 0, &frame.HelloMsg{Software: "raw", MaxPayload: frame.DefaultMaxPayload}))
			fr, err := mc.ReadFrame()
			require.NoError(t, err)
			require.Equal(t, frame.Hello, fr.Type)
			require.NoError(t, tc.send(mc))
			fr, err = mc.ReadFrame()
			require.NoError(t, err)
			require.Equal(t, frame.Error, fr.Type)
			if tc.fatal {
				assert.Equal(t, uint32(0), fr.Channel)
				_, err = mc.ReadFrame()
				require.Error(t, err, "the connection should have ended")
			} else {
				assert.NotEqual(t, uint32(0), fr.Channel)
			}
			out, err := mustSession(t, good).Output(t.Context(), "echo", "still")
			require.NoError(t, err)
			assert.Equal(t, "still\n", string(out))
		})
	}
}

// When the master's connection to the daemon is lost, its clients' are
// ended too, and a resumable command reconnects (here directly) and
// resumes with nothing lost.
func TestControlUpstreamLost(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	c := f.local(t)
	s := mustSession(t, c)
	lost := make(chan struct{}, 4)
	s.Reconnect = &rexec.Reconnect{Dial: f.dial, Notify: func(err error) {
		if err != nil {
			lost <- struct{}{}
		}
	}}
	var out execdtest.SyncBuffer
	s.Stdout = &out
	require.NoError(t, s.StartShell(t.Context(), `for i in $(seq 1 40); do echo $i; sleep 0.01; done; exit 4`))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "5\n") }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, f.p.ResetOpen())
	select {
	case <-f.done:
		require.Error(t, f.err)
		assert.NotErrorIs(t, f.err, rexec.ErrControlStopped)
	case <-time.After(10 * time.Second):
		t.Fatal("the master did not end with its connection")
	}
	err := s.Wait()
	var ee *rexec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 4, ee.ExitStatus())
	var want strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	assert.Equal(t, want.String(), out.String())
	assert.Len(t, lost, 1)
	// And the socket takes no client any more.
	_, err = rexec.DialControl(t.Context(), f.sock, "x", &rexec.Config{Timeout: time.Second})
	require.Error(t, err)
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
}

// Signals and a pty's resizes are relayed as any frame: a TERM through
// the master ends the command with it.
func TestControlRelaysSignals(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	c := f.local(t)
	s := mustSession(t, c)
	var out execdtest.SyncBuffer
	s.Stdout = &out
	require.NoError(t, s.StartShell(t.Context(), `trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.05; done`))
	require.Eventually(t, func() bool { return out.String() == "ready\n" }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, s.Signal(rexec.SIGTERM))
	var ee *rexec.ExitError
	require.ErrorAs(t, s.Wait(), &ee)
	assert.Equal(t, 9, ee.ExitStatus())
	assert.Equal(t, "ready\ngot TERM\n", out.String())
}

// Issue 27 item 8: a client of the master that grants a GiB of credit
// and never reads makes the master hold at most its bound per stream,
// not what the daemon would send; the master's other clients go on.
func TestControlHoldsBoundedForAClientThatDoesNotRead(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	good := f.local(t)
	nc, err := net.Dial("unix", f.sock)
	require.NoError(t, err)
	defer func() { _ = nc.Close() }()
	mc := mux.NewConn(nc, nil, 0, 0)
	require.NoError(t, mc.SendJSON(frame.Hello, 0, &frame.HelloMsg{Software: "raw", MaxPayload: frame.DefaultMaxPayload}))
	before := f.p.ToClient.Load()
	require.NoError(t, mc.SendJSON(frame.Open, 1, &frame.OpenMsg{Kind: frame.KindExec, Window: frame.MaxWindow, Argv: []string{"head", "-c", "300000000", "/dev/zero"}}))
	// It never reads: what the daemon sent the master stops growing.
	last, still := int64(-1), 0
	require.Eventually(t, func() bool {
		n := f.p.ToClient.Load()
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
		return still >= 10 // 500 ms without a byte
	}, 30*time.Second, 50*time.Millisecond)
	held := last - before
	t.Logf("the daemon sent the master %d bytes for a client that reads nothing", held)
	assert.Less(t, held, int64(32<<20), "the master holds at most its bound, not the client's credit")
	out, err := mustSession(t, good).Output(t.Context(), "echo", "still")
	require.NoError(t, err)
	assert.Equal(t, "still\n", string(out))
}

// The master's bounds on what it holds never stall a stream: twenty
// commands at once through one client of it, with credit that together
// passes every bound (16 MiB per channel at its 8 MiB window), each
// deliver their 10 MB whole.
func TestControlBoundsNeverStall(t *testing.T) {
	f := startMaster(t, rexec.ControlOptions{Persist: time.Minute})
	c, err := rexec.DialControl(t.Context(), f.sock, f.p.Addr, &rexec.Config{Window: 8 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	var wg sync.WaitGroup
	errs := make([]error, 20)
	sizes := make([]int64, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.NewSession()
			if err != nil {
				errs[i] = err
				return
			}
			var n countWriter
			s.Stdout = &n
			errs[i] = s.Run(t.Context(), "head", "-c", "10000000", "/dev/zero")
			sizes[i] = n.n.Load()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("streams stalled behind the master's bounds")
	}
	for i := range 20 {
		assert.NoError(t, errs[i])
		assert.Equal(t, int64(10000000), sizes[i])
	}
}

type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// A command on a shared connection whose output passes MoveAfter moves to
// a connection of its own (Reconnect.Own): every byte once and in order,
// its own status, and the shared channel's takeover not taken for a
// failure. Commands that exit around the move (the exit may come on the
// shared channel, or after the attach) lose nothing either.
func TestControlBulkMovesToItsOwnConnection(t *testing.T) {
	t.Parallel()
	f := startMaster(t, rexec.ControlOptions{})
	run := func(lines int, moveAfter int64) int32 {
		t.Helper()
		c := f.local(t)
		var owns atomic.Int32
		s, err := c.NewSession()
		require.NoError(t, err)
		s.Reconnect = &rexec.Reconnect{
			Dial:      func(ctx context.Context) (*rexec.Client, error) { return rexec.DialControl(ctx, f.sock, f.p.Addr, nil) },
			Own:       func(ctx context.Context) (*rexec.Client, error) { owns.Add(1); return f.dial(ctx) },
			MoveAfter: moveAfter,
		}
		stdout := &lineChecker{stream: "out", step: 1}
		stderr := &lineChecker{stream: "err", step: 16}
		s.Stdout, s.Stderr = stdout, stderr
		require.NoError(t, s.StartShell(t.Context(), numberedCmd(lines)))
		var ee *rexec.ExitError
		require.ErrorAs(t, s.Wait(), &ee, "the command's own status")
		assert.Equal(t, 7, ee.Status)
		stdout.check(t, lines)
		stderr.check(t, (lines+15)/16)
		return owns.Load()
	}
	assert.EqualValues(t, 1, run(100000, 1<<20), "6 MiB of output moved after 1 MiB")
	assert.EqualValues(t, 0, run(100000, -1), "MoveAfter < 0: never")
	for range 10 {
		run(18000, 1<<20) // about 1.1 MiB: the exit comes around the move
	}
}
