package rexec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// The channel kinds a control master answers itself: they never reach
// the daemon.
const (
	// KindControlCheck asks the master who it is: the open_ok's pid.
	KindControlCheck = "control-check"
	// KindControlExit asks the master to stop taking clients and to exit
	// once the channels it relays have ended.
	KindControlExit = "control-exit"
)

// A client of a control master pings it every ControlKeepAlive; after
// ControlKeepAliveMax pings in a row unanswered its connection ends with
// ErrControlKeepAlive (wrapped in ErrConnectionLost).
const (
	ControlKeepAlive    = time.Second
	ControlKeepAliveMax = 5
)

// ErrControlKeepAlive ends a connection to a control master that stopped
// answering pings.
var ErrControlKeepAlive = errors.New("the control master stopped answering (stopped or hung)")

// ErrControlStopped ends ServeControl after a client asked it to exit,
// or ctx ended, once its last client left.
var ErrControlStopped = errors.New("rexec: control master stopped")

// ControlOptions configures ServeControl.
type ControlOptions struct {
	// Persist is how long the master stays with no client connected
	// (ssh's ControlPersist); 0 means it exits when its last client
	// leaves. The first client gets at least 10 s to arrive.
	Persist time.Duration
	// Allow, when set, decides whether a connection may use the master
	// (rexec checks the peer's user id); an error refuses it.
	Allow func(net.Conn) error
	// Logger receives the master's events; nil discards them.
	Logger *slog.Logger
	// Stopped, when set, is called once the master takes no new client
	// (asked to exit, ctx ended, or on its way out): the place to give its
	// socket's path to a successor, while the clients it has finish.
	Stopped func()
}

// ServeControl shares c's connection with the clients that connect to ln:
// rexec's control master, as ssh's ControlMaster. A client speaks the
// protocol to it as to the daemon, without TLS and without a login
// (frame/SPEC.md, "Shared connections"): the master answers the hello with
// the daemon's, and the login with the one c made, then relays each
// channel the client opens as a channel of c, frames untouched but for
// their ids. The daemon sees one connection and one user.
//
// It returns when c's connection ends (the error says why; every client's
// connection is ended with it, so that their resumable commands
// reconnect), or with ErrControlStopped once a client asked it to exit,
// or ctx ended, and the last client has left, or after Persist with no
// client. It closes ln first thing on the way out, then c.
func (c *Client) ServeControl(ctx context.Context, ln net.Listener, opts ControlOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &master{c: c, opts: opts, log: log, locals: map[*local]struct{}{},
		stop: make(chan struct{}), changed: make(chan struct{}, 1)}
	defer func() { _ = c.Close() }()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				m.stopTaking()
				return
			}
			go m.serve(nc)
		}
	}()
	stopCtx := context.AfterFunc(ctx, m.stopTaking)
	defer stopCtx()
	idle := time.NewTimer(max(opts.Persist, 10*time.Second))
	defer idle.Stop()
	var err error
	for err == nil {
		select {
		case <-c.sess.Done():
			err = c.cause()
		case <-m.changed:
			n, stopped := m.count()
			idle.Stop()
			switch {
			case n == 0 && stopped:
				err = ErrControlStopped
			case n == 0:
				idle.Reset(opts.Persist)
			}
		case <-idle.C:
			err = ErrControlStopped
		case <-m.stop:
			_ = ln.Close()
			if n, _ := m.count(); n == 0 {
				err = ErrControlStopped
			}
		}
	}
	_ = ln.Close()
	m.stopTaking()
	m.endAll(err)
	return err
}

// master is the state of ServeControl.
type master struct {
	c    *Client
	opts ControlOptions
	log  *slog.Logger

	ahead atomic.Int64 // credit granted to the daemon for all clients, not yet written to them

	mu       sync.Mutex
	locals   map[*local]struct{}
	stopped  bool
	stop     chan struct{} // closed by stopTaking
	changed  chan struct{} // a client came or left
	stopOnce sync.Once
}

// stopTaking makes the master take no new client and exit once the last
// one has left.
func (m *master) stopTaking() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		close(m.stop)
		if m.opts.Stopped != nil {
			m.opts.Stopped()
		}
	})
}

func (m *master) count() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.locals), m.stopped
}

func (m *master) poke() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// endAll ends every client's connection with why the master ends.
func (m *master) endAll(why error) {
	m.mu.Lock()
	ls := make([]*local, 0, len(m.locals))
	for l := range m.locals {
		ls = append(ls, l)
	}
	m.mu.Unlock()
	code, msg := frame.CodeShuttingDown, "the control master ended"
	if why != nil && !errors.Is(why, ErrControlStopped) {
		msg = fmt.Sprintf("the control master's connection to %s ended: %v", m.c.addr, why)
	}
	if codeIs(why, frame.CodeRevoked) {
		code = frame.CodeRevoked // the clients must not reconnect: the login no longer stands
	}
	for _, l := range ls {
		l.fail(code, msg)
	}
}

// local is one client of the master: the relay of its channels, and the
// credit the master keeps for them (controlcredit.go).
type local struct {
	m *master
	d *mux.Downstream

	mu     sync.Mutex
	credit map[uint32]*relayCredit // by the client's id
	ahead  int64                   // credit granted to the daemon, not yet written to the client
}

// handshakeTimeout bounds a client's hello to the master.
const handshakeTimeout = 10 * time.Second

// serve runs one client's connection.
func (m *master) serve(nc net.Conn) {
	defer func() { _ = nc.Close() }()
	if m.opts.Allow != nil {
		if err := m.opts.Allow(nc); err != nil {
			m.log.Info("control client refused", "err", err)
			return
		}
	}
	up := m.c.sess.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	sess, err := mux.Accept(ctx, nc, nil, mux.Config{MaxPayload: up.PeerMax(), Logger: m.log})
	if err != nil {
		return
	}
	if mine := up.MaxRecv(); sess.Peer().MaxPayload < mine {
		sess.Refuse(frame.CodeInvalid, fmt.Sprintf("this control master relays frames of up to %d bytes; the client accepts %d", mine, sess.Peer().MaxPayload))
		return
	}
	hello := m.c.hello
	hello.Auth, hello.Challenge, hello.KeepAliveMS = nil, nil, 0
	loggedIn := m.c.auth.OK
	if loggedIn {
		hello.Features = append(slices.Clip(hello.Features), frame.FeatureControlLogin)
	}
	if sess.SendHello(&hello) != nil {
		return
	}
	if loggedIn && sess.Conn().SendJSON(frame.AuthReply, frame.ConnChannel, &m.c.auth) != nil {
		return
	}
	_ = nc.SetDeadline(time.Time{})
	l := &local{m: m, credit: map[uint32]*relayCredit{}}
	l.d = mux.NewDownstream(sess.Conn(), m.c.sess, mux.DownstreamHooks{
		Answer:    l.answer,
		Relaying:  l.openCredit,
		Opened:    l.opened,
		Window:    l.clientWindow,
		Delivered: l.delivered,
		Finished:  l.forgetCredit,
		GoneAway:  l.goneAway,
	})
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		sess.Refuse(frame.CodeShuttingDown, "the control master is exiting")
		return
	}
	m.locals[l] = struct{}{}
	m.mu.Unlock()
	m.poke()
	_ = l.d.Serve()
	m.mu.Lock()
	delete(m.locals, l)
	m.mu.Unlock()
	m.poke()
}

// answer answers the kinds of channel the master serves itself.
func (l *local) answer(id uint32, kind string) (bool, error) {
	switch kind {
	case KindControlCheck, KindControlExit:
	default:
		return false, nil
	}
	if kind == KindControlExit {
		l.m.stopTaking()
	}
	p, err := frame.Marshal(&frame.OpenOKMsg{Window: 1, PID: os.Getpid()})
	if err != nil {
		return true, err
	}
	l.d.Send(frame.OpenOK, 0, id, p)
	return true, nil
}

// goneAway is the error a client's open gets while the daemon is going
// away; the next rexec makes a new master.
func (l *local) goneAway() string {
	l.m.stopTaking()
	return fmt.Sprintf("%s accepts no new commands: %s", l.m.c.addr, l.m.c.sess.GoneAway())
}

// fail ends the client's connection with an error.
func (l *local) fail(code frame.Code, msg string) { l.d.Fail(code, msg) }

// DialControl connects to the control master listening at path and
// returns a client of the connection it shares: what Dial gives for the
// daemon at addr (the name errors use), without a connect, a TLS
// handshake or a login. cfg.Timeout (0: 10 s) bounds it, so that a master
// that hangs cannot hang its caller. An error from the connect itself is
// returned as it is (a *net.OpError: the caller tells a missing socket
// from a stale one).
func DialControl(ctx context.Context, path, addr string, cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	log := cfg.logger()
	mc := cfg.mux(log)
	// The master is a process of this machine: it answers a ping at once
	// whatever the network, so one that stops answering (stopped, hung)
	// is noticed in seconds, not the daemon's minute, and a resumable
	// command goes on through another connection.
	mc.KeepAlive, mc.KeepAliveMax, mc.KeepAliveError = ControlKeepAlive, ControlKeepAliveMax, ErrControlKeepAlive
	c, err := func() (*Client, error) {
		sess, err := mux.Dial(ctx, nc, nil, mc, cfg.hello())
		if err != nil {
			return nil, err
		}
		var reply frame.AuthReplyMsg
		if slices.Contains(sess.Peer().Features, frame.FeatureControlLogin) {
			p, err := sess.Receive(frame.AuthReply)
			if err != nil {
				return nil, err
			}
			if err := frame.Unmarshal(p, &reply); err != nil {
				return nil, err
			}
			if !reply.OK {
				return nil, fmt.Errorf("not logged in: %s", reply.Message)
			}
		}
		c := start(sess, addr, cfg, reply, log)
		c.shared = true
		return c, nil
	}()
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("rexec: control master %s: %w", path, ctxErr(ctx, err))
	}
	return c, nil
}

// ControlCheck asks the control master c is connected through for its
// process id; a client of the daemon itself gets not_supported.
func (c *Client) ControlCheck(ctx context.Context) (int, error) {
	return c.control(ctx, KindControlCheck)
}

// ControlExit asks the control master c is connected through to take no
// new client and to exit once the channels it relays have ended (the
// next rexec starts a new one); it returns the master's process id.
func (c *Client) ControlExit(ctx context.Context) (int, error) {
	return c.control(ctx, KindControlExit)
}

func (c *Client) control(ctx context.Context, kind string) (int, error) {
	ch, err := c.open(ctx, &frame.OpenMsg{Kind: kind, Window: 1}, nil)
	if err != nil {
		return 0, err
	}
	ch.Finish()
	return ch.OpenOK().PID, nil
}

// Shared reports whether c is a connection shared through a control
// master (DialControl), which carries at most as many channels as the
// daemon allows on one connection, for all its clients together.
func (c *Client) Shared() bool { return c.shared }

// IsTooManyChannels reports whether err is the daemon's refusal of a
// channel beyond its limit per connection.
func IsTooManyChannels(err error) bool { return codeIs(err, frame.CodeTooManyChannels) }
