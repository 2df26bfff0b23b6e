// Package naive is the teaching mode of execd and rexec, both ends: the
// protocol with framing switched off, as the classic ssh-lite homework
// writes it, so that students see TCP's sticky packets (黏包). The server
// runs each command line it reads with one recv and writes the raw
// output back; the client sends a line and prints what one recv gets.
// Nothing here is used by the framed protocol.
package naive

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/execd-project/execd/internal/proc"
)

// Server speaks the teaching protocol with framing switched off, as
// the classic ssh-lite homework does: the client sends a command line, the
// server reads it with one recv(ReadBuffer), runs it through the shell and
// writes its stdout and then its stderr to the socket, raw, with nothing to
// say where the answer ends. A client that reads the answer with one
// recv(1024) sees the rest of a long output arrive as the answer to its
// next command. There is no TLS and no login: it is for lessons, on
// loopback.
type Server struct {
	// Dir is where commands run; empty means the daemon's directory.
	Dir string
	// ReadBuffer is the size of the one read that takes a command; 0 means 1024.
	ReadBuffer int
	// CommandTimeout ends a command that runs longer; 0 means a minute.
	CommandTimeout time.Duration
	// KillGrace is the time between TERM and KILL; 0 means proc.DefaultGrace.
	KillGrace time.Duration
	// Logger receives a line per command; nil discards them.
	Logger *slog.Logger
}

// Serve accepts connections on ln until ctx ends, then closes them, ends
// their commands and returns ctx's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c, log.With("remote", c.RemoteAddr().String()))
		}()
	}
}

// serveConn answers commands on one connection until it closes.
func (s *Server) serveConn(ctx context.Context, c net.Conn, log *slog.Logger) {
	defer func() { _ = c.Close() }() // the connection is over
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	size := s.ReadBuffer
	if size <= 0 {
		size = 1024
	}
	buf := make([]byte, size)
	log.Info("teaching connection")
	for {
		n, err := c.Read(buf) // one recv: whatever arrived is the command
		if n > 0 {
			line := strings.TrimRight(string(buf[:n]), "\r\n")
			if line == "" {
				continue
			}
			out := s.run(ctx, line, log)
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				log.Debug("teaching connection ended", "err", err)
			}
			return
		}
	}
}

// run runs one command line and returns its stdout followed by its stderr.
func (s *Server) run(ctx context.Context, line string, log *slog.Logger) []byte {
	timeout := s.CommandTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	grace := s.KillGrace
	if grace <= 0 {
		grace = proc.DefaultGrace
	}
	start := time.Now()
	p, err := proc.Start(proc.Spec{Shell: line, Env: os.Environ(), Dir: s.Dir})
	if err != nil {
		return []byte(err.Error() + "\n")
	}
	p.StdinEOF() // no stdin in this protocol
	var stdout, stderr []byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stdout, _ = io.ReadAll(p.Stdout) }()
	go func() { defer wg.Done(); stderr, _ = io.ReadAll(p.Stderr) }()
	timer := time.AfterFunc(timeout, func() { p.Terminate(grace) })
	defer timer.Stop()
	stop := context.AfterFunc(ctx, func() { p.Terminate(grace) })
	defer stop()
	wg.Wait()
	st := p.Wait()
	log.Info("teaching command", "cmd", line, "bytes", len(stdout)+len(stderr), "exit", st.ExitMsg(time.Since(start)).Code,
		"duration_ms", time.Since(start).Milliseconds())
	return append(stdout, stderr...)
}
