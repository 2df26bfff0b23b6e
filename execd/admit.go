package execd

import (
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
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
	loggedIn  int
	fdBudget  int // connections allowed before the open-file reserve; 0: no limit known

	dropped  int // since the last warning
	warnedAt time.Time
}

// admit decides, right after Accept, whether the connection c may
// start its handshake; "" means yes, else why not. Called with s.mu held.
func (s *Server) admit(c *serverConn) string {
	a := &s.adm
	st := s.MaxStartups.withDefaults()
	switch {
	case a.fdBudget > 0 && len(s.conns) >= a.fdBudget:
		return "near the open-file limit"
	case a.perSource[c.src] >= st.PerSource:
		return "too many connections from this address still logging in"
	case a.startups >= st.Full:
		return "too many connections still logging in"
	case a.startups >= st.Begin:
		p := st.Rate + (100-st.Rate)*(a.startups-st.Begin)/max(st.Full-st.Begin, 1)
		if rand.IntN(100) < p {
			return "random early drop: many connections still logging in"
		}
	}
	if a.perSource == nil {
		a.perSource = make(map[string]int)
	}
	a.startups++
	a.perSource[c.src]++
	c.phase = phaseStartup
	return ""
}

// logIn moves c from the startup count to the logged-in count; false
// when the daemon is at MaxConns logged-in connections.
func (s *Server) logIn(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
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
