// Package rexec is the client library of execd: Dial a daemon, open
// sessions, run commands with their stdin, stdout and stderr, pty, signals
// and exit status. It is shaped like golang.org/x/crypto/ssh.
package rexec

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
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/tlsid"
	"github.com/execd-project/execd/internal/xfer"
)

// DefaultPort is the port execd listens on and rexec dials when none is given.
const DefaultPort = 7022

// DefaultWindow is the credit a session gives the daemon on stdout and on stderr.
const DefaultWindow = 2 << 20

// Errors of the client.
var (
	// ErrConnectionLost is wrapped by Wait when the connection ended before
	// the command's exit status arrived (the status is unknown), and by file
	// transfers cut short (a partial copy is kept for a resume).
	ErrConnectionLost = errors.New("rexec: connection lost")
	// ErrClientClosed is returned for sessions of a closed client.
	ErrClientClosed = errors.New("rexec: client closed")
	// ErrGoAway is returned by Start after the daemon announced it is
	// shutting down; commands already running finish.
	ErrGoAway = errors.New("rexec: server accepts no new commands")
	// ErrNoHostKeyCheck is returned by Dial for TLS without a HostKeyCallback.
	ErrNoHostKeyCheck = errors.New("rexec: Config.HostKeyCallback is required with TLS")
	// ErrKeepAlive ends a connection whose daemon stopped answering
	// keepalive pings (Config.KeepAlive).
	ErrKeepAlive = errors.New("rexec: the daemon stopped answering keepalives")
)

// HostKeyCallback decides whether to trust the daemon at addr, whose
// certificate has the given fingerprint ("SHA256:..."). Returning an error
// aborts the connection.
type HostKeyCallback func(addr, fingerprint string) error

// InsecureIgnoreHostKey returns a callback that trusts any daemon; for tests only.
func InsecureIgnoreHostKey() HostKeyCallback { return func(string, string) error { return nil } }

// Config configures a client. The zero value is not usable with TLS: set
// HostKeyCallback, or Plaintext.
type Config struct {
	// Plaintext speaks the protocol without TLS; the daemon must allow it.
	Plaintext bool
	// HostKeyCallback checks the daemon's identity during the TLS
	// handshake; see KnownHosts.
	HostKeyCallback HostKeyCallback
	// HostKeyPin, when set, is called once the daemon has answered with a
	// valid hello, with the identity HostKeyCallback accepted: the place
	// to pin a new daemon (KnownHosts.Pin), so that an endpoint that is
	// not execd is never pinned. An error aborts the connection.
	HostKeyPin HostKeyCallback
	// Timeout bounds connecting plus the TLS and hello handshakes; 0 means 10s.
	Timeout time.Duration
	// MaxPayload is the largest frame payload this side accepts; 0 means the default.
	MaxPayload uint32
	// Window is the credit per output stream; 0 means DefaultWindow.
	Window uint32
	// Software is announced in the hello; empty means "rexec".
	Software string
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// User is the name to log in as, when the daemon asks for a login.
	User string
	// Auth lists the ways to log in, tried in order (see PublicKey,
	// Password, PasswordCallback).
	Auth []AuthMethod
	// Tracer, when set, sees every frame sent and received.
	Tracer frame.Tracer
	// Network is "tcp" (the default, either family), "tcp4" or "tcp6",
	// as ssh's -4 and -6.
	Network string
	// KeepAlive, when positive, pings the daemon this often once logged
	// in; KeepAliveMax pings in a row without an answer (default 3) end
	// the connection with ErrKeepAlive, as ssh's ServerAliveInterval and
	// ServerAliveCountMax do.
	KeepAlive    time.Duration
	KeepAliveMax int
}

// channel is the client side of one open channel: a Session, a file
// transfer or a file session.
type channel interface {
	// handle takes a frame for the channel; the payload is borrowed.
	handle(f frame.Frame) error
	// pushData takes a data payload the channel may keep.
	pushData(h frame.Header, chunk []byte) error
	// failed takes an Error frame for the channel.
	failed(m *frame.ErrorMsg)
	// lost ends the channel when the connection ended.
	lost(err error)
}

// Client is a connection to one daemon, carrying any number of concurrent
// sessions. It is safe for concurrent use.
type Client struct {
	mc       *mux.Conn
	addr     string
	window   uint32
	hello    frame.HelloMsg
	auth     frame.AuthReplyMsg // zero when the daemon asked for no login
	log      *slog.Logger
	readDone chan struct{}

	locks  xfer.Locks // partial copies being written by gets
	openMu sync.Mutex // orders channel ids on the wire

	mu       sync.Mutex
	sessions map[uint32]channel
	nextID   uint32
	goAway   string
	err      error
}

// Dial connects to the daemon at addr ("host:port") and completes the TLS
// and hello handshakes.
func Dial(ctx context.Context, addr string, cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if !cfg.Plaintext && cfg.HostKeyCallback == nil {
		return nil, ErrNoHostKeyCheck
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network := cfg.Network
	switch network {
	case "":
		network = "tcp"
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("rexec: network %q: want tcp, tcp4 or tcp6", network)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, connectError(err)
	}
	c, err := NewClient(ctx, nc, addr, cfg)
	if err != nil {
		_ = nc.Close() // best effort
		return nil, err
	}
	return c, nil
}

// ResolveError is returned by Dial when the host name does not resolve.
// Its message names the host, not the resolver asked.
type ResolveError struct {
	Host string
	Err  *net.DNSError
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("rexec: could not resolve host %s: %s", e.Host, e.Err.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// connectError words a failed connect.
func connectError(err error) error {
	var de *net.DNSError
	if errors.As(err, &de) {
		return &ResolveError{Host: de.Name, Err: de}
	}
	return fmt.Errorf("rexec: connect: %w", err)
}

// NewClient runs the handshakes over an established connection; addr is
// the name the host key callback sees. On error the caller closes nc.
func NewClient(ctx context.Context, nc net.Conn, addr string, cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline) // best effort
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn := nc
	var below *mux.BufConn
	var fingerprint string
	binding := make([]byte, frame.BindingLen) // zeros: plaintext has no session to bind to
	if !cfg.Plaintext {
		if cfg.HostKeyCallback == nil {
			return nil, ErrNoHostKeyCheck
		}
		check := cfg.HostKeyCallback
		below = mux.NewBufConn(nc)
		tc := tls.Client(below, &tls.Config{
			MinVersion:                  tls.VersionTLS13,
			DynamicRecordSizingDisabled: true,
			InsecureSkipVerify:          true, // identity is checked by pinning, below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("daemon sent no certificate")
				}
				return check(addr, tlsid.Fingerprint(cs.PeerCertificates[0]))
			},
		})
		err := tc.HandshakeContext(ctx)
		below.Buffer()
		if err != nil {
			var hk *HostKeyError
			if errors.As(err, &hk) {
				return nil, hk
			}
			return nil, fmt.Errorf("rexec: tls handshake with %s: %w", addr, err)
		}
		conn = tc
		cs := tc.ConnectionState()
		fingerprint = tlsid.Fingerprint(cs.PeerCertificates[0])
		if binding, err = cs.ExportKeyingMaterial(frame.BindingLabel, nil, frame.BindingLen); err != nil {
			return nil, fmt.Errorf("rexec: tls keying material: %w", err)
		}
	}
	mc := mux.NewConn(conn, below, cfg.MaxPayload, 0)
	if cfg.Tracer != nil {
		mc.SetTracer(cfg.Tracer)
	}
	software := cfg.Software
	if software == "" {
		software = "rexec"
	}
	if err := mc.SendJSON(frame.Hello, frame.ConnChannel, &frame.HelloMsg{Software: software, MaxPayload: mc.MaxRecv()}); err != nil {
		return nil, fmt.Errorf("rexec: send hello: %w", ctxErr(ctx, err))
	}
	f, err := mc.ReadFrame()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("rexec: %s closed the connection during the handshake (is it an execd daemon, with TLS as this client expects?)", addr)
		}
		return nil, fmt.Errorf("rexec: handshake with %s: %w", addr, ctxErr(ctx, err))
	}
	switch f.Type {
	case frame.Hello:
	case frame.Error:
		var m frame.ErrorMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return nil, fmt.Errorf("rexec: handshake: %w", err)
		}
		return nil, fmt.Errorf("rexec: %s refused the connection: %w", addr, &m)
	default:
		return nil, fmt.Errorf("rexec: handshake: expected hello, got %s frame", f.Type)
	}
	var hello frame.HelloMsg
	if err := frame.Unmarshal(f.Payload, &hello); err != nil {
		return nil, fmt.Errorf("rexec: server hello: %w", err)
	}
	mc.SetPeerMax(hello.MaxPayload)
	if cfg.HostKeyPin != nil && fingerprint != "" {
		if err := cfg.HostKeyPin(addr, fingerprint); err != nil {
			return nil, err
		}
	}
	var auth frame.AuthReplyMsg
	if len(hello.Auth) > 0 {
		reply, err := login(ctx, mc, addr, cfg, &hello, binding)
		if err != nil {
			return nil, err
		}
		auth = *reply
	}
	_ = nc.SetDeadline(time.Time{}) // best effort
	window := cfg.Window
	if window == 0 {
		window = DefaultWindow
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		mc:       mc,
		addr:     addr,
		window:   window,
		hello:    hello,
		auth:     auth,
		log:      log,
		readDone: make(chan struct{}),
		sessions: make(map[uint32]channel),
		nextID:   1,
	}
	go c.readLoop()
	if cfg.KeepAlive > 0 {
		go c.keepAlive(cfg.KeepAlive, cfg.KeepAliveMax)
	}
	return c, nil
}

// keepAlive pings the daemon every interval until the connection ends,
// and ends it after max unanswered pings in a row.
func (c *Client) keepAlive(interval time.Duration, max int) {
	if max <= 0 {
		max = 3
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.readDone:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		_, err := c.mc.Ping(ctx)
		cancel()
		if err == nil {
			missed = 0
			continue
		}
		if missed++; missed >= max {
			c.log.Debug("keepalive: no answer", "missed", missed)
			c.mc.CloseWithError(fmt.Errorf("%w (%d in a row, %v apart)", ErrKeepAlive, missed, interval))
			return
		}
	}
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// User returns the name the daemon accepted the login under, and what the
// user may do ("exec", "get", "put"); "" and nil when it asked for no login.
func (c *Client) User() (string, []string) { return c.auth.User, c.auth.Allow }

// ServerSoftware returns what the daemon announced in its hello.
func (c *Client) ServerSoftware() string { return c.hello.Software }

// Ping measures one round trip to the daemon.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) { return c.mc.Ping(ctx) }

// Close closes the connection; running sessions end with ErrConnectionLost
// and the daemon ends their commands.
func (c *Client) Close() error {
	c.mc.CloseWithError(ErrClientClosed)
	<-c.readDone
	return nil
}

// Wait blocks until the connection ends and returns why.
func (c *Client) Wait() error {
	<-c.readDone
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// lostCause is why the connection ended, once its read loop has.
func (c *Client) lostCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return ErrClientClosed
	}
	return c.err
}

// NewSession returns a session for one command.
func (c *Client) NewSession() (*Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	return &Session{c: c, started: make(chan struct{}), done: make(chan struct{})}, nil
}

// register assigns the next channel id to s.
// open registers ch under a new channel id and sends its Open. The daemon
// requires ids in increasing order, so choosing the id and sending happen
// under one lock; setup prepares ch with its id before the Open leaves.
func (c *Client) open(ch channel, m *frame.OpenMsg, setup func(id uint32)) (uint32, error) {
	c.openMu.Lock()
	defer c.openMu.Unlock()
	id, err := c.register(ch)
	if err != nil {
		return 0, err
	}
	setup(id)
	if err := c.mc.SendJSON(frame.Open, id, m); err != nil {
		c.forget(id)
		return 0, fmt.Errorf("rexec: open: %w", err)
	}
	return id, nil
}

func (c *Client) register(s channel) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.goAway != "" {
		return 0, fmt.Errorf("%w: %s", ErrGoAway, c.goAway)
	}
	id := c.nextID
	c.nextID += 2
	c.sessions[id] = s
	return id, nil
}

func (c *Client) session(id uint32) channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

func (c *Client) forget(id uint32) {
	c.mu.Lock()
	delete(c.sessions, id)
	c.mu.Unlock()
}

func (c *Client) readLoop() {
	defer close(c.readDone)
	err := c.mc.ReadFrames(func(h frame.Header) func([]byte) error {
		s := c.session(h.Channel)
		if s == nil {
			return nil
		}
		// Output goes into a buffer the channel keeps: no copy on the way out.
		return func(chunk []byte) error { return s.pushData(h, chunk) }
	}, c.dispatch)
	var em *frame.ErrorMsg
	switch {
	case errors.As(err, &em):
		// the daemon said why
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || c.mc.Err() != nil:
		if cause := c.mc.Err(); cause != nil {
			err = cause
		} else {
			err = fmt.Errorf("connection closed by %s", c.addr)
		}
		c.mu.Lock()
		if c.goAway != "" && !errors.Is(err, ErrClientClosed) {
			err = fmt.Errorf("connection closed by %s: %s", c.addr, c.goAway)
		}
		c.mu.Unlock()
	default:
		c.log.Debug("protocol error from daemon", "err", err)
		_ = c.mc.SendError(frame.ConnChannel, frame.CodeOf(err), err.Error()) // best effort
	}
	c.mc.CloseWithError(err)
	c.mu.Lock()
	c.err = err
	sessions := c.sessions
	c.sessions = map[uint32]channel{}
	c.mu.Unlock()
	for _, s := range sessions {
		s.lost(err)
	}
}

func (c *Client) dispatch(f frame.Frame) error {
	switch f.Type {
	case frame.Ping:
		return c.mc.HandlePing(f.Payload)
	case frame.Pong:
		c.mc.HandlePong(f.Payload)
		return nil
	case frame.GoAway:
		var m frame.GoAwayMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		c.mu.Lock()
		c.goAway = m.Reason
		if c.goAway == "" {
			c.goAway = "going away"
		}
		c.mu.Unlock()
		return nil
	case frame.Error:
		var m frame.ErrorMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		if f.Channel == frame.ConnChannel {
			return &m
		}
		if s := c.session(f.Channel); s != nil {
			s.failed(&m)
		}
		return nil
	case frame.OpenOK, frame.Stdout, frame.Stderr, frame.Window, frame.Exit, frame.Data, frame.Done, frame.Reply:
		s := c.session(f.Channel)
		if s == nil {
			return nil // a session that was abandoned or finished: late frames are dropped
		}
		return s.handle(f)
	}
	return fmt.Errorf("%w: a server may not send %s frames", frame.ErrInvalid, f.Type)
}
