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

// RemoteError is a failure the daemon reported, with its protocol code:
// a refused open (a command that could not start, a path outside the
// home, a quota), a failed transfer, or the end of the connection.
// errors.As also finds the wire message, *frame.ErrorMsg, through it.
type RemoteError = frame.RemoteError

// Client is a connection to one daemon, carrying any number of concurrent
// sessions. It is safe for concurrent use.
type Client struct {
	sess   *mux.Session
	addr   string
	window uint32
	hello  frame.HelloMsg
	auth   frame.AuthReplyMsg // zero when the daemon asked for no login
	log    *slog.Logger

	locks  xfer.Locks // partial copies being written by gets
	shared bool       // through a control master
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
	for tries := 1; ; tries++ {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, connectError(err)
		}
		c, err := NewClient(ctx, nc, addr, cfg)
		if err == nil {
			return c, nil
		}
		_ = nc.Close() // best effort
		var busy *BusyError
		var re *RemoteError
		if errors.As(err, &re) && re.Code == frame.CodeTooManyConns {
			// Logged-in connections at the daemon's bound: busy too.
			busy = &BusyError{Addr: addr, Reason: re.Message, RetryAfter: 500 * time.Millisecond, Err: err}
		} else if !errors.As(err, &busy) {
			return nil, err
		}
		wait := busyBackoff(busy.RetryAfter, tries)
		if dl, ok := ctx.Deadline(); (ok && time.Until(dl) < wait) || !sleepCtx(ctx, wait) {
			busy.Tries = tries
			return nil, busy
		}
		cfg.logger().Debug("daemon busy, trying again", "reason", busy.Reason, "after", wait)
	}
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
	// A cancelled ctx ends the handshakes and the login at once.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var tc *tls.Config
	if !cfg.Plaintext {
		if cfg.HostKeyCallback == nil {
			return nil, ErrNoHostKeyCheck
		}
		check := cfg.HostKeyCallback
		tc = &tls.Config{
			InsecureSkipVerify: true, // identity is checked by pinning, below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("daemon sent no certificate")
				}
				return check(addr, tlsid.Fingerprint(cs.PeerCertificates[0]))
			},
		}
	}
	log := cfg.logger()
	sess, err := mux.Dial(ctx, &busyConn{Conn: nc, addr: addr}, tc, cfg.mux(log), cfg.hello())
	if err != nil {
		return nil, handshakeError(ctx, addr, err)
	}
	if cs := sess.TLS(); cs != nil && cfg.HostKeyPin != nil {
		if err := cfg.HostKeyPin(addr, tlsid.Fingerprint(cs.PeerCertificates[0])); err != nil {
			return nil, err
		}
	}
	var auth frame.AuthReplyMsg
	if hello := sess.Peer(); len(hello.Auth) > 0 {
		reply, err := login(ctx, sess, addr, cfg, hello)
		if err != nil {
			return nil, err
		}
		auth = *reply
	}
	return start(sess, addr, cfg, auth, log), nil
}

// start makes a client of a session that has shaken hands (and logged in).
func start(sess *mux.Session, addr string, cfg *Config, auth frame.AuthReplyMsg, log *slog.Logger) *Client {
	window := cfg.Window
	if window == 0 {
		window = DefaultWindow
	}
	c := &Client{sess: sess, addr: addr, window: window, hello: *sess.Peer(), auth: auth, log: log}
	sess.Start(context.Background())
	return c
}

func (cfg *Config) logger() *slog.Logger {
	if cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return cfg.Logger
}

// mux is the session's configuration.
func (cfg *Config) mux(log *slog.Logger) mux.Config {
	return mux.Config{
		MaxPayload:     cfg.MaxPayload,
		Tracer:         cfg.Tracer,
		KeepAlive:      cfg.KeepAlive,
		KeepAliveMax:   cfg.KeepAliveMax,
		KeepAliveError: ErrKeepAlive,
		Logger:         log,
	}
}

// hello is the client's hello.
func (cfg *Config) hello() *frame.HelloMsg {
	software := cfg.Software
	if software == "" {
		software = "rexec"
	}
	return &frame.HelloMsg{Software: software}
}

// handshakeError words a failed TLS or hello handshake.
func handshakeError(ctx context.Context, addr string, err error) error {
	var hk *HostKeyError
	var re *RemoteError
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		return busy
	case errors.As(err, &hk):
		return hk
	case errors.As(err, &re):
		return fmt.Errorf("rexec: %s refused the connection: %w", addr, re)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("rexec: %s closed the connection during the handshake (is it an execd daemon, with TLS as this client expects?)", addr)
	}
	if ne := net.Error(nil); errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("rexec: handshake with %s: no answer within the connect timeout (is it an execd daemon, and up?): %w", addr, context.DeadlineExceeded)
	}
	return fmt.Errorf("rexec: handshake with %s: %w", addr, ctxErr(ctx, err))
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

// instance is the daemon's run id from its hello ("" from an older one).
func (c *Client) instance() string { return c.hello.Instance }

// MaxChannels is how many channels the daemon keeps open at once on one
// connection, as its hello says; 0 when it does not say.
func (c *Client) MaxChannels() int { return c.hello.MaxChannels }

// Ping measures one round trip to the daemon.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) { return c.sess.Ping(ctx) }

// Close closes the connection; running sessions end with ErrConnectionLost
// and the daemon ends their commands.
func (c *Client) Close() error {
	c.sess.CloseWithError(ErrClientClosed)
	<-c.sess.Done()
	return nil
}

// Err returns why the connection ended, or nil while it is up.
func (c *Client) Err() error {
	if c.sess.Err() == nil {
		return nil
	}
	return c.cause()
}

// Wait blocks until the connection ends and returns why.
func (c *Client) Wait() error {
	<-c.sess.Done()
	return c.cause()
}

// cause is why the connection ended (ErrClientClosed while it has not).
func (c *Client) cause() error {
	err := c.sess.Err()
	var v *mux.Violation
	switch {
	case err == nil:
		return ErrClientClosed
	case errors.Is(err, mux.ErrPeerClosed):
		if reason := c.sess.GoneAway(); reason != "" {
			return fmt.Errorf("connection closed by %s: %s", c.addr, reason)
		}
		return fmt.Errorf("connection closed by %s", c.addr)
	case errors.As(err, &v):
		c.log.Debug("protocol error from daemon", "err", err)
	}
	return err
}

// lost wraps the connection's end in ErrConnectionLost.
func (c *Client) lost() error { return fmt.Errorf("%w: %w", ErrConnectionLost, c.cause()) }

// NewSession returns a session for one command.
func (c *Client) NewSession() (*Session, error) {
	if c.sess.Err() != nil {
		return nil, c.cause()
	}
	return &Session{c: c, started: make(chan struct{}), done: make(chan struct{})}, nil
}

// open opens a channel and waits for the daemon to confirm it; setup
// prepares it before the open leaves (see mux.Session.Open). A refusal is
// a *RemoteError.
func (c *Client) open(ctx context.Context, m *frame.OpenMsg, setup func(*mux.Channel)) (*mux.Channel, error) {
	ch, err := c.sess.Open(ctx, m, setup)
	var re *RemoteError
	switch {
	case err == nil:
		return ch, nil
	case errors.As(err, &re):
		return nil, re
	case errors.Is(err, mux.ErrGoAway):
		return nil, fmt.Errorf("%w: %s", ErrGoAway, c.sess.GoneAway())
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case c.sess.Err() != nil:
		if errors.Is(c.sess.Err(), ErrClientClosed) {
			return nil, ErrClientClosed
		}
		return nil, c.lost()
	}
	return nil, fmt.Errorf("rexec: open: %w", err)
}
