package execd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
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

// lingerTime bounds how long a connection ended by an error frame is
// drained so that the frame is not lost to a reset.
const lingerTime = time.Second

// protoError is a violation that ends the connection with an Error frame.
type protoError struct {
	code frame.Code
	msg  string
}

func (e *protoError) Error() string { return fmt.Sprintf("%s: %s", e.code, e.msg) }

func protoErrf(code frame.Code, format string, args ...any) error {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}

// channel is one open channel of a connection: a command, a file transfer
// or a file session.
type channel interface {
	// handle takes a frame for this channel from the read loop; the payload
	// is only valid during the call. An error ends the connection.
	handle(f frame.Frame) error
	// pushData takes a data payload read into a buffer the channel keeps.
	pushData(h frame.Header, p []byte) error
	// end abandons the channel: the client closed it.
	end(cause error)
	// run serves the channel until it is done, then removes it.
	run()
}

// serverConn is one client connection and its channels.
type serverConn struct {
	srv    *Server
	nc     net.Conn
	src    string // the remote address without its port
	phase  int    // in the admission counts, under srv.mu
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	mc        *mux.Conn // set once the handshake is done
	acct      *account  // set once the handshake is done
	chans     map[uint32]channel
	maxID     uint32
	goingAway bool
	closed    bool // serve has returned: no timer may be armed again
	idle      *time.Timer

	wg sync.WaitGroup // channel and keepalive goroutines
}

func (s *Server) newConn(nc net.Conn) *serverConn {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &serverConn{
		srv:    s,
		nc:     nc,
		src:    addrHost(nc.RemoteAddr()),
		log:    s.logger().With("remote", nc.RemoteAddr().String()),
		ctx:    ctx,
		cancel: cancel,
		chans:  make(map[uint32]channel),
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
	mc, n := c.mc, len(c.chans)
	c.mu.Unlock()
	if mc == nil {
		return // still in the handshake: refused after the hello
	}
	_ = mc.SendJSON(frame.GoAway, frame.ConnChannel, &frame.GoAwayMsg{Reason: reason}) // best effort
	if n == 0 {
		mc.CloseWithError(ErrServerClosed)
	}
}

func (c *serverConn) serve() {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection panic", "panic", r, "stack", string(debug.Stack()))
		}
		c.cancel(errors.New("connection closed"))
		c.mu.Lock()
		mc, acct := c.mc, c.acct
		c.mu.Unlock()
		if mc != nil {
			mc.Close()
		}
		_ = c.nc.Close() // best effort
		c.wg.Wait()
		// Channels have ended; from now on no idle timer is armed, so
		// nothing keeps this connection in memory.
		c.mu.Lock()
		c.closed = true
		if c.idle != nil {
			c.idle.Stop()
			c.idle = nil
		}
		c.mu.Unlock()
		if acct != nil && acct.st != nil {
			acct.st.release(&acct.st.conns)
		}
		c.srv.leave(c)
		c.log.Debug("connection closed")
	}()

	mc, err := c.handshake()
	if err != nil {
		c.log.Info("handshake failed", "err", err)
		return
	}
	c.log.Info("connection established")
	c.wg.Add(1)
	go c.keepalive(mc)
	err = c.readLoop(mc)
	switch {
	case c.ctx.Err() != nil:
		c.log.Debug("connection ended", "cause", context.Cause(c.ctx))
	case mc.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		if cause := mc.Err(); cause != nil && !errors.Is(cause, mux.ErrClosed) && !errors.Is(cause, ErrServerClosed) {
			c.log.Info("connection ended", "cause", cause)
		}
	default:
		code := frame.CodeOf(err)
		var pe *protoError
		if errors.As(err, &pe) {
			code = pe.code
		}
		if errors.Is(err, mux.ErrFlowControl) || errors.Is(err, mux.ErrAfterEOF) {
			code = frame.CodeFlowControl
		}
		c.log.Warn("protocol error, closing connection", "code", code, "err", err)
		if mc.SendError(frame.ConnChannel, code, err.Error()) == nil {
			mc.Linger(lingerTime)
		}
	}
}

// handshake runs TLS (when configured) and the hello exchange within
// HandshakeTimeout, and applies the connection cap.
func (c *serverConn) handshake() (*mux.Conn, error) {
	s := c.srv
	deadline := time.Now().Add(durOr(s.HandshakeTimeout, DefaultHandshakeTimeout))
	_ = c.nc.SetDeadline(deadline) // best effort
	var conn net.Conn = c.nc
	var below *mux.BufConn
	binding := make([]byte, frame.BindingLen) // zeros: plaintext has no session to bind to
	if s.TLSConfig != nil {
		cfg := s.TLSConfig.Clone()
		cfg.MinVersion = tls.VersionTLS13
		cfg.DynamicRecordSizingDisabled = true // full records: throughput over first-byte latency
		below = mux.NewBufConn(c.nc)
		tc := tls.Server(below, cfg)
		hctx, cancel := context.WithDeadline(c.ctx, deadline)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return nil, err
		}
		conn = tc
		cs := tc.ConnectionState()
		if binding, err = cs.ExportKeyingMaterial(frame.BindingLabel, nil, frame.BindingLen); err != nil {
			return nil, err
		}
	}
	maxPayload := s.MaxPayload
	if maxPayload == 0 {
		maxPayload = frame.DefaultMaxPayload
	}
	mc := mux.NewConn(conn, below, maxPayload, 0)
	if s.Tracer != nil {
		if t := s.Tracer(conn.RemoteAddr().String()); t != nil {
			mc.SetTracer(t)
		}
	}
	f, err := mc.ReadFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			_ = mc.SendError(frame.ConnChannel, frame.CodeHandshakeTimeout, "no hello within the handshake timeout")
			return nil, ErrHandshakeTimeout
		}
		if !errors.Is(err, io.EOF) && mc.SendError(frame.ConnChannel, frame.CodeOf(err), err.Error()) == nil {
			mc.Linger(lingerTime)
		}
		return nil, err
	}
	if f.Type != frame.Hello {
		if mc.SendError(frame.ConnChannel, frame.CodeHelloRequired, fmt.Sprintf("expected hello, got %s frame", f.Type)) == nil {
			mc.Linger(lingerTime)
		}
		return nil, fmt.Errorf("%s frame before hello", f.Type)
	}
	var hello frame.HelloMsg
	if err := frame.Unmarshal(f.Payload, &hello); err != nil {
		if mc.SendError(frame.ConnChannel, frame.CodeOf(err), err.Error()) == nil {
			mc.Linger(lingerTime)
		}
		return nil, err
	}
	mc.SetPeerMax(hello.MaxPayload)
	if s.Users == nil && !s.logIn(c) { // no login: the hello is the last step
		return nil, c.refuseFull(mc)
	}
	software := s.Software
	if software == "" {
		software = "execd"
	}
	var ka int64
	if s.KeepAlive >= 0 {
		ka = durOr(s.KeepAlive, DefaultKeepAlive).Milliseconds()
	}
	sh := &frame.HelloMsg{Software: software, MaxPayload: maxPayload, KeepAliveMS: ka, Features: []string{frame.FeatureBLAKE3}}
	if s.Users != nil {
		sh.Auth, sh.Challenge = authMethods, newChallenge()
	}
	if err := mc.SendJSON(frame.Hello, frame.ConnChannel, sh); err != nil {
		return nil, err
	}
	acct := &account{home: s.servedDir()}
	if s.Users != nil {
		if acct, err = c.authenticate(mc, sh.Challenge, binding); err != nil {
			return nil, err
		}
		c.log = c.log.With("user", acct.user.Name)
	}
	if s.Users != nil && !s.logIn(c) {
		acct.st.release(&acct.st.conns)
		return nil, c.refuseFull(mc)
	}
	if below != nil {
		below.Buffer() // full buffers only for a peer that has logged in
	}
	_ = conn.SetDeadline(time.Time{}) // best effort
	c.mu.Lock()
	c.mc = mc
	c.acct = acct
	goingAway := c.goingAway
	c.mu.Unlock()
	if goingAway {
		_ = mc.SendError(frame.ConnChannel, frame.CodeShuttingDown, "server shutting down")
		return nil, ErrServerClosed
	}
	c.log = c.log.With("client", hello.Software)
	c.armIdle()
	return mc, nil
}

// refuseFull tells the client the daemon is at MaxConns.
func (c *serverConn) refuseFull(mc *mux.Conn) error {
	max := orDefault(c.srv.MaxConns, DefaultMaxConns)
	if mc.SendError(frame.ConnChannel, frame.CodeTooManyConns, fmt.Sprintf("server is at its limit of %d connections", max)) == nil {
		mc.Linger(lingerTime)
	}
	return errors.New("too many connections")
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// armIdle starts the idle timer when no channel is open; call with c.mu unlocked.
func (c *serverConn) armIdle() {
	d := c.srv.IdleTimeout
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.chans) > 0 || c.mc == nil || c.closed {
		return
	}
	mc := c.mc
	select {
	case <-mc.Done():
		return // closed: a timer would keep the connection in memory
	default:
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	c.idle = time.AfterFunc(d, func() {
		c.mu.Lock()
		busy := len(c.chans) > 0
		c.mu.Unlock()
		if busy {
			return
		}
		c.log.Info("idle timeout, closing connection", "idle", d)
		_ = mc.SendError(frame.ConnChannel, frame.CodeIdleTimeout, fmt.Sprintf("no channel open for %s", d))
		mc.CloseWithError(ErrIdleTimeout)
	})
}

func (c *serverConn) keepalive(mc *mux.Conn) {
	defer c.wg.Done()
	if c.srv.KeepAlive < 0 {
		return
	}
	iv := durOr(c.srv.KeepAlive, DefaultKeepAlive)
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-mc.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, 3*iv)
		_, err := mc.Ping(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			c.log.Warn("keepalive timeout, closing connection", "interval", iv)
			_ = mc.SendError(frame.ConnChannel, frame.CodeKeepaliveTimeout, "ping not answered")
			mc.CloseWithError(ErrKeepaliveTimeout)
			return
		}
		if err != nil {
			return
		}
	}
}

// readLoop reads frames until the connection ends. Stdin and file data
// for an open channel go into buffers the channel keeps, never copied.
func (c *serverConn) readLoop(mc *mux.Conn) error {
	return mc.ReadFrames(func(h frame.Header) func([]byte) error {
		c.mu.Lock()
		ch := c.chans[h.Channel]
		c.mu.Unlock()
		if ch == nil {
			return nil
		}
		return func(chunk []byte) error { return ch.pushData(h, chunk) }
	}, func(f frame.Frame) error { return c.dispatch(mc, f) })
}

// lookup finds an open channel. A frame for a channel that was open and has
// ended is dropped (ok false, nil error): it crossed our exit on the wire.
// A frame for a channel never opened is answered with an Error frame.
func (c *serverConn) lookup(mc *mux.Conn, f frame.Frame) (channel, bool) {
	c.mu.Lock()
	ch, ok := c.chans[f.Channel]
	stale := !ok && f.Channel <= c.maxID && f.Channel%2 == 1
	c.mu.Unlock()
	if !ok && !stale {
		_ = mc.SendError(f.Channel, frame.CodeNoChannel, fmt.Sprintf("%s frame for channel %d, which is not open", f.Type, f.Channel))
	}
	return ch, ok
}

func (c *serverConn) dispatch(mc *mux.Conn, f frame.Frame) error {
	switch f.Type {
	case frame.Ping:
		return mc.HandlePing(f.Payload)
	case frame.Pong:
		mc.HandlePong(f.Payload)
	case frame.Open:
		c.handleOpen(mc, f)
	case frame.Close:
		if ch, ok := c.lookup(mc, f); ok {
			ch.end(errAbandoned)
		}
	case frame.Stdin, frame.Data, frame.Window, frame.Signal, frame.Resize, frame.Done, frame.Request:
		if ch, ok := c.lookup(mc, f); ok {
			return ch.handle(f)
		}
	case frame.Error:
		var m frame.ErrorMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		c.log.Info("client reported error", "channel", f.Channel, "code", m.Code, "message", m.Message)
		if f.Channel == frame.ConnChannel {
			mc.CloseWithError(&m)
		}
	default:
		return protoErrf(frame.CodeUnexpected, "a client may not send %s frames", f.Type)
	}
	return nil
}

func (c *serverConn) handleOpen(mc *mux.Conn, f frame.Frame) {
	id := f.Channel
	refuse := func(code frame.Code, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		c.log.Info("open refused", "channel", id, "code", code, "err", msg)
		_ = mc.SendError(id, code, msg)
	}
	var m frame.OpenMsg
	err := frame.Unmarshal(f.Payload, &m)
	c.mu.Lock()
	switch {
	case id%2 == 0:
		c.mu.Unlock()
		refuse(frame.CodeInvalid, "client channel ids are odd; %d is even", id)
		return
	case id <= c.maxID:
		c.mu.Unlock()
		refuse(frame.CodeChannelInUse, "channel id %d is not above the last one used (%d)", id, c.maxID)
		return
	}
	c.maxID = id
	switch {
	case err != nil:
		c.mu.Unlock()
		refuse(frame.CodeOf(err), "%v", err)
		return
	case c.goingAway:
		c.mu.Unlock()
		refuse(frame.CodeShuttingDown, "server shutting down: no new commands")
		return
	case len(c.chans) >= orDefault(c.srv.MaxChannels, DefaultMaxChannels):
		c.mu.Unlock()
		refuse(frame.CodeTooManyChannels, "at most %d channels per connection", orDefault(c.srv.MaxChannels, DefaultMaxChannels))
		return
	}
	acct := c.acct
	c.mu.Unlock()

	if perm, what := permFor(m.Kind); !acct.can(perm) && !(m.Kind == frame.KindFS && acct.can(PermPut)) {
		err := acct.denied(perm, what)
		c.srv.Audit.Log(&AuditEvent{Event: m.Kind, User: acct.user.Name, Addr: c.nc.RemoteAddr().String(),
			Argv: m.Argv, Shell: m.Shell, Path: m.Path, Result: err.Error()})
		refuse(frame.CodeNotPermitted, "%v", err)
		return
	}
	if acct.st != nil && !acct.st.acquire(&acct.st.chans, acct.user.MaxChannels) {
		refuse(frame.CodeUserLimit, "user %s already has %d channels open, the most allowed", acct.user.Name, acct.user.MaxChannels)
		return
	}
	var ch channel
	var ec *execChan
	if m.Kind == frame.KindExec {
		var err error
		if ec, err = c.startChannel(mc, id, &m); err != nil {
			if acct.st != nil {
				acct.st.release(&acct.st.chans)
			}
			refuse(frame.CodeExecFailed, "%v", err)
			return
		}
		ch = ec
	} else {
		// File channels do their work (and their file system calls) in
		// run, which confirms or refuses the open: the read loop never
		// waits for a disk.
		ch = c.newFileChannel(mc, id, &m)
	}
	c.mu.Lock()
	c.chans[id] = ch
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
	if ec != nil {
		_ = mc.SendJSON(frame.OpenOK, id, &frame.OpenOKMsg{Window: ec.stdinWindow, PID: ec.p.pid(), Encoding: ec.encoding}) // a failure closes the connection
	}
	c.wg.Add(1)
	go ch.run()
}

// permFor is the permission a channel kind needs, and what it is for.
func permFor(kind string) (perm, what string) {
	switch kind {
	case frame.KindExec:
		return PermExec, "run commands"
	case frame.KindPut:
		return PermPut, "write files"
	}
	return PermGet, "read files"
}

// removeChannel forgets a finished channel, and closes the connection if
// the server is going away and this was the last one.
func (c *serverConn) removeChannel(id uint32) {
	c.mu.Lock()
	if _, ok := c.chans[id]; ok && c.acct.st != nil {
		c.acct.st.release(&c.acct.st.chans)
	}
	delete(c.chans, id)
	last := len(c.chans) == 0
	goingAway, mc := c.goingAway, c.mc
	c.mu.Unlock()
	if last && goingAway {
		mc.CloseWithError(ErrServerClosed)
		return
	}
	if last {
		c.armIdle()
	}
}
