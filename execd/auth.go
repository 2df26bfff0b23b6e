package execd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/asuser"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/userkey"
)

// Defaults of authentication.
const (
	DefaultAuthTimeout  = time.Minute // sshd's LoginGraceTime is two
	DefaultMaxAuthTries = 6           // as sshd's MaxAuthTries
	maxHashers          = 2           // argon2id hashes at once (19 MiB each)
)

// Errors of authentication, as logged by the daemon.
var (
	errAuthTimeout  = errors.New("execd: no successful authentication in time")
	errAuthTries    = errors.New("execd: too many failed authentication attempts")
	errAuthRequired = errors.New("execd: frame before authentication")
	errUserConns    = errors.New("execd: user connection limit")
)

// authMethods are the methods a server with a users database offers.
var authMethods = []string{frame.AuthPublicKey, frame.AuthPassword}

// account is who a connection acts for once authenticated: a user of the
// database, or, without one, the daemon's own user confined to the served
// directory.
type account struct {
	user     User       // Name is empty without a users database
	home     string     // absolute; commands and file sessions start here
	st       *userState // nil without a users database
	confined bool       // files through os.Root at home (User.Confined)
	os       osAccount  // the account commands and file work run as
	cred     *asuser.Cred
	// noAccount says why the user has no account to act as (see
	// Server.accountOf): their commands are refused with it, and so are
	// their files unless they are confined.
	noAccount error
	// via is how the connection logged in: "key " and the key's
	// fingerprint, or "password"; a reload that withdraws it ends the
	// connection (Server.applyUsers).
	via string
	gen uint64 // the generation of the users database user comes from
}

// can reports whether the account holds the permission.
func (a *account) can(perm string) bool { return a.st == nil || a.user.Can(perm) }

// denied is the error for a missing permission.
func (a *account) denied(perm, what string) error {
	return fmt.Errorf("user %s may not %s (no %q permission)", a.user.Name, what, perm)
}

// userState is what the daemon tracks for one user over all connections.
type userState struct {
	mu           sync.Mutex
	conns, chans int
}

// acquire takes one unit of *n if it is below limit (0: no limit).
func (st *userState) acquire(n *int, limit int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if limit > 0 && *n >= limit {
		return false
	}
	*n++
	return true
}

func (st *userState) release(n *int) {
	st.mu.Lock()
	*n--
	st.mu.Unlock()
}

// userStateFor returns the shared state of the named user.
func (s *Server) userStateFor(name string) *userState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userStates == nil {
		s.userStates = make(map[string]*userState)
	}
	st := s.userStates[name]
	if st == nil {
		st = &userState{}
		s.userStates[name] = st
	}
	return st
}

func (s *Server) authInit() {
	s.authOnce.Do(func() {
		s.hasher = newHasher(maxHashers)
		base := durOr(s.AuthDelay, DefaultAuthDelay)
		maxDelay := durOr(s.AuthDelayMax, DefaultAuthDelayMax)
		s.throttle = newThrottle(base, maxDelay, true)
		s.userThrottle = newThrottle(base, min(maxDelay, DefaultUserDelayMax), false)
	})
}

// newChallenge returns the random bytes a publickey proof must sign.
func newChallenge() []byte {
	b := make([]byte, frame.ChallengeLen)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return b
}

// addrHost is the address without the port, the throttle's key.
func addrHost(a net.Addr) string {
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// authenticate runs the authentication phase: Auth frames until one
// succeeds, the attempts run out, or the time does. Nothing but Auth,
// Ping and Pong is accepted before it succeeds.
func (c *serverConn) authenticate(sess *mux.Session, challenge []byte) (*account, error) {
	s := c.srv
	s.authInit()
	timeout := durOr(s.AuthTimeout, DefaultAuthTimeout)
	deadline := time.Now().Add(timeout)
	_ = c.nc.SetDeadline(deadline) // best effort
	ctx, cancel := context.WithDeadlineCause(c.ctx, deadline, errAuthTimeout)
	defer cancel()
	l := &login{c: c, sess: sess, ctx: ctx, host: addrHost(c.nc.RemoteAddr()), timeout: timeout}
	// A key the user does not have, followed by a right password, is the
	// usual path of a client that holds a key for other accounts: its
	// refusal is audited only if the connection never logs in, so that
	// the audit log holds no false alarms.
	defer func() {
		if !l.loggedIn {
			for _, ev := range l.keyFails {
				s.Audit.Log(ev)
			}
		}
	}()
	maxTries := orDefault(s.MaxAuthTries, DefaultMaxAuthTries)
	for fails := 0; ; {
		m, verr, err := l.receive()
		if err != nil {
			return nil, err
		}
		// The penalty falls on the source (OpenSSH's PerSourcePenalties).
		// A password guess also costs its user name a short, bounded
		// delay; a key login never waits for password failures.
		waitStart := time.Now()
		release, err := l.waitTurn(m)
		s.Metrics.throttled(time.Since(waitStart))
		if err != nil {
			return l.fatal(frame.CodeAuthFailed, errAuthTimeout, "no successful authentication within %s", timeout)
		}
		acct, keyFP, reason := c.checkAuth(ctx, m, verr, challenge, sess.Binding())
		ev := &AuditEvent{Event: "login", User: m.User, Addr: c.nc.RemoteAddr().String(), Method: m.Method, Key: keyFP}
		if acct != nil {
			return l.succeeded(acct, m, ev, release)
		}
		fails++
		l.failed(m, ev, reason, release)
		c.log.Warn("login failed", "user", m.User, "method", m.Method, "reason", reason, "attempt", fails)
		if fails >= maxTries {
			return l.fatal(frame.CodeAuthFailed, errAuthTries, "%s; too many failed attempts (%d), closing", reason, fails)
		}
		if err := sess.Conn().SendJSON(frame.AuthReply, frame.ConnChannel, &frame.AuthReplyMsg{Methods: authMethods, Message: reason}); err != nil {
			return nil, err
		}
	}
}

// login is one connection's authentication in progress.
type login struct {
	c        *serverConn
	sess     *mux.Session
	ctx      context.Context
	host     string
	timeout  time.Duration
	keyFails []*AuditEvent // refused keys, audited if no login follows
	loggedIn bool
}

// fatal refuses the connection with code and the message, and ends the
// login with err.
func (l *login) fatal(code frame.Code, err error, format string, args ...any) (*account, error) {
	l.sess.Refuse(code, fmt.Sprintf(format, args...))
	return nil, err
}

// receive reads the next attempt; verr is what is wrong with it, for
// checkAuth to refuse. An error ends the login (the client told why, if
// it is the client's fault).
func (l *login) receive() (m *frame.AuthMsg, verr, err error) {
	payload, err := l.sess.Receive(frame.Auth)
	var ne net.Error
	var re *frame.RemoteError
	var v *mux.Violation
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		_, err = l.fatal(frame.CodeAuthFailed, errAuthTimeout, "no successful authentication within %s", l.timeout)
		return nil, nil, err
	case errors.As(err, &re):
		return nil, nil, fmt.Errorf("client gave up authenticating: %s", re.Message)
	case errors.As(err, &v):
		_, err = l.fatal(frame.CodeAuthRequired, errAuthRequired,
			"%v before authentication: this daemon requires a login (publickey or password) first", v.Err)
		return nil, nil, err
	case err != nil:
		return nil, nil, err
	}
	m = &frame.AuthMsg{}
	verr = frame.Unmarshal(payload, m)
	if errors.Is(verr, frame.ErrMalformed) {
		_, err = l.fatal(frame.CodeMalformed, verr, "%v", verr)
		return nil, nil, err
	}
	return m, verr, nil
}

// waitTurn waits until the attempt may be checked: the source's delay,
// and for a password one guess at a time per source and the user name's
// delay. release ends the turn.
func (l *login) waitTurn(m *frame.AuthMsg) (release func(), err error) {
	s := l.c.srv
	release = func() {}
	if m.Method != frame.AuthPassword {
		return release, s.throttle.wait(l.ctx, l.host)
	}
	r, err := s.throttle.serial(l.ctx, l.host)
	if err != nil {
		return release, err
	}
	if err := s.throttle.wait(l.ctx, l.host); err != nil {
		r()
		return release, err
	}
	if err := s.userThrottle.wait(l.ctx, m.User); err != nil {
		r()
		return release, err
	}
	return r, nil
}

// succeeded logs acct in, within the user's connection limit.
func (l *login) succeeded(acct *account, m *frame.AuthMsg, ev *AuditEvent, release func()) (*account, error) {
	s := l.c.srv
	if !acct.st.acquire(&acct.st.conns, acct.user.MaxConns) {
		release()
		ev.Event, ev.Result = "login_failed", "connection limit"
		s.Audit.Log(ev)
		s.Metrics.login(m.Method, "limit")
		return l.fatal(frame.CodeUserLimit, errUserConns,
			"user %s already has %d connections, the most allowed", m.User, acct.user.MaxConns)
	}
	s.throttle.succeeded(l.host)
	s.userThrottle.succeeded(m.User)
	release()
	ev.Result = "ok"
	s.Audit.Log(ev)
	s.Metrics.login(m.Method, "ok")
	l.loggedIn = true
	l.c.log.Info("login", "user", m.User, "method", m.Method, "key", ev.Key)
	err := l.sess.Conn().SendJSON(frame.AuthReply, frame.ConnChannel, &frame.AuthReplyMsg{
		OK: true, User: acct.user.Name, Allow: acct.user.Allow, Message: "logged in as " + acct.user.Name})
	if err != nil {
		acct.st.release(&acct.st.conns)
		return nil, err
	}
	_ = l.c.nc.SetDeadline(time.Time{}) // best effort
	return acct, nil
}

// failed counts a refused attempt against the source (and, for a
// password, the user name) and audits it.
func (l *login) failed(m *frame.AuthMsg, ev *AuditEvent, reason string, release func()) {
	s := l.c.srv
	s.throttle.failed(l.host)
	if m.Method == frame.AuthPassword {
		s.userThrottle.failed(m.User)
	}
	release()
	ev.Event, ev.Result = "login_failed", reason
	s.Metrics.login(m.Method, "failed")
	if m.Method == frame.AuthPublicKey {
		l.keyFails = append(l.keyFails, ev)
	} else {
		s.Audit.Log(ev)
	}
}

// checkAuth decides one attempt: the account on success, else why not.
func (c *serverConn) checkAuth(ctx context.Context, m *frame.AuthMsg, verr error, challenge, binding []byte) (acct *account, keyFP, reason string) {
	s := c.srv
	if verr != nil {
		return nil, "", strings.TrimPrefix(verr.Error(), frame.ErrInvalid.Error()+": ")
	}
	s.Users.refresh()
	u, known, gen := s.Users.current(m.User)
	if err := s.Users.Err(); err != nil {
		c.log.Error("users database unreadable; the last good users stay in force", "err", err)
	}
	switch m.Method {
	case frame.AuthPassword:
		ok, err := s.hasher.check(ctx, u.Password, m.Password)
		if err != nil && known && u.Password != "" {
			c.log.Error("stored password hash unusable", "user", m.User, "err", err)
		}
		if !known || !ok {
			return nil, "", fmt.Sprintf("user %s: wrong password, or no such user", m.User)
		}
	case frame.AuthPublicKey:
		pub := ed25519.PublicKey(m.Key)
		fp := userkey.Fingerprint(pub)
		keys, _ := u.PublicKeys() // validated when the database was read
		authorized := false
		for _, k := range keys {
			if k.Equal(pub) {
				authorized = true
			}
		}
		if !known || !authorized {
			return nil, fp, fmt.Sprintf("user %s: key %s is not authorized, or no such user", m.User, fp)
		}
		if !ed25519.Verify(pub, frame.ProofBytes(m.User, challenge, binding), m.Sig) {
			return nil, fp, fmt.Sprintf("user %s: the key proof does not verify for this session (made for another session or challenge)", m.User)
		}
		keyFP = fp
	}
	a := s.accountFor(u)
	a.gen, a.via = gen, "password"
	if keyFP != "" {
		a.via = "key " + keyFP
	}
	return a, keyFP, ""
}

// accountFor is what a connection of u acts as.
func (s *Server) accountFor(u User) *account {
	a := &account{user: u, home: u.Home, st: s.userStateFor(u.Name), confined: u.Confined() || !hostPaths}
	a.os, a.cred, a.noAccount = s.accountOf(u)
	if a.home == "" {
		a.home = a.os.Home
	}
	if a.home == "" {
		a.home = "/"
	}
	return a
}
