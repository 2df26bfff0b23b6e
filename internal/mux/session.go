package mux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/execd-project/execd/frame"
)

// Role is the end of the connection a Session serves. It decides which
// frames the peer may send (frame/SPEC.md's "sent by" column) and whose
// channel ids are odd (the client's).
type Role uint8

// The two ends.
const (
	Client Role = iota + 1
	Server
)

func (r Role) String() string {
	if r == Server {
		return "daemon"
	}
	return "client"
}

// Errors of sessions.
var (
	// ErrPeerClosed ends a session whose peer closed the connection
	// without an error frame.
	ErrPeerClosed = errors.New("mux: connection closed by the peer")
	// ErrHandshakeTimeout ends a connection that sent no hello in time.
	ErrHandshakeTimeout = errors.New("mux: no hello within the handshake timeout")
	// ErrKeepAlive ends a session whose peer stopped answering pings.
	ErrKeepAlive = errors.New("mux: the peer stopped answering keepalives")
	// ErrIdle ends a session that had no channel open for Config.IdleTimeout.
	ErrIdle = errors.New("mux: idle timeout")
)

// LingerTime bounds how long a connection ended by an error frame is
// drained so that the frame is not lost to a reset.
const LingerTime = time.Second

// Config configures a Session. The zero value of each field but Role
// means its default.
type Config struct {
	// Role is the end this session serves; required.
	Role Role
	// MaxPayload is the largest payload this side accepts; 0 means
	// frame.DefaultMaxPayload.
	MaxPayload uint32
	// WriteTimeout bounds one frame write; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Tracer, when set, sees every frame sent and received.
	Tracer frame.Tracer
	// KeepAlive, when positive, pings the peer this often once started;
	// KeepAliveMax pings in a row without an answer (default 3) end the
	// session with KeepAliveError (default ErrKeepAlive), after an error
	// frame keepalive_timeout.
	KeepAlive      time.Duration
	KeepAliveMax   int
	KeepAliveError error
	// IdleTimeout, when positive, ends a session that had no channel
	// open for this long with IdleError (default ErrIdle), after an
	// error frame idle_timeout.
	IdleTimeout time.Duration
	IdleError   error
	// MaxChannels, when positive, refuses opens beyond this many open
	// channels with too_many_channels.
	MaxChannels int
	// Logger receives the session's own events (refused opens, pings
	// not answered); nil discards them.
	Logger *slog.Logger
}

// check verifies the configuration and fills in defaults.
func (cfg Config) check() (Config, error) {
	if cfg.Role != Client && cfg.Role != Server {
		return cfg, fmt.Errorf("mux: Config.Role must be Client or Server, not %d", cfg.Role)
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = frame.DefaultMaxPayload
	}
	if cfg.MaxPayload < frame.MinMaxPayload || cfg.MaxPayload > frame.MaxMaxPayload {
		return cfg, fmt.Errorf("mux: Config.MaxPayload %d outside [%d, %d]", cfg.MaxPayload, frame.MinMaxPayload, frame.MaxMaxPayload)
	}
	if cfg.KeepAliveMax <= 0 {
		cfg.KeepAliveMax = 3
	}
	if cfg.KeepAliveError == nil {
		cfg.KeepAliveError = ErrKeepAlive
	}
	if cfg.IdleError == nil {
		cfg.IdleError = ErrIdle
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Session is one connection with its channels, the same type at both
// ends: it owns the handshake it is given, the channel table and id
// allocation, the routing of every frame to its channel, keepalive,
// go-away and the idle timer. Before Start, its owner may use Conn for a
// login on channel 0; after Start, the read loop owns the reading.
type Session struct {
	cfg     Config
	conn    *Conn
	below   *BufConn // under TLS: given full buffers at Start
	binding []byte   // the TLS exporter value that login proofs sign
	tls     *tls.ConnectionState
	peer    frame.HelloMsg

	handlers map[string]Handler // set before Start

	openMu sync.Mutex // orders channel ids on the wire

	mu        sync.Mutex
	ctx       context.Context
	cancel    context.CancelCauseFunc
	chans     map[uint32]*Channel
	nextID    uint32 // the next id this side opens
	maxPeer   uint32 // the highest id the peer opened
	goAway    string // the peer's go-away reason
	goingAway error  // set by GoAway: the cause to close with after the last channel
	closing   error  // set by end: why this side is ending the session
	idle      *time.Timer
	started   bool
	ended     bool
	readDone  chan struct{}
	err       error // why the session ended, once readDone is closed
}

// newSession wraps an established (and, when TLS, handshaken) connection.
func newSession(nc net.Conn, below *BufConn, cfg Config) *Session {
	conn := NewConn(nc, below, cfg.MaxPayload, cfg.WriteTimeout)
	if cfg.Tracer != nil {
		conn.SetTracer(cfg.Tracer)
	}
	s := &Session{
		cfg:      cfg,
		conn:     conn,
		below:    below,
		binding:  make([]byte, frame.BindingLen), // zeros: plaintext has no TLS session to bind to
		handlers: map[string]Handler{},
		chans:    map[uint32]*Channel{},
		readDone: make(chan struct{}),
	}
	s.nextID = 1
	if cfg.Role == Server {
		s.nextID = 2
	}
	return s
}

// secure runs the TLS handshake of role over nc with tc (TLS 1.3, full
// records), bounded by ctx, and returns the TLS connection and the buffer
// below it.
func secure(ctx context.Context, nc net.Conn, tc *tls.Config, role Role) (*tls.Conn, *BufConn, error) {
	cfg := tc.Clone()
	cfg.MinVersion = tls.VersionTLS13
	cfg.DynamicRecordSizingDisabled = true // full records: throughput over first-byte latency
	below := NewBufConn(nc)
	var c *tls.Conn
	if role == Server {
		c = tls.Server(below, cfg)
	} else {
		c = tls.Client(below, cfg)
	}
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, nil, err
	}
	return c, below, nil
}

// finishTLS records what a TLS connection gives the session.
func (s *Session) finishTLS(c *tls.Conn) error {
	cs := c.ConnectionState()
	s.tls = &cs
	b, err := cs.ExportKeyingMaterial(frame.BindingLabel, nil, frame.BindingLen)
	if err != nil {
		return fmt.Errorf("tls keying material: %w", err)
	}
	s.binding = b
	return nil
}

// handshake checks cfg, sets ctx's deadline on nc, and runs TLS with tc
// when it is not nil: what both ends do before the hellos.
func handshake(ctx context.Context, nc net.Conn, tc *tls.Config, cfg Config) (*Session, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d) // best effort
	}
	if tc == nil {
		return newSession(nc, nil, cfg), nil
	}
	tlsConn, below, err := secure(ctx, nc, tc, cfg.Role)
	if err != nil {
		return nil, err
	}
	s := newSession(tlsConn, below, cfg)
	if err := s.finishTLS(tlsConn); err != nil {
		return nil, err
	}
	return s, nil
}

// Accept runs the daemon's side of a new connection's handshake, bounded
// by ctx (whose deadline becomes the connection's): TLS with tc when it
// is not nil, then the client's hello, which must come first. A broken or
// missing hello is answered with an error frame. The caller answers with
// SendHello once it has decided to serve the client, then Start.
func Accept(ctx context.Context, nc net.Conn, tc *tls.Config, cfg Config) (*Session, error) {
	cfg.Role = Server
	s, err := handshake(ctx, nc, tc, cfg)
	if err != nil {
		return nil, err
	}
	f, err := s.conn.ReadFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			_ = s.conn.SendError(frame.ConnChannel, frame.CodeHandshakeTimeout, "no hello within the handshake timeout")
			return nil, ErrHandshakeTimeout
		}
		if !errors.Is(err, io.EOF) {
			s.Refuse(frame.CodeOf(err), err.Error())
		}
		return nil, err
	}
	if f.Type != frame.Hello {
		s.Refuse(frame.CodeHelloRequired, fmt.Sprintf("expected hello, got %s frame", f.Type))
		return nil, fmt.Errorf("%s frame before hello", f.Type)
	}
	if err := frame.Unmarshal(f.Payload, &s.peer); err != nil {
		s.Refuse(frame.CodeOf(err), err.Error())
		return nil, err
	}
	s.conn.SetPeerMax(s.peer.MaxPayload)
	return s, nil
}

// Dial runs the client's side of a new connection's handshake, bounded
// by ctx (whose deadline becomes the connection's): TLS with tc when it
// is not nil (its VerifyConnection checks the daemon's identity), then
// hello, whose MaxPayload is filled in, and the daemon's hello. A daemon
// that refuses with an error frame gives a *frame.RemoteError; one that closes
// gives an error wrapping io.EOF. On error the caller closes nc.
func Dial(ctx context.Context, nc net.Conn, tc *tls.Config, cfg Config, hello *frame.HelloMsg) (*Session, error) {
	cfg.Role = Client
	s, err := handshake(ctx, nc, tc, cfg)
	if err != nil {
		return nil, err
	}
	if s.below != nil {
		s.below.Buffer() // a client buffers at once: the daemon has proved itself in TLS
	}
	h := *hello
	h.MaxPayload = s.cfg.MaxPayload
	if err := s.conn.SendJSON(frame.Hello, frame.ConnChannel, &h); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	p, err := s.Receive(frame.Hello)
	if err != nil {
		return nil, err
	}
	if err := frame.Unmarshal(p, &s.peer); err != nil {
		return nil, err
	}
	s.conn.SetPeerMax(s.peer.MaxPayload)
	return s, nil
}

// SendHello sends the daemon's hello (its MaxPayload filled in); Accept's
// caller calls it once.
func (s *Session) SendHello(h *frame.HelloMsg) error {
	m := *h
	m.MaxPayload = s.cfg.MaxPayload
	return s.conn.SendJSON(frame.Hello, frame.ConnChannel, &m)
}

// Refuse ends a session that has not started with a fatal error frame,
// draining briefly so that the peer reads it.
func (s *Session) Refuse(code frame.Code, msg string) {
	if s.conn.SendError(frame.ConnChannel, code, msg) == nil {
		s.conn.Linger(LingerTime)
	}
	s.conn.Close()
}

// Receive reads the next frame of a login on channel 0, before Start:
// pings are answered and pongs dropped on the way; a frame of type want
// gives its payload (valid until the next call); an error frame gives a
// *frame.RemoteError (the peer gave up), and a frame of any other type a
// *Violation whose message names it. Read errors (a deadline, the end of
// the connection) are returned as they are.
func (s *Session) Receive(want frame.Type) ([]byte, error) {
	for {
		f, err := s.conn.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case want:
			return f.Payload, nil
		case frame.Ping:
			if err := s.conn.HandlePing(f.Payload); err != nil {
				return nil, err
			}
		case frame.Pong:
		case frame.Error:
			var m frame.ErrorMsg
			if err := frame.Unmarshal(f.Payload, &m); err != nil {
				return nil, err
			}
			return nil, &frame.RemoteError{Code: m.Code, Message: m.Message}
		default:
			return nil, Violationf(frame.CodeUnexpected, "%s frame", f.Type)
		}
	}
}

// Peer is the peer's hello.
func (s *Session) Peer() *frame.HelloMsg { return &s.peer }

// Binding is the value login proofs sign: the TLS exporter of this
// connection, or zeros in plaintext.
func (s *Session) Binding() []byte { return s.binding }

// TLS is the TLS state, nil in plaintext.
func (s *Session) TLS() *tls.ConnectionState { return s.tls }

// Conn is the framed connection, for a login on channel 0 before Start.
func (s *Session) Conn() *Conn { return s.conn }

// Handle makes h take the opens of kind; call it before Start. Opens of
// a kind without a handler are refused.
func (s *Session) Handle(kind string, h Handler) { s.handlers[kind] = h }

// Start clears the handshake deadline and starts the read loop,
// keepalive and idle timer. ctx bounds the session: when it ends, the
// connection closes with its cause, and every channel's Context derives
// from it.
func (s *Session) Start(ctx context.Context) {
	if s.below != nil {
		s.below.Buffer() // full buffers only for a peer that got this far (logged in)
	}
	_ = s.conn.NetConn().SetDeadline(time.Time{}) // best effort
	s.mu.Lock()
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.started = true
	s.mu.Unlock()
	stop := context.AfterFunc(s.ctx, func() { s.conn.CloseWithError(context.Cause(s.ctx)) })
	go func() {
		defer stop()
		s.readLoop()
	}()
	if s.cfg.KeepAlive > 0 {
		go s.keepAlive()
	}
	s.armIdle()
}

// Open opens a channel and waits for the peer to confirm it. setup, when
// not nil, prepares the channel before the open leaves: the streams it
// receives (Inbound), those it will send once confirmed (Sends), and its
// control frames (OnControl). A refusal is a *frame.RemoteError.
func (s *Session) Open(ctx context.Context, m *frame.OpenMsg, setup func(*Channel)) (*Channel, error) {
	ch, id, err := s.register(m, nil)
	if err != nil {
		return nil, err
	}
	if setup != nil {
		setup(ch)
	}
	err = s.conn.SendJSON(frame.Open, id, m)
	s.openMu.Unlock()
	if err != nil {
		ch.end(Lost, err, false)
		return nil, fmt.Errorf("open: %w", err)
	}
	if err := ch.waitOpen(ctx); err != nil {
		return nil, err
	}
	return ch, nil
}

// register allocates the next id for a channel this side opens (relayed
// when relay is not nil) and puts it in the table. On success it returns with openMu held, so
// that ids leave in order: the caller unlocks it once the open is sent.
func (s *Session) register(m *frame.OpenMsg, relay RelayFunc) (*Channel, uint32, error) {
	s.openMu.Lock()
	s.mu.Lock()
	var err error
	switch {
	case s.ended:
		err = s.err
	case s.goAway != "":
		err = fmt.Errorf("%w: %s", ErrGoAway, s.goAway)
	case !s.started:
		err = errors.New("mux: session not started")
	}
	if err != nil {
		s.mu.Unlock()
		s.openMu.Unlock()
		return nil, 0, err
	}
	id := s.nextID
	s.nextID += 2
	ch := newChannel(s, id, m)
	ch.relay = relay
	s.chans[id] = ch
	s.stopIdle()
	s.mu.Unlock()
	return ch, id, nil
}

// OnControl makes f take the channel's control frames of type t (see
// On); a frame of a type with no function is a violation. The opener
// calls it in Open's setup, the acceptor before Accept.
func (ch *Channel) OnControl(t frame.Type, f ControlFunc) {
	ch.mu.Lock()
	ch.control[t] = f
	ch.mu.Unlock()
}

// Sends declares a stream this side will send once the open is
// confirmed, with the credit the peer's open_ok grants; an opener calls
// it in Open's setup, then gets the stream from Out.
func (ch *Channel) Sends(t frame.Type) {
	ch.mu.Lock()
	ch.out[t] = nil
	ch.mu.Unlock()
}

// Out returns the stream of type t this side sends, or nil.
func (ch *Channel) Out(t frame.Type) *Outbound {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.out[t]
}

// In returns the stream of type t this side receives, or nil.
func (ch *Channel) In(t frame.Type) *Inbound { return ch.inbound(t) }

// GoAway tells the peer that no new channel will be accepted, refuses
// opens from now on, and closes the connection with cause once the last
// channel has ended (at once when none is open).
func (s *Session) GoAway(reason string, cause error) {
	s.mu.Lock()
	if s.goingAway != nil || s.ended {
		s.mu.Unlock()
		return
	}
	s.goingAway = cause
	n := len(s.chans)
	s.mu.Unlock()
	_ = s.conn.SendJSON(frame.GoAway, frame.ConnChannel, &frame.GoAwayMsg{Reason: reason}) // best effort
	if n == 0 {
		s.conn.CloseWithError(cause)
	}
}

// GoneAway returns the reason the peer gave in its go-away, or "".
func (s *Session) GoneAway() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.goAway
}

// NumChannels is the number of channels open or opening.
func (s *Session) NumChannels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chans)
}

// Ping measures one round trip to the peer.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) { return s.conn.Ping(ctx) }

// CloseWithError closes the connection with cause; every channel ends
// Lost, and Wait returns cause.
func (s *Session) CloseWithError(cause error) { s.conn.CloseWithError(cause) }

// Close closes the connection.
func (s *Session) Close() error { return s.conn.Close() }

// Done is closed when the read loop has ended and every channel with it.
func (s *Session) Done() <-chan struct{} { return s.readDone }

// Wait waits for the session to end and returns why: a *frame.RemoteError when
// the peer sent a fatal error, a *Violation when the peer broke the
// protocol (it was told with an error frame), ErrPeerClosed when it
// closed the connection, or the cause given to CloseWithError.
func (s *Session) Wait() error {
	<-s.readDone
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Err returns why the session ended (as Wait does), or why its
// connection closed while the read loop is still ending; nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.readDone:
		return s.Wait()
	default:
		return s.conn.Err()
	}
}

// forget removes an ended channel; the last one's end arms the idle timer
// or, after GoAway, closes the connection.
func (s *Session) forget(ch *Channel) {
	s.mu.Lock()
	if s.chans[ch.id] != ch {
		s.mu.Unlock()
		return
	}
	delete(s.chans, ch.id)
	last := len(s.chans) == 0
	goingAway := s.goingAway
	s.mu.Unlock()
	switch {
	case last && goingAway != nil:
		s.conn.CloseWithError(goingAway)
	case last:
		s.armIdle()
	}
}

// stopIdle stops the idle timer; call with s.mu held.
func (s *Session) stopIdle() {
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
}

// armIdle starts the idle timer when no channel is open.
func (s *Session) armIdle() {
	d := s.cfg.IdleTimeout
	if d <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.chans) > 0 || s.ended {
		return
	}
	s.stopIdle()
	s.idle = time.AfterFunc(d, func() {
		s.mu.Lock()
		busy := len(s.chans) > 0
		s.mu.Unlock()
		if busy {
			return
		}
		s.cfg.Logger.Info("idle timeout, closing connection", "idle", d)
		s.end(frame.CodeIdleTimeout, fmt.Sprintf("no channel open for %s", d), s.cfg.IdleError)
	})
}

// keepAlive pings the peer every interval until the session ends, and
// ends it after KeepAliveMax pings in a row went unanswered.
func (s *Session) keepAlive() {
	iv, max := s.cfg.KeepAlive, s.cfg.KeepAliveMax
	t := time.NewTicker(iv)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-s.readDone:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, iv)
		_, err := s.conn.Ping(ctx)
		cancel()
		switch {
		case err == nil:
			missed = 0
			continue
		case !errors.Is(err, context.DeadlineExceeded):
			return // the connection ended
		}
		if missed++; missed >= max {
			s.cfg.Logger.Warn("keepalive timeout, closing connection", "interval", iv, "missed", missed)
			s.end(frame.CodeKeepaliveTimeout, "ping not answered", fmt.Errorf("%w (%d in a row, %v apart)", s.cfg.KeepAliveError, missed, iv))
			return
		}
	}
}

// End ends a started session from this side: the peer is told why with
// a fatal error frame (code and msg), every channel ends, and Wait
// returns cause.
func (s *Session) End(code frame.Code, msg string, cause error) { s.end(code, msg, cause) }

// end ends the session from this side: the peer is told why with a
// fatal error frame, and Wait returns cause. The cause is recorded before
// the frame leaves, so that the peer closing in answer cannot be taken
// for the reason.
func (s *Session) end(code frame.Code, msg string, cause error) {
	s.mu.Lock()
	if s.closing == nil {
		s.closing = cause
	}
	s.mu.Unlock()
	_ = s.conn.SendError(frame.ConnChannel, code, msg) // best effort: the connection ends either way
	s.conn.CloseWithError(cause)
}

// readLoop reads and routes frames until the connection ends, then ends
// every channel.
func (s *Session) readLoop() {
	err := s.conn.ReadFrames(s.owner, s.dispatch)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	var re *frame.RemoteError
	switch {
	case closing != nil:
		err = closing
	case errors.As(err, &re):
		// The peer said why.
	case s.conn.Err() != nil:
		err = s.conn.Err()
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		err = ErrPeerClosed
	default:
		v := &Violation{Code: violationCode(err), Err: err}
		if s.conn.SendError(frame.ConnChannel, v.Code, err.Error()) == nil {
			s.conn.Linger(LingerTime)
		}
		err = v
	}
	s.conn.CloseWithError(err)
	s.mu.Lock()
	s.ended = true
	s.err = err
	s.stopIdle()
	chans := s.chans
	s.chans = map[uint32]*Channel{}
	s.mu.Unlock()
	for _, ch := range chans {
		ch.end(Lost, err, false)
	}
	s.cancel(err)
	close(s.readDone)
}

// owner finds the stream a data payload goes to, so that it is read
// into a buffer the stream keeps; nil sends the frame through dispatch.
func (s *Session) owner(h frame.Header) func([]byte) error {
	if !mayReceive(s.cfg.Role, h.Type) {
		return nil
	}
	s.mu.Lock()
	ch := s.chans[h.Channel]
	s.mu.Unlock()
	if ch != nil && ch.relay != nil {
		return func(chunk []byte) error { return ch.relay(frame.Frame{Header: h, Payload: chunk}) }
	}
	if ch == nil || ch.inbound(h.Type) == nil {
		return nil
	}
	return func(chunk []byte) error { return ch.pushData(h, chunk) }
}

// dispatch handles one frame that is not data for a known stream.
func (s *Session) dispatch(f frame.Frame) error {
	if !mayReceive(s.cfg.Role, f.Type) {
		return Violationf(frame.CodeUnexpected, "a %s may not send %s frames", s.cfg.Role.peer(), f.Type)
	}
	switch f.Type {
	case frame.Ping:
		return s.conn.HandlePing(f.Payload)
	case frame.Pong:
		s.conn.HandlePong(f.Payload)
		return nil
	case frame.GoAway:
		var m frame.GoAwayMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		if m.Reason == "" {
			m.Reason = "going away"
		}
		s.mu.Lock()
		s.goAway = m.Reason
		s.mu.Unlock()
		return nil
	case frame.Open:
		s.accept(f)
		return nil
	}
	if f.Type == frame.Error && f.Channel == frame.ConnChannel {
		var m frame.ErrorMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		s.cfg.Logger.Info("peer reported error", "code", m.Code, "message", m.Message)
		return &frame.RemoteError{Code: m.Code, Message: m.Message}
	}
	if ch := s.lookup(f); ch != nil {
		return ch.route(f)
	}
	return nil
}

// peer is the other end's role.
func (r Role) peer() Role {
	if r == Server {
		return Client
	}
	return Server
}

// mayReceive reports whether the peer of role may send frames of type t
// once the session has started (frame/SPEC.md, "sent by").
func mayReceive(role Role, t frame.Type) bool {
	switch t {
	case frame.Ping, frame.Pong, frame.Error, frame.Window, frame.Data, frame.Done:
		return true
	case frame.Open, frame.Close, frame.Stdin, frame.Signal, frame.Resize, frame.Request:
		return role == Server
	case frame.GoAway, frame.OpenOK, frame.Stdout, frame.Stderr, frame.Exit, frame.Reply:
		return role == Client
	}
	return false // hello, auth and auth_reply belong to the handshake
}

// ours reports whether id is of the parity this side allocates.
func (s *Session) ours(id uint32) bool { return (id%2 == 1) == (s.cfg.Role == Client) }

// lookup finds an open channel. A frame for a channel that existed and
// has ended is dropped (nil, no error): it crossed the channel's end on
// the wire. A frame for a channel never opened is answered with an error
// frame no_such_channel.
func (s *Session) lookup(f frame.Frame) *Channel {
	s.mu.Lock()
	ch, ok := s.chans[f.Channel]
	var existed bool
	if s.ours(f.Channel) {
		existed = f.Channel < s.nextID
	} else {
		existed = f.Channel <= s.maxPeer
	}
	s.mu.Unlock()
	if !ok && !existed {
		_ = s.conn.SendError(f.Channel, frame.CodeNoChannel, fmt.Sprintf("%s frame for channel %d, which is not open", f.Type, f.Channel))
	}
	return ch
}

// accept takes an open from the peer: it checks the id and the limits,
// then gives the new channel to the handler of its kind.
func (s *Session) accept(f frame.Frame) {
	id := f.Channel
	refuse := func(code frame.Code, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.cfg.Logger.Info("open refused", "channel", id, "code", code, "err", msg)
		_ = s.conn.SendError(id, code, msg)
	}
	var m frame.OpenMsg
	err := frame.Unmarshal(f.Payload, &m)
	s.mu.Lock()
	switch {
	case s.ours(id):
		s.mu.Unlock()
		refuse(frame.CodeInvalid, "%s channel ids are %s; %d is not", s.cfg.Role.peer(), map[bool]string{true: "odd", false: "even"}[s.cfg.Role == Server], id)
		return
	case id <= s.maxPeer:
		s.mu.Unlock()
		refuse(frame.CodeChannelInUse, "channel id %d is not above the last one used (%d)", id, s.maxPeer)
		return
	}
	s.maxPeer = id
	h := s.handlers[m.Kind]
	switch {
	case err != nil:
		s.mu.Unlock()
		refuse(frame.CodeOf(err), "%v", err)
		return
	case s.goingAway != nil:
		s.mu.Unlock()
		refuse(frame.CodeShuttingDown, "shutting down: no new channels")
		return
	case s.cfg.MaxChannels > 0 && len(s.chans) >= s.cfg.MaxChannels:
		s.mu.Unlock()
		refuse(frame.CodeTooManyChannels, "at most %d channels per connection", s.cfg.MaxChannels)
		return
	case h == nil:
		s.mu.Unlock()
		refuse(frame.CodeNotSupported, "channel kind %q is not served here", m.Kind)
		return
	}
	ch := newChannel(s, id, &m)
	s.chans[id] = ch
	s.stopIdle()
	s.mu.Unlock()
	h(NewChannel{ch})
}
