package execd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// Errors that end a connection, as logged by the daemon.
var (
	// ErrKeepaliveTimeout ends a connection whose peer did not answer a ping.
	ErrKeepaliveTimeout = errors.New("execd: keepalive timeout: peer did not answer ping")
	// ErrIdleTimeout ends a connection that had no open channel for IdleTimeout.
	ErrIdleTimeout = errors.New("execd: idle timeout")
	// ErrHandshakeTimeout ends a connection that did not complete TLS and hello in time.
	ErrHandshakeTimeout = errors.New("execd: handshake timeout")
)

// serverConn is one client connection: its admission, login and account,
// and the session that carries its channels.
type serverConn struct {
	srv      *Server
	nc       net.Conn
	watch    *watchedConn // nc, counting what the peer sent
	accepted time.Time
	src      string // the remote address without its port
	phase    int    // in the admission counts, under srv.mu
	loggedIn bool   // under srv.mu
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelCauseFunc

	// acct is who the connection acts for, set once the handshake is
	// done; a reload of the users replaces it (see Server.applyUsers).
	acct    atomic.Pointer[account]
	revalMu sync.Mutex // one revalidate at a time

	mu        sync.Mutex
	sess      *mux.Session // set once the handshake is done
	goingAway bool
	kinds     map[string]int        // open channels by kind, for Status
	chans     map[*mux.Channel]*job // open channels (and the command each streams), for a revoked permission

	wg sync.WaitGroup // channel goroutines
}

func (s *Server) newConn(nc net.Conn) *serverConn {
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &watchedConn{Conn: nc}
	return &serverConn{
		srv:      s,
		nc:       w,
		watch:    w,
		accepted: time.Now(),
		src:      addrHost(nc.RemoteAddr()),
		log:      s.logger().With("remote", nc.RemoteAddr().String()),
		ctx:      ctx,
		cancel:   cancel,
	}
}

// abort ends the connection and every command on it.
func (c *serverConn) abort(cause error) {
	c.cancel(cause)
	_ = c.nc.Close() // best effort: unblocks the read loop
}

// goAway refuses new channels and closes the connection once the running
// ones have finished.
func (c *serverConn) goAway(reason string) {
	c.mu.Lock()
	if c.goingAway {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	sess := c.sess
	c.mu.Unlock()
	if sess != nil { // else still in the handshake: refused after the login
		sess.GoAway(reason, ErrServerClosed)
	}
}

func (c *serverConn) serve() {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection panic", "panic", r, "stack", string(debug.Stack()))
		}
		c.cancel(errors.New("connection closed"))
		c.mu.Lock()
		sess, acct := c.sess, c.account()
		c.mu.Unlock()
		if sess != nil {
			_ = sess.Close()
		}
		_ = c.nc.Close() // best effort
		c.wg.Wait()
		if acct != nil && acct.st != nil {
			acct.st.release(&acct.st.conns)
		}
		c.srv.leave(c)
		c.log.Debug("connection closed")
	}()

	sess, err := c.handshake()
	if err != nil {
		c.log.Info("handshake failed", "err", err)
		c.srv.Metrics.connRefused(handshakeFailure(err))
		return
	}
	c.log.Info("connection established")
	err = sess.Wait()
	var v *mux.Violation
	switch {
	case c.ctx.Err() != nil:
		c.log.Debug("connection ended", "cause", context.Cause(c.ctx))
	case errors.As(err, &v):
		c.log.Warn("protocol error, closing connection", "code", v.Code, "err", v.Err)
	case errors.Is(err, mux.ErrPeerClosed), errors.Is(err, mux.ErrClosed), errors.Is(err, ErrServerClosed):
	default:
		c.log.Info("connection ended", "cause", err)
	}
}

// handshake runs TLS (when configured), the hello exchange and the login
// within their timeouts, applies the connection caps, and starts the
// session with a handler per channel kind.
func (c *serverConn) handshake() (*mux.Session, error) {
	s := c.srv
	ctx, cancel := context.WithTimeout(c.ctx, durOr(s.HandshakeTimeout, DefaultHandshakeTimeout))
	defer cancel()
	cfg := mux.Config{
		MaxPayload:     s.MaxPayload,
		IdleTimeout:    s.IdleTimeout,
		IdleError:      ErrIdleTimeout,
		KeepAliveError: ErrKeepaliveTimeout,
		MaxChannels:    orDefault(s.MaxChannels, DefaultMaxChannels),
		Logger:         c.log,
	}
	if s.KeepAlive >= 0 {
		cfg.KeepAlive = durOr(s.KeepAlive, DefaultKeepAlive)
	}
	if s.Tracer != nil {
		if t := s.Tracer(c.nc.RemoteAddr().String()); t != nil {
			cfg.Tracer = t
		}
	}
	sess, err := mux.Accept(ctx, c.nc, s.TLSConfig, cfg)
	if err != nil {
		if errors.Is(err, mux.ErrHandshakeTimeout) {
			return nil, ErrHandshakeTimeout
		}
		return nil, err
	}
	if s.Users == nil && !s.logIn(c) { // no login: the hello is the last step
		return nil, c.refuseFull(sess)
	}
	software := s.Software
	if software == "" {
		software = "execd"
	}
	sh := &frame.HelloMsg{Software: software, KeepAliveMS: cfg.KeepAlive.Milliseconds(), Features: []string{frame.FeatureBLAKE3}, Instance: s.instanceID(), MaxChannels: cfg.MaxChannels}
	if s.Users != nil {
		sh.Auth, sh.Challenge = authMethods, newChallenge()
	}
	if err := sess.SendHello(sh); err != nil {
		return nil, err
	}
	acct := s.daemonAccount()
	if s.Users != nil {
		if acct, err = c.authenticate(sess, sh.Challenge); err != nil {
			return nil, fmt.Errorf("%w: %w", errLogin, err)
		}
		c.log = c.log.With("user", acct.user.Name)
	}
	if s.Users != nil && !s.logIn(c) {
		acct.st.release(&acct.st.conns)
		return nil, c.refuseFull(sess)
	}
	c.mu.Lock()
	goingAway := c.goingAway
	if !goingAway {
		c.sess = sess
	}
	c.mu.Unlock()
	if goingAway {
		_ = sess.Conn().SendError(frame.ConnChannel, frame.CodeShuttingDown, "server shutting down")
		return nil, ErrServerClosed
	}
	c.setAccount(acct)
	c.log = c.log.With("client", sess.Peer().Software)
	for kind, k := range kindHandlers {
		sess.Handle(kind, c.guard(func(nc mux.NewChannel) { k.open(c, nc) }))
	}
	sess.Start(c.ctx)
	return sess, nil
}

var (
	// errTooManyConns ends a connection refused at MaxConns.
	errTooManyConns = errors.New("too many connections")
	// errLogin wraps why a connection ended during its login.
	errLogin = errors.New("login")
)

// refuseFull tells the client the daemon is at MaxConns.
func (c *serverConn) refuseFull(sess *mux.Session) error {
	max := orDefault(c.srv.MaxConns, DefaultMaxConns)
	sess.Refuse(frame.CodeTooManyConns, fmt.Sprintf("server is at its limit of %d connections", max))
	return errTooManyConns
}

// handshakeFailure is why a connection ended before it was served, as
// the metrics count it.
func handshakeFailure(err error) string {
	switch {
	case errors.Is(err, errTooManyConns):
		return "max_conns"
	case errors.Is(err, errUserConns):
		return "user_conns"
	case errors.Is(err, ErrServerClosed):
		return "shutting_down"
	case errors.Is(err, ErrHandshakeTimeout):
		return "handshake_timeout"
	case errors.Is(err, errLogin):
		return "login"
	}
	return "handshake"
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// guard wraps a channel kind's handler with what every kind needs: the
// user's permission (audited when refused) and the user's channel limit,
// whose slot the channel gives back when it ends.
func (c *serverConn) guard(open func(mux.NewChannel)) mux.Handler {
	return func(nc mux.NewChannel) {
		c.srv.refreshUsers() // an edit of the users file counts from this open on
		if c.ctx.Err() != nil {
			return // the edit revoked this connection's login: it is ending, its channels with it
		}
		m, acct := nc.OpenMsg(), c.account()
		if err := acct.mayOpen(m.Kind); err != nil {
			c.srv.Audit.Log(&AuditEvent{Event: m.Kind, User: acct.user.Name, Addr: c.nc.RemoteAddr().String(),
				Argv: m.Argv, Shell: m.Shell, Path: m.Path, Result: err.Error()})
			c.reject(nc, frame.CodeNotPermitted, err.Error())
			return
		}
		if acct.st != nil {
			if !acct.st.acquire(&acct.st.chans, acct.user.MaxChannels) {
				c.reject(nc, frame.CodeUserLimit, fmt.Sprintf("user %s already has %d channels open, the most allowed", acct.user.Name, acct.user.MaxChannels))
				return
			}
			context.AfterFunc(nc.Context(), func() { acct.st.release(&acct.st.chans) })
		}
		c.count(nc.Channel, 1)
		c.srv.Metrics.channelOpened(m.Kind)
		context.AfterFunc(nc.Context(), func() { c.count(nc.Channel, -1) })
		open(nc)
	}
}

// streams records that ch, open, streams the command of j.
func (c *serverConn) streams(ch *mux.Channel, j *job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, open := c.chans[ch]; open {
		c.chans[ch] = j
	}
}

// account is who the connection acts for now; nil before its login.
func (c *serverConn) account() *account { return c.acct.Load() }

// count records ch as open (d = 1) or ended (d = -1).
func (c *serverConn) count(ch *mux.Channel, d int) {
	kind := ch.Kind()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kinds == nil {
		c.kinds = map[string]int{}
		c.chans = map[*mux.Channel]*job{}
	}
	if c.kinds[kind] += d; c.kinds[kind] <= 0 {
		delete(c.kinds, kind)
	}
	if d > 0 {
		c.chans[ch] = nil
	} else {
		delete(c.chans, ch)
	}
}

// reject refuses an open, saying so in the log.
func (c *serverConn) reject(nc mux.NewChannel, code frame.Code, msg string) {
	c.log.Info("open refused", "channel", nc.ID(), "code", code, "err", msg)
	c.srv.Metrics.channelRefusedWith(nc.OpenMsg().Kind, code)
	nc.Reject(code, msg)
}
