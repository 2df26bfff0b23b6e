// Package execd is the daemon: it accepts framed connections (TLS 1.3 by
// default), runs commands on channels through os/exec or a pty, streams
// their output under flow control and reports their exit status.
package execd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/proc"
	"github.com/execd-project/execd/internal/xfer"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("execd: server closed")

// Defaults used when a Server field is zero.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultKeepAlive        = 15 * time.Second
	DefaultMaxConns         = 256
	DefaultMaxChannels      = 64
	DefaultWindow           = 256 << 10
	DefaultFileWindow       = 2 << 20 // credit for a put's data: a file streams at full speed
	DefaultKillGrace        = proc.DefaultGrace
)

// Server runs commands for clients. Set its exported fields before Serve;
// the zero value serves plaintext with the defaults above. A Server must not
// be copied after first use. Its methods are safe for concurrent use.
type Server struct {
	// TLSConfig, when non-nil, wraps every connection in TLS (the daemon
	// sets MinVersion to TLS 1.3). Nil means plaintext.
	TLSConfig *tls.Config
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Encoding is how commands' output is transcoded to UTF-8 unless a
	// client asks otherwise: "auto" (or empty: the code page commands write
	// in, from the Windows console or the locale), "utf-8", "gbk",
	// "gb18030" or "raw".
	Encoding string
	// Tracer, when set, gives a tracer for each connection (by its
	// remote address) that sees every frame sent and received.
	Tracer func(remote string) frame.Tracer
	// HandshakeTimeout bounds the TLS handshake plus the hello.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection with no open channel for this long; 0 means never.
	IdleTimeout time.Duration
	// KeepAlive is the ping interval; a ping unanswered for three intervals
	// ends the connection. Negative disables pings.
	KeepAlive time.Duration
	// MaxConns caps concurrent logged-in connections; MaxChannels caps
	// channels per connection. Connections still in their handshake or
	// login never take these slots: MaxStartups limits them.
	MaxConns, MaxChannels int
	// MaxStartups limits connections that have not logged in yet, overall
	// and per source address, with random early drop (see Startups).
	MaxStartups Startups
	// MaxPayload is the largest frame payload accepted (announced in hello).
	MaxPayload uint32
	// Window is the stdin credit given to each channel.
	Window uint32
	// KillGrace is the time between TERM and KILL when a command is ended.
	KillGrace time.Duration
	// ResumeGrace is how long a resumable command (OpenMsg.Resume) whose
	// connection was lost keeps running, its output kept, for its client
	// to attach again; 0 means DefaultResumeGrace, negative turns
	// resumption off (such commands end with their connection).
	ResumeGrace time.Duration
	// ResumeBuffer bounds the output kept per stream of a resumable
	// command and not yet acknowledged by its client; a command that
	// writes more waits for the client. 0 means DefaultResumeBuffer.
	ResumeBuffer int
	// ResumeMemory and ResumeMemoryPerUser bound the memory the output
	// kept for clients may take (each resumable command reserves its
	// spools' bound, each detached job kept in memory its own), over the
	// daemon and per user; a command past them runs without resumption,
	// a detach is refused. 0 means DefaultResumeMemory and
	// DefaultResumeMemoryPerUser.
	ResumeMemory, ResumeMemoryPerUser int64
	// JobBuffer bounds the output kept per stream of a detached job
	// (OpenMsg.Detach), all of it from its start; a job that writes more
	// waits until it is killed. 0 means DefaultJobBuffer. JobRetention is
	// how long such a job stays listed after its exit; 0 means
	// DefaultJobRetention.
	JobBuffer    int
	JobRetention time.Duration
	// JobDir, when set, keeps each detached job's output and record in
	// files under it (USER/ID/{meta.json,stdout,stderr}) instead of
	// memory: a restart lists the jobs again, exited, with their output.
	// JobDisk bounds what one user's jobs keep there, all streams
	// together; 0 means DefaultJobDisk. A job that reaches it waits, as
	// at JobBuffer, until a job of the user is removed or it is killed.
	JobDir  string
	JobDisk int64
	// Keeper, when set, keeps commands from outliving the daemon: a
	// cgroup per command and a guard process (see Keeper). Nil: the
	// daemon's own cleanup alone ends them.
	Keeper *Keeper
	// Metrics, when set (NewMetrics), counts connections, logins,
	// channels, commands, bytes and transfers.
	Metrics *Metrics
	// Dir is the served directory: commands start in it, and every file
	// operation is confined to it (through os.Root). Empty means the
	// daemon user's home directory.
	Dir string
	// Env adds KEY=VALUE entries to every command's environment (as
	// sshd's SetEnv). Commands never inherit the daemon's own.
	Env []string
	// Path is commands' PATH; empty means DefaultPath (DefaultRootPath
	// for root).
	Path string
	// AcceptEnv lists the variables a client may set (path.Match
	// patterns, as sshd's AcceptEnv: "LANG", "LC_*"); nil accepts any but
	// those the daemon sets itself (HOME, USER, PATH, ...).
	AcceptEnv []string
	// Software is announced in the hello; empty means "execd".
	Software string

	// DefaultRunAs is the OS account of the commands and files of users
	// without run_as, when the daemon runs as root; empty means the
	// daemon's own account (root).
	DefaultRunAs string

	// Users, when non-nil, makes every client log in (publickey or
	// password) before opening a channel, and act as that user: in their
	// home, with their permissions, quota and limits. Nil means no
	// authentication: every client acts as the daemon's own user on Dir
	// (cmd/execd always sets a database).
	Users *UserDB
	// Audit, when non-nil, receives one event per login, command and file
	// operation.
	Audit *AuditLog
	// AuthTimeout bounds the authentication phase; MaxAuthTries ends a
	// connection after that many failed attempts.
	AuthTimeout  time.Duration
	MaxAuthTries int
	// AuthDelay is the step by which failed logins from one address or for
	// one user slow down; AuthDelayMax caps the delay per attempt.
	AuthDelay, AuthDelayMax time.Duration

	locks xfer.Locks // partial copies being written by puts

	selfOnce     sync.Once
	self         osAccount // the daemon's own account (ownAccount)
	instOnce     sync.Once
	instance     string // this run's id, in every hello
	authOnce     sync.Once
	hasher       *hasher
	throttle     *throttle // by source address
	userThrottle *throttle // by user name, password logins only
	quotas       quotaSet
	userStates   map[string]*userState // by user name, under mu
	lingering    atomic.Int64          // refused connections being drained (refuseBusy)
	applyMu      sync.Mutex            // one application of the users at a time
	usersApplied atomic.Uint64         // the users' generation applied to connections and jobs

	mu         sync.Mutex
	adm        admission
	listeners  map[net.Listener]struct{}
	conns      map[*serverConn]struct{}
	jobs       map[string]*job        // resumable commands by id
	jobBudgets map[string]*diskBudget // by user: detached jobs' bytes on disk
	memUsers   map[string]*budget     // by user: output kept in memory
	memAll     *budget                // the daemon's: output kept in memory
	restored   sync.Once              // the jobs under JobDir are read once
	closing    bool
	wg         sync.WaitGroup
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func durOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (s *Server) init() {
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*serverConn]struct{})
	}
}

// Serve accepts connections on ln and serves each in its own goroutine. It
// always returns a non-nil error: ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closing {
		s.mu.Unlock()
		_ = ln.Close() // best effort
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	if s.adm.fdBudget == 0 {
		s.adm.fdBudget = fdBudget()
	}
	s.mu.Unlock()
	s.restored.Do(func() {
		s.restoreJobs()
		if s.Users != nil {
			s.applyUsers() // a removed user's restored jobs go
		}
	})
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	log := s.logger()
	log.Info("listening", "addr", ln.Addr().String(), "tls", s.TLSConfig != nil)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if temporaryAccept(err) {
				// As net/http does: a full file table passes when
				// connections end; running commands go on meanwhile.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("accept failed, retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := s.newConn(nc)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = nc.Close() // best effort
			return ErrServerClosed
		}
		if r := s.admit(c); r.reason != "" {
			n, warn := s.droppedLocked()
			s.mu.Unlock()
			s.refuseBusy(nc, r, r.nearFdLimit)
			s.Metrics.connRefused(r.reason)
			if warn {
				log.Warn("connections refused before their handshake", "count", n, "last_reason", r.reason, "last_addr", c.src)
			}
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.Metrics.connAccepted()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			c.serve()
		}()
	}
}

// Status is a snapshot of what a daemon serves.
type Status struct {
	Connections int            // being served, logged in or not
	LoggedIn    int            // past the login (or the hello, without users)
	Channels    map[string]int // open channels by kind
	Users       map[string]int // logged-in connections by user name
	// Waiting counts the resumable commands whose connection was lost,
	// waiting for their client (and those whose exit was not known to be
	// delivered).
	Waiting int
}

// Status returns what the daemon serves now; SIGUSR1 logs it.
func (s *Server) Status() Status {
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	st := Status{Connections: len(conns), Channels: map[string]int{}, Users: map[string]int{}, Waiting: s.waitingJobs(nil)}
	for _, c := range conns {
		c.mu.Lock()
		if c.sess != nil {
			st.LoggedIn++
			if a := c.account(); a != nil && a.user.Name != "" {
				st.Users[a.user.Name]++
			}
		}
		for k, n := range c.kinds {
			st.Channels[k] += n
		}
		c.mu.Unlock()
	}
	return st
}

// NumConns returns the number of connections being served, logged in or not.
func (s *Server) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Ready reports whether the daemon accepts connections: it listens and is
// not shutting down (/readyz).
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.listeners) > 0 && !s.closing
}

func (s *Server) closeListeners() {
	s.init()
	s.closing = true
	for ln := range s.listeners {
		_ = ln.Close() // best effort
	}
}

// Shutdown stops accepting, tells every client that no new channels will be
// accepted, and waits for running commands to finish and connections to
// close. When ctx ends first it returns ctx.Err() with commands still
// running: call Close to end them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closeListeners()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.logger().Info("shutting down", "connections", len(conns))
	for _, c := range conns {
		c.goAway("server shutting down")
	}
	s.endJobs(errJobClosed, true)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.dropJobs()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting and ends every connection at once: each running
// command's process group gets TERM, then KILL after KillGrace. Close
// returns when every command has been reaped and every connection closed.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closeListeners()
	for c := range s.conns {
		c.abort(errors.New("server closed"))
	}
	s.mu.Unlock()
	s.endJobs(errJobClosed, false)
	s.wg.Wait()
	s.dropJobs()
	return nil
}

// instanceID names this run of the server: random, made once.
func (s *Server) instanceID() string {
	s.instOnce.Do(func() {
		b := make([]byte, 8)
		_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
		s.instance = hex.EncodeToString(b)
	})
	return s.instance
}
