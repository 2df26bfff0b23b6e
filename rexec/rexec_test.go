package rexec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/testmain"
	"github.com/execd-project/execd/rexec"
)

func dial(t *testing.T, d *execdtest.Server) *rexec.Client { return dialTB(t, d) }

func dialTB(t testing.TB, d *execdtest.Server) *rexec.Client { return d.Dial(t) }

func start(t *testing.T) (*execdtest.Server, *rexec.Client) {
	d := execdtest.Start(t, &execd.Server{KillGrace: 500 * time.Millisecond}, false)
	return d, dial(t, d)
}

func TestRunOutput(t *testing.T) {
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.Output(t.Context(), "echo", "hello", "world")
	require.NoError(t, err)
	assert.Equal(t, "hello world\n", string(out))
}

func TestExitCodes(t *testing.T) {
	_, c := start(t)
	for _, code := range []int{0, 1, 2, 42, 127, 128, 200, 255} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			s, err := c.NewSession()
			require.NoError(t, err)
			err = s.StartShell(t.Context(), fmt.Sprintf("exit %d", code))
			require.NoError(t, err)
			err = s.Wait()
			if code == 0 {
				require.NoError(t, err)
				return
			}
			var ee *rexec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, code, ee.Status)
			assert.Equal(t, code, ee.ExitStatus())
		})
	}
}

func TestSignalDeath(t *testing.T) {
	_, c := start(t)
	for _, sig := range []string{"TERM", "KILL", "INT", "HUP", "SEGV"} {
		t.Run(sig, func(t *testing.T) {
			s, err := c.NewSession()
			require.NoError(t, err)
			err = s.Run(t.Context(), "sh", "-c", "kill -"+sig+" $$")
			var ee *rexec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, rexec.Signal(sig), ee.Signal)
			assert.Equal(t, 128+rexec.SignalNumber(rexec.Signal(sig)), ee.ExitStatus())
		})
	}
}

func allBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestStdoutStderrByteExact(t *testing.T) {
	home := t.TempDir()
	c := dial(t, execdtest.Start(t, &execd.Server{Dir: home}, false))
	dir := filepath.Join(home, "sub")
	require.NoError(t, os.Mkdir(dir, 0o755))
	outData := bytes.Repeat(allBytes(256), 1000)
	rev := make([]byte, 256)
	for i := range rev {
		rev[i] = byte(255 - i)
	}
	errData := bytes.Repeat(rev, 777)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "out"), outData, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "err"), errData, 0o644))
	s, err := c.NewSession()
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	s.Dir = "sub" // relative to the served directory
	require.NoError(t, s.Run(t.Context(), "sh", "-c", "cat out; cat err >&2; cat out; exit 0"))
	assert.Equal(t, append(append([]byte{}, outData...), outData...), stdout.Bytes())
	assert.Equal(t, errData, stderr.Bytes())
}

func TestMain(m *testing.M) { testmain.Main(m, testmain.Options{Goroutines: true}) }

func TestStdinEOF(t *testing.T) {
	_, c := start(t)
	tests := []struct {
		name  string
		argv  []string
		stdin string
		want  string
	}{
		{"cat", []string{"cat"}, "abc\x00\xffdef", "abc\x00\xffdef"},
		{"sort", []string{"sort"}, "b\nc\na\n", "a\nb\nc\n"},
		{"wc -c", []string{"wc", "-c"}, strings.Repeat("x", 1<<20), "1048576\n"},
		{"empty stdin", []string{"wc", "-c"}, "", "0\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.NewSession()
			require.NoError(t, err)
			s.Stdin = strings.NewReader(tc.stdin)
			out, err := s.Output(t.Context(), tc.argv...)
			require.NoError(t, err)
			assert.Equal(t, tc.want, strings.TrimLeft(string(out), " "))
		})
	}
	t.Run("nil stdin is empty", func(t *testing.T) {
		s, err := c.NewSession()
		require.NoError(t, err)
		out, err := s.Output(t.Context(), "cat")
		require.NoError(t, err)
		assert.Empty(t, out)
	})
	t.Run("stdin pipe", func(t *testing.T) {
		s, err := c.NewSession()
		require.NoError(t, err)
		w, err := s.StdinPipe()
		require.NoError(t, err)
		var out bytes.Buffer
		s.Stdout = &out
		require.NoError(t, s.Start(t.Context(), "sort", "-r"))
		_, err = io.WriteString(w, "1\n3\n2\n")
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.NoError(t, s.Wait())
		assert.Equal(t, "3\n2\n1\n", out.String())
	})
}

// TestExitNeverRacesOutput runs commands that write and exit at once: the
// output must always arrive whole before the status.
func TestExitNeverRacesOutput(t *testing.T) {
	_, c := start(t)
	for i := range 100 {
		s, err := c.NewSession()
		require.NoError(t, err)
		var out, errb bytes.Buffer
		s.Stdout, s.Stderr = &out, &errb
		err = s.Run(t.Context(), "sh", "-c", "head -c 70000 /dev/zero; echo -n e >&2; exit 3")
		var ee *rexec.ExitError
		require.ErrorAs(t, err, &ee, "run %d", i)
		require.Equal(t, 3, ee.Status)
		require.Equal(t, 70000, out.Len(), "run %d", i)
		require.Equal(t, "e", errb.String(), "run %d", i)
	}
}

// TestConcurrentChannelsWithStalledReader runs 50 commands on one
// connection; one of them produces far more than its window and is never
// read. The others must all complete.
func TestConcurrentChannelsWithStalledReader(t *testing.T) {
	_, c := start(t)
	stalled, err := c.NewSession()
	require.NoError(t, err)
	_, err = stalled.StdoutPipe() // never read
	require.NoError(t, err)
	require.NoError(t, stalled.Start(t.Context(), "sh", "-c", "head -c 100000000 /dev/zero"))

	var wg sync.WaitGroup
	errs := make(chan error, 49)
	for i := range 49 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.NewSession()
			if err != nil {
				errs <- err
				return
			}
			out, err := s.Output(t.Context(), "sh", "-c", fmt.Sprintf("head -c 300000 /dev/zero; echo %d", i))
			if err != nil {
				errs <- err
				return
			}
			if len(out) != 300000+len(fmt.Sprint(i))+1 {
				errs <- fmt.Errorf("channel %d: %d bytes", i, len(out))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("channels stalled behind the unread one")
	}
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	require.NoError(t, stalled.Close())
	var ee *rexec.ExitError
	require.ErrorAs(t, stalled.Wait(), &ee)
	assert.Equal(t, rexec.SIGTERM, ee.Signal)
}

func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(got), want) {
		require.True(t, time.Now().Before(deadline), "waiting for %q, got %q", want, got)
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			require.Contains(t, string(got), want, "stream ended: %v", err)
		}
	}
	return string(got)
}

func TestPtySizeAndResize(t *testing.T) {
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.RequestPty("xterm", 40, 100))
	stdin, err := s.StdinPipe()
	require.NoError(t, err)
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context(), "sh", "-c", `stty size; echo "term=$TERM tty=$(tty >/dev/null && echo yes)"; read x; stty size; exit 4`))
	got := readUntil(t, out, "tty=yes")
	assert.Contains(t, got, "40 100")
	assert.Contains(t, got, "term=xterm")
	require.NoError(t, s.WindowChange(50, 120))
	_, err = io.WriteString(stdin, "go\n")
	require.NoError(t, err)
	readUntil(t, out, "50 120")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	var ee *rexec.ExitError
	require.ErrorAs(t, s.Wait(), &ee)
	assert.Equal(t, 4, ee.Status)
}

func TestPtyStdinEOF(t *testing.T) {
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.RequestPty("dumb", 24, 80))
	s.Stdin = strings.NewReader("hello\n")
	out, err := s.Output(t.Context(), "cat")
	require.NoError(t, err)
	assert.Contains(t, string(out), "hello\r\n")
}

func TestSignalReachesProcessGroup(t *testing.T) {
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	// sh runs its trap only once its foreground child has ended: quickly
	// only if the child, in the same process group, got INT too. The child
	// says ready itself, once it runs with INT's default action (an INT
	// that came between the fork and the exec would be taken by the
	// trap's handler the child inherits, and lost).
	require.NoError(t, s.Start(t.Context(), "sh", "-c", `trap 'echo got INT; exit 3' INT; sh -c 'echo ready; exec sleep 30'; echo not reached`))
	readUntil(t, out, "ready")
	start := time.Now()
	require.NoError(t, s.Signal(rexec.SIGINT))
	readUntil(t, out, "got INT")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	var ee *rexec.ExitError
	require.ErrorAs(t, s.Wait(), &ee)
	assert.Equal(t, 3, ee.Status)
	assert.Less(t, time.Since(start), 5*time.Second, "sleep in the group was interrupted")
}

func TestTimeLimit(t *testing.T) {
	_, c := start(t)
	tests := []struct {
		name       string
		cmd        string
		wantSignal rexec.Signal
	}{
		{"TERM ends it", "sleep 30", rexec.SIGTERM},
		{"KILL after grace when TERM is ignored", "trap '' TERM; sleep 30 & wait; wait", rexec.SIGKILL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.NewSession()
			require.NoError(t, err)
			s.Timeout = 300 * time.Millisecond
			begin := time.Now()
			err = s.Run(t.Context(), "sh", "-c", tc.cmd)
			var ee *rexec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.True(t, ee.TimedOut)
			assert.Equal(t, tc.wantSignal, ee.Signal)
			assert.Less(t, time.Since(begin), 5*time.Second)
		})
	}
}

func TestContextCancelEndsCommand(t *testing.T) {
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	require.NoError(t, s.Start(ctx, "sleep", "30"))
	require.ErrorIs(t, s.Wait(), context.DeadlineExceeded)
	assert.Less(t, time.Since(begin), 5*time.Second)
}

func TestExecFailure(t *testing.T) {
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	err = s.Start(t.Context(), "/no/such/program")
	var em *frame.ErrorMsg
	require.ErrorAs(t, err, &em)
	assert.Equal(t, frame.CodeExecFailed, em.Code)
	s2, err := c.NewSession()
	require.NoError(t, err)
	s2.Dir = "/no/such/dir"
	require.ErrorAs(t, s2.Start(t.Context(), "true"), &em)
	assert.Contains(t, em.Message, "working directory")
	// the connection still works
	s3, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s3.Run(t.Context(), "true"))
}

func TestEnvAndDir(t *testing.T) {
	home := t.TempDir()
	c := dial(t, execdtest.Start(t, &execd.Server{Dir: home}, false))
	dir := filepath.Join(home, "a b")
	require.NoError(t, os.Mkdir(dir, 0o755))
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.Setenv("GREETING", "hi there"))
	s.Dir = "a b"
	out, err := s.Output(t.Context(), "sh", "-c", `echo "$GREETING"; pwd`)
	require.NoError(t, err)
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	assert.Equal(t, "hi there\n"+real+"\n", string(out))
	require.Error(t, s.Setenv("A=B", "x"))
}

func TestGracefulShutdown(t *testing.T) {
	d, c := start(t)
	running, err := c.NewSession()
	require.NoError(t, err)
	out, err := running.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, running.Start(t.Context(), "sh", "-c", "echo started; sleep 0.5; echo finished"))
	readUntil(t, out, "started")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- d.Server.Shutdown(ctx)
	}()
	// new commands are refused once the daemon said go-away
	require.Eventually(t, func() bool {
		s, err := c.NewSession()
		if err != nil {
			return true
		}
		err = s.Run(t.Context(), "true")
		return errors.Is(err, rexec.ErrGoAway) || err != nil
	}, 5*time.Second, 20*time.Millisecond)
	readUntil(t, out, "finished")
	require.NoError(t, running.Wait())
	require.NoError(t, <-shut)
	// new connections are refused
	_, err = rexec.Dial(t.Context(), d.Addr, &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), Timeout: time.Second})
	require.Error(t, err)
}

func TestShutdownGraceOverThenClose(t *testing.T) {
	d, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context(), "sh", "-c", "echo $$; exec sleep 30"))
	pidLine := readUntil(t, out, "\n")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, d.Server.Shutdown(ctx), context.DeadlineExceeded)
	require.NoError(t, d.Server.Close())
	err = s.Wait()
	require.Error(t, err)
	var pid int
	_, _ = fmt.Sscan(pidLine, &pid)
	require.NotZero(t, pid)
	assert.False(t, execdtest.ProcessAlive(pid), "command survived Close")
}

func TestDroppedConnectionKillsGroup(t *testing.T) {
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context(), "sh", "-c", "sleep 300 & echo $!; sleep 301 & echo $!; echo $$; wait"))
	got := readUntil(t, out, "\n")
	for strings.Count(got, "\n") < 3 {
		got += readUntil(t, out, "\n")
	}
	var pids []int
	for _, f := range strings.Fields(got) {
		var p int
		_, _ = fmt.Sscan(f, &p)
		pids = append(pids, p)
	}
	require.Len(t, pids, 3)
	for _, p := range pids {
		require.True(t, execdtest.ProcessAlive(p))
	}
	require.NoError(t, c.Close()) // the connection drops
	require.ErrorIs(t, s.Wait(), rexec.ErrConnectionLost)
	require.Eventually(t, func() bool {
		for _, p := range pids {
			if execdtest.ProcessAlive(p) {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "processes of the group outlived the connection")
}

func TestLimits(t *testing.T) {
	t.Run("channels per connection", func(t *testing.T) {
		d := execdtest.Start(t, &execd.Server{MaxChannels: 2}, false)
		c := dial(t, d)
		var sessions []*rexec.Session
		for range 2 {
			s, err := c.NewSession()
			require.NoError(t, err)
			_, _ = s.StdinPipe()
			require.NoError(t, s.Start(t.Context(), "cat"))
			sessions = append(sessions, s)
		}
		s, err := c.NewSession()
		require.NoError(t, err)
		var em *frame.ErrorMsg
		require.ErrorAs(t, s.Start(t.Context(), "true"), &em)
		assert.Equal(t, frame.CodeTooManyChannels, em.Code)
		for _, s := range sessions {
			require.NoError(t, s.Close())
			_ = s.Wait()
		}
	})
	t.Run("connections", func(t *testing.T) {
		d := execdtest.Start(t, &execd.Server{MaxConns: 1}, false)
		_ = dial(t, d)
		start := time.Now()
		_, err := rexec.Dial(t.Context(), d.Addr, &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), Timeout: time.Second})
		var em *frame.ErrorMsg
		require.ErrorAs(t, err, &em)
		assert.Equal(t, frame.CodeTooManyConns, em.Code)
		var busy *rexec.BusyError
		require.ErrorAs(t, err, &busy, "retried as busy, within the timeout")
		assert.Greater(t, busy.Tries, 1)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("idle timeout", func(t *testing.T) {
		d := execdtest.Start(t, &execd.Server{IdleTimeout: 200 * time.Millisecond}, false)
		c := dial(t, d)
		s, err := c.NewSession()
		require.NoError(t, err)
		require.NoError(t, s.Run(t.Context(), "sleep", "0.4"), "a running command keeps the connection")
		var em *frame.ErrorMsg
		require.ErrorAs(t, c.Wait(), &em)
		assert.Equal(t, frame.CodeIdleTimeout, em.Code)
	})
}

func TestHostKeyPinning(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{}, false)
	other := execdtest.Start(t, &execd.Server{}, false)
	kh := &rexec.KnownHosts{Path: filepath.Join(t.TempDir(), "known_hosts")}
	var pinned []string
	kh.OnPin = func(addr, fp string) { pinned = append(pinned, addr+" "+fp) }
	c, err := rexec.Dial(t.Context(), d.Addr, &rexec.Config{HostKeyCallback: kh.Check, HostKeyPin: kh.Pin})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	assert.Equal(t, []string{d.Addr + " " + d.Fingerprint}, pinned)
	// same daemon again: accepted silently
	c, err = rexec.Dial(t.Context(), d.Addr, &rexec.Config{HostKeyCallback: kh.Check, HostKeyPin: kh.Pin})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	assert.Len(t, pinned, 1)
	// another identity at the pinned address: refused
	err = kh.Check(d.Addr, other.Fingerprint)
	var hk *rexec.HostKeyError
	require.ErrorAs(t, err, &hk)
	require.ErrorIs(t, err, rexec.ErrHostKeyChanged)
	assert.Contains(t, err.Error(), "line 1")
	// through a real handshake too
	require.NoError(t, os.WriteFile(kh.Path, []byte(other.Addr+" "+d.Fingerprint+"\n"), 0o600))
	_, err = rexec.Dial(t.Context(), other.Addr, &rexec.Config{HostKeyCallback: kh.Check})
	require.ErrorIs(t, err, rexec.ErrHostKeyChanged)
	// strict mode refuses unknown hosts
	strict := &rexec.KnownHosts{Path: filepath.Join(t.TempDir(), "kh"), Strict: true}
	_, err = rexec.Dial(t.Context(), d.Addr, &rexec.Config{HostKeyCallback: strict.Check})
	require.ErrorIs(t, err, rexec.ErrHostKeyUnknown)
	_, err = rexec.Dial(t.Context(), d.Addr, &rexec.Config{})
	require.ErrorIs(t, err, rexec.ErrNoHostKeyCheck)
}

func TestPing(t *testing.T) {
	_, c := start(t)
	rtt, err := c.Ping(t.Context())
	require.NoError(t, err)
	assert.Less(t, rtt, time.Second)
	assert.Contains(t, c.ServerSoftware(), "execd")
}

// TestStreamGiBBoundedMemory streams 1 GiB of stdout and checks that the
// heap stays bounded by the windows, not the output size.
func TestStreamGiBBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB")
	}
	_, c := start(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	cw := &countingWriter{}
	s.Stdout = cw
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}()
	require.NoError(t, s.Run(t.Context(), "head", "-c", "1073741824", "/dev/zero"))
	close(stop)
	<-sampled
	assert.Equal(t, int64(1<<30), cw.n)
	t.Logf("peak heap in use (daemon and client together): %.1f MiB", float64(peak)/(1<<20))
	assert.Less(t, peak, uint64(48<<20))
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
