//go:build unix

package execd_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// A connection reset in the middle of output ends Wait at once with
// ErrConnectionLost: nothing waits on a stream of a dead connection.
func TestResetMidOutputEndsWait(t *testing.T) {
	t.Parallel()
	d := execdtest.Start(t, &execd.Server{KillGrace: 500 * time.Millisecond}, false)
	p := execdtest.StartProxy(t, d.Addr)
	p.ResetNext(true, 64<<10)
	c := dial(t, &execdtest.Server{Addr: p.Addr, Fingerprint: d.Fingerprint})
	s, err := c.NewSession()
	require.NoError(t, err)
	s.Stdout, s.Stderr = io.Discard, io.Discard
	require.NoError(t, s.StartShell(t.Context(), "for i in $(seq 0 29); do seq 1 20000; sleep 0.1; done"))
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, rexec.ErrConnectionLost)
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after a connection reset")
	}
	assert.False(t, errors.Is(c.Wait(), nil))
}

// Item 9: a process that escaped its group with the output pipe holds the
// exit back no longer than the documented bound (KillGrace plus a second).
func TestEscapedProcessDoesNotHoldExit(t *testing.T) {
	t.Parallel()
	_, c := start(t) // KillGrace 500ms
	s, err := c.NewSession()
	require.NoError(t, err)
	var out bytes.Buffer
	s.Stdout = &out
	began := time.Now()
	require.NoError(t, s.StartShell(t.Context(), "setsid sleep 25 & echo $!; sleep 0.5"))
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("exit held back by an escaped process")
	}
	require.NoError(t, err)
	assert.Less(t, time.Since(began), 3*time.Second)
	if pid, err := strconv.Atoi(strings.TrimSpace(out.String())); assert.NoError(t, err) {
		_ = syscall.Kill(pid, syscall.SIGKILL) // the escaped sleep was started for this test
	}
}

// Item 4: a finished connection is not kept in memory until the idle
// timeout (the timer was re-armed after the close). Not parallel: it
// measures the heap.
func TestFinishedConnectionsAreFreed(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{IdleTimeout: time.Hour}, false)
	cfg := &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey()}
	oneShot := func() {
		c, err := rexec.Dial(t.Context(), d.Addr, cfg)
		require.NoError(t, err)
		s, err := c.NewSession()
		require.NoError(t, err)
		require.NoError(t, s.Run(t.Context(), "true"))
		require.NoError(t, c.Close())
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	oneShot()
	before := heap()
	for range 200 {
		oneShot()
	}
	require.Eventually(t, func() bool { return d.Server.NumConns() == 0 }, 5*time.Second, 10*time.Millisecond)
	grew := int64(heap()) - int64(before)
	t.Logf("heap in use after 200 one-shot connections: %+d KiB", grew>>10)
	assert.Less(t, grew, int64(4<<20), "finished connections are still referenced")
}

// memInUse is the heap and stacks in use after a collection.
func memInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// Item 3: a connection that has not logged in costs a few KiB, and such
// connections never take the slots of logged-in users. Not parallel: it
// measures the heap.
func TestSilentConnectionsAreCheapAndSeparate(t *testing.T) {
	l := startLab(t, func(s *execd.Server) {
		s.MaxConns = 4
		s.MaxStartups = execd.Startups{Begin: 1000, Full: 1000, PerSource: 1000}
	})
	before := memInUse()
	const n = 300
	execdtest.SilentConns(t, l.d.Addr, "127.0.0.2", n)
	require.Eventually(t, func() bool { return l.srv.NumConns() == n }, 10*time.Second, 10*time.Millisecond)
	per := (memInUse() - before) / n
	t.Logf("memory per silent connection: %d KiB", per>>10)
	assert.Less(t, per, int64(64<<10), "a peer that has not logged in gets small buffers")

	began := time.Now()
	c := l.login(t, "alice")
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.Run(t.Context(), "true"))
	assert.Less(t, time.Since(began), time.Second, "alice logs in past 300 silent sockets")
}

// Item 3: connections still logging in are capped per source address and
// overall; the ones past the cap are told so in the busy line, and
// closed, before any handshake. (Each sends a byte, as a slow client
// does: silent ones would be closed to make room instead.)
func TestStartupsCappedPerSource(t *testing.T) {
	t.Parallel()
	l := startLab(t, func(s *execd.Server) { s.MaxStartups = execd.Startups{PerSource: 8} })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
	busy := 0
	for range 20 {
		c, err := d.Dial("tcp", l.d.Addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, _ = c.Write([]byte{0x16}) // the first byte of a TLS record
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		b, err := io.ReadAll(io.LimitReader(c, frame.MaxBusyLine))
		if err == nil { // closed after the line
			got, perr := frame.ParseBusy(b)
			require.NoError(t, perr, "%q", b)
			assert.Equal(t, "too many connections from this address still logging in", got.Reason)
			assert.Positive(t, got.RetryAfter)
			busy++
		}
	}
	assert.Equal(t, 12, busy, "past 8 from one address, connections are refused before any handshake")
	l.login(t, "alice") // from 127.0.0.1: unaffected
}

// dialFrom logs in to addr from the loopback address src.
func dialFrom(ctx context.Context, addr, src string, cfg *rexec.Config) (*rexec.Client, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := rexec.NewClient(ctx, nc, addr, cfg)
	if err != nil {
		_ = nc.Close()
	}
	return c, err
}

// Item 7: forty connections guessing alice's password from one address
// slow that address down, not alice: her key login, and her password
// from another address, get in within a second during the burst.
func TestGuessingDoesNotLockOutTheUser(t *testing.T) {
	t.Parallel()
	l := startLab(t, func(s *execd.Server) {
		s.AuthDelay, s.AuthDelayMax = 0, 0 // the defaults: 250ms steps up to 5s
		s.AuthTimeout = 3 * time.Second    // guessers left waiting give up soon
	})
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var guesses atomic.Int64
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := dialFrom(ctx, l.d.Addr, "127.0.0.4", &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), User: "alice", Auth: []rexec.AuthMethod{rexec.Password("guess")}})
				if err == nil {
					_ = c.Close()
				}
				guesses.Add(1)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	require.Eventually(t, func() bool { return guesses.Load() >= 40 }, 20*time.Second, 10*time.Millisecond)

	began := time.Now()
	c, err := l.dialAs(t, "alice", rexec.PublicKey(l.keys["alice"]))
	require.NoError(t, err)
	assert.Less(t, time.Since(began), time.Second, "a key login never waits behind password failures")
	_ = c.Close()

	began = time.Now()
	c, err = dialFrom(t.Context(), l.d.Addr, "127.0.0.5", &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), User: "alice", Auth: []rexec.AuthMethod{rexec.Password(l.pws["alice"])}})
	require.NoError(t, err)
	// The user's own delay is capped at 500 ms (a lockout would stack up
	// to AuthDelayMax, 5 s); argon2id under the race detector, beside 40
	// guessers on two cores, takes the rest (1.8 s seen in CI).
	assert.Less(t, time.Since(began), 3*time.Second, "the right password from another address gets in")
	_ = c.Close()

	stop()
	wg.Wait()
	began = time.Now()
	_, err = dialFrom(t.Context(), l.d.Addr, "127.0.0.4", &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), User: "bob", Auth: []rexec.AuthMethod{rexec.Password("guess")}})
	require.Error(t, err)
	// Refused at once while its earlier connections still hold their
	// startup slots, or let in to guess, and then slowed down.
	if ae := (*rexec.AuthError)(nil); errors.As(err, &ae) {
		assert.Greater(t, time.Since(began), time.Second, "the guessing address itself is slowed down")
	}
}

// Item 20: one Config serves many Dials, concurrently (as ssh.ClientConfig
// does): an auth method keeps no state between logins.
func TestConfigReusedConcurrently(t *testing.T) {
	t.Parallel()
	l := startLab(t, nil)
	cfg := &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), User: "bob",
		Auth: []rexec.AuthMethod{rexec.PublicKey(l.keys["alice"]), rexec.PublicKey(l.keys["bob"])}}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				c, err := rexec.Dial(t.Context(), l.d.Addr, cfg)
				if err != nil {
					t.Log(err)
					failed.Add(1)
					continue
				}
				_ = c.Close()
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, failed.Load(), "of 200 Dials with one Config")
}

// Item 11: daemons sharing one home (an NFS home, or several daemons on
// one machine) put to one name at once: every put succeeds, the file is
// one of them whole, and no partial copy is left.
func TestSharedHomeConcurrentPuts(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	const daemons = 4
	var clients []*rexec.Client
	var srcs []string
	for i := range daemons {
		d := execdtest.Start(t, &execd.Server{Dir: home}, false)
		clients = append(clients, dial(t, d))
		src := filepath.Join(t.TempDir(), "f1.txt")
		require.NoError(t, os.WriteFile(src, bytes.Repeat([]byte{byte('a' + i)}, 3<<20), 0o644))
		srcs = append(srcs, src)
	}
	require.NoError(t, os.Mkdir(filepath.Join(home, "fs"), 0o755))
	for round := range 10 {
		var wg sync.WaitGroup
		errs := make([]error, daemons)
		for i := range daemons {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = clients[i].Put(t.Context(), []string{srcs[i]}, "fs/f1.txt", nil)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "round %d, daemon %d", round, i)
		}
		got, err := os.ReadFile(filepath.Join(home, "fs", "f1.txt"))
		require.NoError(t, err)
		require.Len(t, got, 3<<20)
		assert.Equal(t, bytes.Repeat(got[:1], 3<<20), got, "one put whole, not a mix")
		left, err := os.ReadDir(filepath.Join(home, "fs"))
		require.NoError(t, err)
		require.Len(t, left, 1, "no partial copy left: %v", left)
	}
}

// Item 5: a named pipe in the home is refused at once by get, list and
// checksum, and never blocks the daemon.
func TestFIFONeverBlocks(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(home, "pipe"), 0o644))
	d := execdtest.Start(t, &execd.Server{Dir: home, MaxConns: 2}, false)
	c := dial(t, d)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := c.Get(ctx, "pipe", filepath.Join(t.TempDir(), "x"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a regular file")
	fsys, err := c.OpenFS(ctx, "")
	require.NoError(t, err)
	_, _, err = fsys.Checksum(ctx, "pipe")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a regular file")
	list, err := fsys.ReadDir(ctx, "pipe")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "pipe", list[0].Name)
	_, err = c.Put(ctx, []string{writeTemp(t, "x")}, "pipe", nil)
	require.NoError(t, err, "a put replaces the pipe with a file")
	require.NoError(t, ctx.Err(), "nothing waited for a writer")
}

func writeTemp(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "src")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// Item 6: with a client's payload limit at its minimum (4096), a reply
// that cannot fit is refused with an error reply, and the file session
// goes on.
func TestSmallPayloadLimitRepliesFit(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	long := strings.Repeat("d/", 2040) // a 4080-byte target
	require.NoError(t, os.Symlink(long, filepath.Join(home, "link")))
	require.NoError(t, os.WriteFile(filepath.Join(home, "small"), nil, 0o644))
	d := execdtest.Start(t, &execd.Server{Dir: home}, false)
	c, err := rexec.Dial(t.Context(), d.Addr, &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), MaxPayload: frame.MinMaxPayload})
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	fsys, err := c.OpenFS(t.Context(), "")
	require.NoError(t, err)
	_, err = fsys.Lstat(t.Context(), "link")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "payload limit")
	_, err = fsys.ReadDir(t.Context(), ".")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "payload limit")
	_, err = fsys.Stat(t.Context(), strings.Repeat("n", 4000))
	require.Error(t, err, "an error naming a long path is shortened to fit")
	fi, err := fsys.Stat(t.Context(), "small")
	require.NoError(t, err, "the file session goes on")
	assert.Equal(t, "small", fi.Name)
}

// Item 10: a get/put-only user cannot plant a link that resolves outside
// the home through a chain the names alone do not show.
func TestLinkChainRefusedByDaemon(t *testing.T) {
	t.Parallel()
	l := startLab(t, nil)
	c := l.login(t, "carol") // get and put only
	fsys, err := c.OpenFS(t.Context(), "")
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, fsys.Symlink(ctx, ".", "b"))
	require.NoError(t, fsys.Mkdir(ctx, "d", 0o755))
	require.NoError(t, fsys.Symlink(ctx, "../x", "d/ok"), "a link that stays inside")
	for _, tc := range []struct{ target, link string }{
		{"b/b/b/../../..", "a"},
		{"b/../..", "a2"},
		{"../../etc", "b/b/e"}, // b/b/e is really at the top of the home
		{"../..", "b/d/up"},    // b/d is really d, one level down
	} {
		err := fsys.Symlink(ctx, tc.target, tc.link)
		require.Error(t, err, "%s -> %s", tc.link, tc.target)
		assert.Contains(t, err.Error(), "a link may only point inside the served directory")
	}
	entries, err := os.ReadDir(l.home("carol"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"b", "d"}, names)
}

// Item 8: when the client of a pty session goes away, the whole terminal
// session ends: the shell's background jobs (each in its own group under
// job control), nohup'd ones included. Only a process that left the
// session (setsid) survives, as with sshd.
func TestPtySessionEndsWhole(t *testing.T) {
	t.Parallel()
	d := execdtest.Start(t, &execd.Server{KillGrace: 500 * time.Millisecond}, false)
	c := dial(t, d)
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.RequestPty("xterm", 24, 80))
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	stdin, err := s.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	require.NoError(t, s.StartShell(t.Context(), `set -m; sleep 300 & echo "bg $!"; nohup sleep 301 >/dev/null 2>&1 & echo "nohup $!"; setsid sh -c 'echo "esc $$"; exec sleep 302' & sleep 303`))
	pid := map[string]int{}
	sc := bufio.NewScanner(out)
	for len(pid) < 3 && sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), " "); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, sc.Text())
			pid[k] = n
		}
	}
	require.Len(t, pid, 3)
	pids := []int{pid["bg"], pid["nohup"]}
	escaped := pid["esc"]
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) }) // started by this test; it left the session
	go func() { _, _ = io.Copy(io.Discard, out) }()
	require.NoError(t, c.Close()) // the client vanishes
	require.Eventually(t, func() bool {
		return !execdtest.ProcessAlive(pids[0]) && !execdtest.ProcessAlive(pids[1])
	}, 10*time.Second, 20*time.Millisecond, "background jobs of the pty session outlived it")
	assert.True(t, execdtest.ProcessAlive(escaped), "setsid leaves the session (as with sshd)")
}

// Item 16: a TLS endpoint that is not execd is never pinned; a real daemon
// later on that address is pinned as new, not refused as changed.
func TestNotExecdIsNotPinned(t *testing.T) {
	t.Parallel()
	other := execdtest.Start(t, &execd.Server{}, false) // only for a certificate
	ln, err := tls.Listen("tcp", "127.0.0.1:0", other.Server.TLSConfig)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			_ = nc.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	kh := &rexec.KnownHosts{Path: filepath.Join(t.TempDir(), "known_hosts")}
	cfg := &rexec.Config{HostKeyCallback: kh.Check, HostKeyPin: kh.Pin}
	_, err = rexec.Dial(t.Context(), ln.Addr().String(), cfg)
	require.Error(t, err)
	_, err = os.Stat(kh.Path)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing pinned for an endpoint that is not execd")

	d := execdtest.Start(t, &execd.Server{}, false)
	c, err := rexec.Dial(t.Context(), d.Addr, cfg)
	require.NoError(t, err)
	_ = c.Close()
	b, err := os.ReadFile(kh.Path)
	require.NoError(t, err)
	assert.Equal(t, d.Addr+" "+d.Fingerprint+"\n", string(b))
}

// Item 21: a client that offers a key the user does not have, then the
// right password, leaves no login_failed in the audit log; a connection
// that never logs in still leaves its refused key there.
func TestKeyThenPasswordNoFalseAlarm(t *testing.T) {
	t.Parallel()
	l := startLab(t, nil)
	c, err := l.dialAs(t, "carol", rexec.PublicKey(l.keys["bob"]), rexec.Password(l.pws["carol"]))
	require.NoError(t, err)
	_ = c.Close()
	_, err = l.dialAs(t, "carol", rexec.PublicKey(l.keys["bob"]))
	require.Error(t, err)
	var failed []execd.AuditEvent
	require.Eventually(t, func() bool {
		failed = failed[:0]
		for _, ev := range l.auditEvents(t) {
			if ev.Event == "login_failed" {
				failed = append(failed, ev)
			}
		}
		return len(failed) > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Len(t, failed, 1, "only the connection that never logged in: %+v", failed)
	assert.Equal(t, "publickey", failed[0].Method)
}

// dial logs in to d as its tests' client does.
func dial(t *testing.T, d *execdtest.Server) *rexec.Client { return d.Dial(t) }

// start is a daemon with the tests' kill grace, and a client of it.
func start(t *testing.T) (*execdtest.Server, *rexec.Client) {
	d := execdtest.Start(t, &execd.Server{KillGrace: 500 * time.Millisecond}, false)
	return d, dial(t, d)
}
