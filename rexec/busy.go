package rexec

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/execd-project/execd/frame"
)

// BusyError is a daemon's "not now": it took the TCP connection but not
// the login, with too many connections logging in (overall, or from this
// address: a classroom behind one NAT), and said when to try again. Dial
// retries it, with backoff and jitter, within its timeout.
type BusyError struct {
	Addr       string
	Reason     string
	RetryAfter time.Duration
	Tries      int   // by Dial, when it gave up
	Err        error // the daemon's refusal, when it came as an error frame
}

func (e *BusyError) Unwrap() error { return e.Err }

func (e *BusyError) Error() string {
	if e.Tries > 1 {
		return fmt.Sprintf("rexec: %s is busy: %s (tried %d times within the connect timeout; try again later)", e.Addr, e.Reason, e.Tries)
	}
	return fmt.Sprintf("rexec: %s is busy: %s; try again later", e.Addr, e.Reason)
}

// busyConn reads a daemon's busy line in place of its handshake: the
// first byte tells (frame.BusyPrefix).
type busyConn struct {
	net.Conn
	addr    string
	checked bool
}

func (b *busyConn) Read(p []byte) (int, error) {
	if b.checked || len(p) == 0 {
		return b.Conn.Read(p)
	}
	n, err := b.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	b.checked = true
	if p[0] != frame.BusyPrefix[0] {
		return n, err
	}
	line := append([]byte(nil), p[:n]...)
	for err == nil && !bytes.ContainsRune(line, '\n') && len(line) < frame.MaxBusyLine {
		var m int
		m, err = b.Conn.Read(p)
		line = append(line, p[:m]...)
	}
	busy, perr := frame.ParseBusy(line[:min(len(line), frame.MaxBusyLine)])
	if perr != nil {
		return 0, fmt.Errorf("not an execd daemon? it began with %q", line[:min(len(line), 40)])
	}
	return 0, &BusyError{Addr: b.addr, Reason: busy.Reason, RetryAfter: busy.RetryAfter}
}

// busyBackoff is the wait before the next try after a busy reply: what
// the daemon asked, doubled for each try before (at most 2 s), with
// jitter, so that a classroom that came at once does not come back at once.
func busyBackoff(asked time.Duration, tries int) time.Duration {
	base := max(asked, 50*time.Millisecond) << min(tries-1, 5)
	base = min(base, 2*time.Second)
	return base/2 + rand.N(base)
}

// sleepCtx waits d, or less if ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
