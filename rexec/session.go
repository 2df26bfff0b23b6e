package rexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// Signal names a signal the daemon can deliver to a command's process group.
type Signal string

// Signals the protocol defines.
const (
	SIGINT  Signal = "INT"
	SIGTERM Signal = "TERM"
	SIGHUP  Signal = "HUP"
	SIGKILL Signal = "KILL"
	SIGQUIT Signal = "QUIT"
	SIGUSR1 Signal = "USR1"
	SIGUSR2 Signal = "USR2"
)

// Session runs one command. Set the exported fields and call Setenv and
// RequestPty before Start; the zero values mean no stdin, output
// discarded, the daemon's default directory and no time limit.
type Session struct {
	// Stdin is copied to the command; its end becomes the command's end of
	// input. Nil means empty input.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output; nil discards it.
	Stdout io.Writer
	Stderr io.Writer
	// Dir is the working directory on the daemon; relative to its default.
	Dir string
	// Timeout is a time limit enforced by the daemon; 0 means none.
	Timeout time.Duration
	// Encoding asks the daemon how to transcode the command's output to
	// UTF-8 (and its stdin back): frame.EncodingAuto (or empty: the
	// daemon's choice), EncodingUTF8, EncodingGBK, EncodingGB18030 or
	// EncodingRaw for binary output. Exit().Encoding says what was done.
	Encoding string
	// Reconnect, when set, makes the command survive a lost connection
	// (see Reconnect). Not with StdoutPipe or StderrPipe.
	Reconnect *Reconnect

	c   *Client
	env []string
	pty *frame.PtyRequest

	ch      *mux.Channel  // set before started is closed
	started chan struct{} // closed once the daemon confirmed the open
	done    chan struct{} // closed at exit or connection loss

	mu        sync.Mutex
	opening   bool
	stdin     *mux.Outbound
	stdout    *mux.Inbound
	stderr    *mux.Inbound
	exit      *frame.ExitMsg
	closing   atomic.Bool // Close was called: the command is abandoned, through any reconnect
	lostErr   error
	copyErr   error
	piped     [3]bool
	stdinPR   *io.PipeReader // from StdinPipe: closed at exit so writers fail
	copies    sync.WaitGroup
	stopCtx   func() bool
	cancelled error

	// A resumable session (Reconnect, and a daemon that keeps commands).
	job        string          // the daemon's id of the command
	written    [2]atomic.Int64 // bytes of stdout and stderr delivered
	stdinLog   *stdinLog       // stdin not yet acknowledged
	bound      *sync.WaitGroup // the output copies of the current channel
	owned      []*Client       // connections dialled to reconnect, closed by Wait
	supervised chan struct{}   // closed when supervise has returned
	runCtx     context.Context // the context Start was given
	moveTried  atomic.Bool     // a move to a connection of its own was tried (Reconnect.Own)
	moving     chan struct{}   // closed when a move under way has settled
	movedFrom  *mux.Channel    // the shared channel a move took the command from
}

// Setenv adds an environment variable for the command.
func (s *Session) Setenv(name, value string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") || strings.Contains(value, "\x00") {
		return fmt.Errorf("rexec: invalid environment variable %q", name)
	}
	s.env = append(s.env, name+"="+value)
	return nil
}

// RequestPty asks for a pseudo-terminal of the given type and size for the
// command. With a pty, stdout and stderr arrive merged on Stdout.
func (s *Session) RequestPty(term string, h, w int) error {
	if h < 0 || w < 0 || h > 0xffff || w > 0xffff {
		return fmt.Errorf("rexec: bad terminal size %dx%d", w, h)
	}
	s.pty = &frame.PtyRequest{Term: term, Rows: uint16(h), Cols: uint16(w)}
	return nil
}

// WindowChange tells the command's pty its new size.
func (s *Session) WindowChange(h, w int) error {
	if err := s.ready(); err != nil {
		return err
	}
	s.mu.Lock()
	ch := s.ch
	if s.pty != nil {
		s.pty.Rows, s.pty.Cols = uint16(h), uint16(w)
	}
	s.mu.Unlock()
	return ch.SendJSON(frame.Resize, &frame.ResizeMsg{Rows: uint16(h), Cols: uint16(w)})
}

// Signal delivers sig to the command's process group on the daemon.
func (s *Session) Signal(sig Signal) error {
	if err := s.ready(); err != nil {
		return err
	}
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	return ch.SendJSON(frame.Signal, &frame.SignalMsg{Signal: string(sig)})
}

func (s *Session) ready() error {
	select {
	case <-s.started:
	default:
		return errors.New("rexec: session not started")
	}
	select {
	case <-s.done:
		return errors.New("rexec: command has exited")
	default:
		return nil
	}
}

// StdinPipe returns a pipe to the command's stdin; closing it sends EOF.
func (s *Session) StdinPipe() (io.WriteCloser, error) {
	if s.Stdin != nil || s.piped[0] {
		return nil, errors.New("rexec: Stdin already set")
	}
	pr, pw := io.Pipe()
	s.Stdin = pr
	s.stdinPR = pr
	s.piped[0] = true
	return pw, nil
}

// StdoutPipe returns a reader of the command's stdout. The caller must
// read it: the daemon waits for credit that only reading returns.
func (s *Session) StdoutPipe() (io.Reader, error) {
	if s.Stdout != nil || s.piped[1] {
		return nil, errors.New("rexec: Stdout already set")
	}
	s.piped[1] = true
	return &lazyReader{s: s, pick: func() *mux.Inbound { return s.stdout }}, nil
}

// StderrPipe returns a reader of the command's stderr, like StdoutPipe.
func (s *Session) StderrPipe() (io.Reader, error) {
	if s.Stderr != nil || s.piped[2] {
		return nil, errors.New("rexec: Stderr already set")
	}
	s.piped[2] = true
	return &lazyReader{s: s, pick: func() *mux.Inbound { return s.stderr }}, nil
}

type lazyReader struct {
	s    *Session
	pick func() *mux.Inbound
}

func (r *lazyReader) Read(p []byte) (int, error) {
	<-r.s.started
	in := r.pick()
	if in == nil {
		return 0, io.EOF
	}
	return in.Read(p)
}

// Start runs argv on the daemon without a shell. The context governs the
// whole command: when it ends first, the daemon ends the command's process
// group and Wait returns the context's error.
func (s *Session) Start(ctx context.Context, argv ...string) error {
	if len(argv) == 0 {
		return errors.New("rexec: no command")
	}
	return s.start(ctx, &frame.OpenMsg{Argv: argv})
}

// StartShell runs a command line through the daemon's shell (sh -c).
func (s *Session) StartShell(ctx context.Context, cmdline string) error {
	if cmdline == "" {
		return errors.New("rexec: empty command line")
	}
	return s.start(ctx, &frame.OpenMsg{Shell: cmdline})
}

// begin marks the session started, once.
func (s *Session) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opening {
		return errors.New("rexec: session already started")
	}
	s.opening = true
	return nil
}

// execOpen completes an exec open with the session's settings and checks it.
func (s *Session) execOpen(m *frame.OpenMsg) error {
	m.Kind = frame.KindExec
	m.Env = s.env
	m.Dir = s.Dir
	m.TimeoutMS = s.Timeout.Milliseconds()
	m.Encoding = s.Encoding
	if s.Timeout > 0 && m.TimeoutMS == 0 {
		m.TimeoutMS = 1
	}
	m.Window = s.c.window
	if err := m.Validate(); err != nil {
		return fmt.Errorf("rexec: %w", err)
	}
	return nil
}

func (s *Session) start(ctx context.Context, m *frame.OpenMsg) error {
	if err := s.begin(); err != nil {
		return err
	}
	m.Pty = s.pty
	m.Resume = s.resumable()
	if err := s.execOpen(m); err != nil {
		return err
	}
	ch, err := s.c.open(ctx, m, s.setup(s.c))
	if err != nil {
		return err
	}
	s.stopCtx = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cancelled = ctx.Err()
		s.mu.Unlock()
		s.abandon()
	})
	if job := ch.OpenOK().Job; m.Resume && job != "" {
		log := newStdinLog(int(2 * max(ch.OpenOK().Window, mux.DefaultChunk)))
		if s.Stdin == nil {
			log.eof = true
		}
		// Published under the lock: the exit may already be arriving on
		// the read loop (finish closes the log), even before this.
		s.mu.Lock()
		s.job, s.stdinLog = job, log
		select {
		case <-s.done:
			log.close()
		default:
		}
		s.mu.Unlock()
		if s.Stdin != nil {
			go log.fill(s.Stdin) // not waited for: a Read of the local stdin may never return
		}
		s.mu.Lock()
		s.runCtx = ctx
		s.mu.Unlock()
		s.bind(ch, 0, false, nil)
		s.supervised = make(chan struct{})
		close(s.started)
		go s.supervise(ctx)
		return nil
	}
	s.mu.Lock()
	s.ch, s.stdin = ch, ch.Out(frame.Stdin)
	s.mu.Unlock()
	s.copyOut(s.Stdout, s.stdout, 1, nil)
	if s.stderr != nil {
		s.copyOut(s.Stderr, s.stderr, 2, nil)
	}
	close(s.started)
	if s.Stdin == nil {
		_ = s.stdin.Close() // empty input: EOF at once
	} else {
		go func() {
			// Not waited for by Wait, as a Read of the local stdin may never return.
			_, err := io.Copy(s.stdin, s.Stdin)
			if err == nil {
				_ = s.stdin.Close()
			}
		}()
	}
	return nil
}

// setup prepares a channel of c for the session before its open leaves:
// its output streams and its exit.
func (s *Session) setup(c *Client) func(*mux.Channel) {
	return func(ch *mux.Channel) {
		s.mu.Lock()
		s.stdout = ch.Inbound(frame.Stdout, c.window)
		if s.pty == nil {
			s.stderr = ch.Inbound(frame.Stderr, c.window)
		}
		s.mu.Unlock()
		ch.Sends(frame.Stdin)
		ch.OnControl(frame.Exit, mux.On(s.exited))
	}
}

// copyOut delivers an output stream to w unless the caller reads it
// through a pipe; bound, when set, counts the copies of the channel.
func (s *Session) copyOut(w io.Writer, in *mux.Inbound, idx int, bound *sync.WaitGroup) {
	if s.piped[idx] {
		return
	}
	if w == nil {
		w = io.Discard
	}
	s.copies.Add(1)
	if bound != nil {
		bound.Add(1)
	}
	go func() {
		defer s.copies.Done()
		if bound != nil {
			defer bound.Done()
		}
		_, err := io.Copy(w, in)
		if errors.Is(err, mux.ErrLost) {
			if s.job == "" {
				s.finish(nil, s.c.lost())
			}
			return // a resumable session reconnects (supervise)
		}
		if err != nil && s.movedAway(err, in) {
			return // the session took its command over to another channel
		}
		if err != nil {
			// The local side cannot take more: end the command, as a
			// broken pipe would, and drop the rest.
			s.mu.Lock()
			if s.copyErr == nil {
				s.copyErr = err
			}
			s.mu.Unlock()
			in.CloseWithError(err)
			s.abandon()
		}
	}()
}

// movedAway reports whether in is a stream of the channel a move took
// the session's command from.
func (s *Session) movedAway(err error, in *mux.Inbound) bool {
	if !codeIs(err, frame.CodeTakenOver) {
		return false
	}
	s.mu.Lock()
	from := s.movedFrom
	s.mu.Unlock()
	return from != nil && (from.In(frame.Stdout) == in || from.In(frame.Stderr) == in)
}

// abandon asks the daemon to end the command; its exit (with the reason)
// still ends the session.
func (s *Session) abandon() {
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	if ch != nil {
		_ = ch.Send(frame.Close, nil) // best effort
	}
}

// exited takes the command's exit from the read loop.
func (s *Session) exited(ch *mux.Channel, m *frame.ExitMsg) error {
	if ok := ch.OpenOK(); ok != nil && ok.Job != "" {
		// Acknowledges the exit of a resumable command, so that the
		// daemon need not keep it for an attach any more; before Wait can
		// return, and its caller close the connection.
		_ = ch.Send(frame.Close, nil) // best effort: without it the daemon keeps it for its grace period
	}
	s.finish(m, nil)
	ch.Finish()
	return nil
}

func (s *Session) finish(exit *frame.ExitMsg, lost error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return
	default:
	}
	s.exit, s.lostErr = exit, lost
	// Output that arrived before the exit is delivered; nothing more will come.
	for _, in := range []*mux.Inbound{s.stdout, s.stderr} {
		if in != nil {
			in.SetEOF()
		}
	}
	if s.stdin != nil {
		s.stdin.Abort(io.ErrClosedPipe)
	}
	if s.stdinPR != nil {
		_ = s.stdinPR.CloseWithError(io.ErrClosedPipe) // the command is gone: writes fail
	}
	if s.stdinLog != nil {
		s.stdinLog.close()
	}
	close(s.done)
}

// Wait waits for the command to exit and its output to be delivered. It
// returns nil for status 0, *ExitError for another status or a signal, an
// error wrapping ErrConnectionLost when the connection ended first, or the
// Start context's error when it was cancelled.
func (s *Session) Wait() error {
	select {
	case <-s.started:
	default:
		return errors.New("rexec: session not started")
	}
	if s.job != "" {
		// supervise ends a resumable session, once the channel the exit
		// came on has its output copies running.
		<-s.done
		<-s.supervised
	} else {
		select {
		case <-s.done:
		case <-s.ch.Done():
			// The channel ended without an exit: the connection was lost, or
			// the daemon reported an error for it. Nothing more can arrive.
			err := s.c.channelErr(s.ch)
			if !errors.Is(err, ErrConnectionLost) {
				err = fmt.Errorf("%w: %w", ErrConnectionLost, err)
			}
			s.finish(nil, err)
		}
	}
	s.copies.Wait()
	s.mu.Lock()
	owned := s.owned
	s.owned = nil
	s.mu.Unlock()
	for _, c := range owned {
		_ = c.Close() // best effort
	}
	if s.stopCtx != nil {
		s.stopCtx()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelled != nil {
		return s.cancelled
	}
	if s.lostErr != nil {
		return s.lostErr
	}
	if s.copyErr != nil {
		return fmt.Errorf("rexec: writing output: %w", s.copyErr)
	}
	if s.exit.Code == 0 && s.exit.Signal == "" {
		return nil
	}
	return &ExitError{*exitOf(s.exit)}
}

// Exit returns how the command ended once Wait has returned (nil if the
// daemon's report of it never arrived).
func (s *Session) Exit() *Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exit == nil {
		return nil
	}
	return exitOf(s.exit)
}

// Run starts argv and waits for it.
func (s *Session) Run(ctx context.Context, argv ...string) error {
	if err := s.Start(ctx, argv...); err != nil {
		return err
	}
	return s.Wait()
}

// Output runs argv and returns its stdout.
func (s *Session) Output(ctx context.Context, argv ...string) ([]byte, error) {
	if s.Stdout != nil {
		return nil, errors.New("rexec: Stdout already set")
	}
	var b bytes.Buffer
	s.Stdout = &b
	err := s.Run(ctx, argv...)
	return b.Bytes(), err
}

// CombinedOutput runs argv and returns its stdout and stderr interleaved
// as they arrived.
func (s *Session) CombinedOutput(ctx context.Context, argv ...string) ([]byte, error) {
	if s.Stdout != nil || s.Stderr != nil {
		return nil, errors.New("rexec: Stdout or Stderr already set")
	}
	var b lockedBuffer
	s.Stdout, s.Stderr = &b, &b
	err := s.Run(ctx, argv...)
	return b.Bytes(), err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Bytes()
}

// Close abandons the session: a running command is ended by the daemon.
func (s *Session) Close() error {
	select {
	case <-s.started:
	default:
		return nil
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	s.closing.Store(true) // a reconnect in progress gives up, or closes what it attached
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	return ch.Send(frame.Close, nil)
}
