package execd

import (
	"errors"
	"io"

	"math/rand/v2"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/proc"
)

// Defaults of the limits on connections that have not logged in yet, in
// the manner of sshd's MaxStartups 64:30:256 and PerSourceMaxStartups.
const (
	DefaultStartupsBegin     = 64
	DefaultStartupsRate      = 30
	DefaultStartupsFull      = 256
	DefaultStartupsPerSource = 32
	// fdReserveMin is the least of the open-file limit kept for running
	// commands (an eighth of it when that is more): past the rest, new
	// connections are closed as soon as they are accepted.
	fdReserveMin = 64
)

// Startups limits connections that have not logged in (TLS, hello and
// login in progress), separately from logged-in ones. With Begin such
// connections open, a new one is dropped with probability Rate percent,
// rising linearly to 100 at Full; a source address may hold at most
// PerSource of them. Zero fields take the defaults above.
type Startups struct {
	Begin, Rate, Full, PerSource int
}

func (st Startups) withDefaults() Startups {
	if st.Begin <= 0 {
		st.Begin = DefaultStartupsBegin
	}
	if st.Rate <= 0 {
		st.Rate = DefaultStartupsRate
	}
	if st.Full <= 0 {
		st.Full = DefaultStartupsFull
	}
	if st.Full < st.Begin {
		st.Full = st.Begin
	}
	if st.PerSource <= 0 {
		st.PerSource = DefaultStartupsPerSource
	}
	return st
}

// admission counts connections by phase; its fields are under Server.mu.
type admission struct {
	startups  int            // connections not logged in yet
	perSource map[string]int // of those, by source address
	sources   map[string]*sourceState
	loggedIn  int
	fdBudget  int // connections allowed before the open-file reserve; 0: no limit known

	dropped  int // since the last warning
	warnedAt time.Time
}

// sourceState is what the daemon holds against a source address, as
// OpenSSH's PerSourcePenalties: each connection from it that ended
// without a login (silent, timed out, refused its login) is a strike,
// and every strike lowers how many connections it may have logging in
// at once; a login from it clears them, and they lapse after
// penaltyLapse without a new one. A classroom behind one NAT address,
// logging in, keeps its full share; a flood from it does not.
type sourceState struct {
	strikes int
	until   time.Time
}

const (
	// penaltyLapse is how long a source's strikes last after its last.
	penaltyLapse = 30 * time.Second
	// maxSources bounds the sources held against: past it, lapsed ones
	// are forgotten first, then a new source is not held against.
	maxSources = 8192
	// silentAge is how long a connection may say nothing after its
	// accept before it may be closed to make room for another: a client
	// sends its first bytes (the TLS ClientHello) with its first packet.
	silentAge = 500 * time.Millisecond
)

// perSourceLimit is how many connections src may have logging in now.
func (a *admission) perSourceLimit(src string, st Startups, now time.Time) int {
	ss := a.sources[src]
	if ss == nil || now.After(ss.until) {
		return st.PerSource
	}
	return max(st.PerSource/(1+ss.strikes), 2)
}

// penalized reports whether src has strikes in force.
func (a *admission) penalized(src string, now time.Time) bool {
	ss := a.sources[src]
	return ss != nil && !now.After(ss.until) && ss.strikes > 0
}

// strike counts a connection from src that ended without a login.
func (a *admission) strike(src string, now time.Time) {
	if a.sources == nil {
		a.sources = make(map[string]*sourceState)
	}
	ss := a.sources[src]
	if ss == nil {
		if len(a.sources) >= maxSources {
			for k, v := range a.sources {
				if now.After(v.until) {
					delete(a.sources, k)
				}
			}
			if len(a.sources) >= maxSources {
				return
			}
		}
		ss = &sourceState{}
		a.sources[src] = ss
	}
	if now.After(ss.until) {
		ss.strikes = 0
	}
	ss.strikes++
	ss.until = now.Add(penaltyLapse)
}

// refusal is why a connection is not taken now, and when its client
// may try again.
type refusal struct {
	reason      string
	retry       time.Duration
	nearFdLimit bool
}

// admit decides, right after Accept, whether the connection c may
// start its handshake; a zero refusal means yes. A connection that would
// be refused takes instead the place of one still logging in that has
// sent nothing since it was accepted (the oldest such from its own
// address, or from anywhere when the daemon as a whole is full), so that
// silent sockets never keep real clients out. Called with s.mu held.
func (s *Server) admit(c *serverConn) refusal {
	a := &s.adm
	st := s.MaxStartups.withDefaults()
	now := time.Now()
	var r refusal
	perSource := false
	switch {
	case a.fdBudget > 0 && len(s.conns) >= a.fdBudget:
		r = refusal{"near the open-file limit", time.Second, true}
	case a.perSource[c.src] >= a.perSourceLimit(c.src, st, now):
		r, perSource = refusal{"too many connections from this address still logging in", 200 * time.Millisecond, false}, true
	case a.startups >= st.Full:
		r = refusal{"too many connections still logging in", 500 * time.Millisecond, false}
	case a.startups >= st.Begin:
		p := st.Rate + (100-st.Rate)*(a.startups-st.Begin)/max(st.Full-st.Begin, 1)
		if rand.IntN(100) < p {
			r = refusal{"random early drop: many connections still logging in", 300 * time.Millisecond, false}
		}
	}
	if r.reason != "" {
		// Only an address in good standing makes room: a flood's own
		// new sockets do not push out its older ones, which stay there
		// for real clients to take.
		if a.penalized(c.src, now) {
			return r
		}
		victim := s.silentVictim(c.src, perSource, now)
		if victim == nil {
			return r
		}
		s.evictLocked(victim)
	}
	if a.perSource == nil {
		a.perSource = make(map[string]int)
	}
	a.startups++
	a.perSource[c.src]++
	c.phase = phaseStartup
	return refusal{}
}

// silentVictim is the connection still logging in that has said nothing
// the longest (silentAge at least): from src when sameSource, else from
// any source, those of the source with the most such connections first.
func (s *Server) silentVictim(src string, sameSource bool, now time.Time) *serverConn {
	skip := map[*serverConn]bool{}
	for range 4 { // a candidate with bytes waiting in the kernel is not silent: the next one
		var victim *serverConn
		for c := range s.conns {
			if c.phase != phaseStartup || (sameSource && c.src != src) || skip[c] ||
				c.watch.read.Load() != 0 || now.Sub(c.accepted) < silentAge {
				continue
			}
			if victim == nil || better(s, c, victim) {
				victim = c
			}
		}
		if victim == nil || proc.Pending(victim.watch.Conn) == 0 {
			return victim
		}
		skip[victim] = true
	}
	return nil
}

// better reports whether c is a better victim than v: from a source with
// more connections logging in, then older.
func better(s *Server, c, v *serverConn) bool {
	nc, nv := s.adm.perSource[c.src], s.adm.perSource[v.src]
	if nc != nv {
		return nc > nv
	}
	return c.accepted.Before(v.accepted)
}

// evictLocked closes a silent connection to make room: it leaves the
// counts now, its source gets a strike, and its handshake fails.
//
// A client that was only slow (a loaded machine, its hello not sent yet)
// is told, as any refused one, and tries again: the busy line is written
// and the write side shut, and its handshake fails when the read
// deadline passes (or at its own hello's answer), so that a hello in
// flight does not turn the close into a reset that would lose the line.
func (s *Server) evictLocked(v *serverConn) {
	s.leaveLocked(v) // a strike for its source
	s.Metrics.connRefused("evicted_silent")
	nc := v.watch.Conn
	_ = nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = nc.Write(frame.AppendBusy(nil, frame.Busy{RetryAfter: 100 * time.Millisecond, Reason: "said nothing for a while, and its place was needed"})) // best effort
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(busyLinger))
		return
	}
	v.abort(errEvicted)
}

// errEvicted ends a connection that said nothing while another needed
// its place (where it cannot be half-closed).
var errEvicted = errors.New("said nothing since its accept, and its place was needed")

// logIn moves c from the startup count to the logged-in count; false
// when the daemon is at MaxConns logged-in connections. Its source's
// strikes are cleared: it logs in.
func (s *Server) logIn(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.loggedIn = true
	delete(s.adm.sources, c.src)
	s.leaveLocked(c)
	if s.adm.loggedIn >= orDefault(s.MaxConns, DefaultMaxConns) {
		return false
	}
	s.adm.loggedIn++
	c.phase = phaseLoggedIn
	return true
}

// leave forgets c's place in the counts; idempotent.
func (s *Server) leave(c *serverConn) {
	s.mu.Lock()
	s.leaveLocked(c)
	s.mu.Unlock()
}

func (s *Server) leaveLocked(c *serverConn) {
	a := &s.adm
	switch c.phase {
	case phaseStartup:
		a.startups--
		if a.perSource[c.src]--; a.perSource[c.src] <= 0 {
			delete(a.perSource, c.src)
		}
		if !c.loggedIn {
			a.strike(c.src, time.Now()) // ended without a login
		}
	case phaseLoggedIn:
		a.loggedIn--
	}
	c.phase = phaseGone
}

// dropped counts a refused connection and says whether to warn now: at
// most one warning every ten seconds, with the count since the last.
func (s *Server) droppedLocked() (n int, warn bool) {
	a := &s.adm
	a.dropped++
	if time.Since(a.warnedAt) < 10*time.Second {
		return 0, false
	}
	n, a.dropped, a.warnedAt = a.dropped, 0, time.Now()
	return n, true
}

// Phases of a connection in the admission counts.
const (
	phaseNone = iota
	phaseStartup
	phaseLoggedIn
	phaseGone
)

// temporaryAccept reports whether an Accept error will pass (a full file
// table, an aborted connection, a timeout), so that Serve backs off and
// retries rather than ending.
func temporaryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR, syscall.EAGAIN, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// fdBudget is how many connections may be open before the reserve of
// the open-file limit (0 when the limit is unknown or unlimited).
func fdBudget() int {
	limit := openFileLimit()
	if limit <= 0 {
		return 0
	}
	reserve := max(fdReserveMin, limit/8)
	return max(limit-reserve, limit/2)
}

// watchedConn counts the bytes read from a connection: one that has
// sent none is silent.
type watchedConn struct {
	net.Conn
	read atomic.Int64
}

// CloseWrite half-closes the connection, as the connection it wraps
// does (a fatal error's linger needs it).
func (w *watchedConn) CloseWrite() error {
	if cw, ok := w.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (w *watchedConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.read.Add(int64(n))
	return n, err
}

// refuseBusy tells a connection that is not taken now why and when to
// try again, in the plain line clients read before any handshake
// (frame.BusyPrefix), and closes it. The client's first bytes (its TLS
// hello) may be in flight or unread: closing over unread bytes would
// reset the connection and lose the line, so the write side is shut
// first and what comes is read and dropped for a moment, by at most
// maxLingering goroutines at once (past them, or near the open-file
// limit, the connection is closed at once).
func (s *Server) refuseBusy(nc net.Conn, r refusal, nearFdLimit bool) {
	_ = nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = nc.Write(frame.AppendBusy(nil, frame.Busy{RetryAfter: r.retry, Reason: r.reason})) // best effort
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || nearFdLimit || s.lingering.Add(1) > maxLingering {
		if ok && !nearFdLimit {
			s.lingering.Add(-1)
		}
		_ = nc.Close()
		return
	}
	_ = cw.CloseWrite()
	go func() {
		defer s.lingering.Add(-1)
		_ = nc.SetReadDeadline(time.Now().Add(busyLinger))
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
		_ = nc.Close()
	}()
}

// maxLingering bounds the refused connections read for busyLinger before
// they are closed.
const (
	maxLingering = 256
	busyLinger   = 500 * time.Millisecond
)
