package execd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// Why a command was ended early; sent in the exit message.
var (
	errAbandoned = errors.New("abandoned by the client")
	errTimeLimit = errors.New("time limit reached")
)

// execChan is one command on one channel.
type execChan struct {
	c           *serverConn
	id          uint32
	p           *process
	stdin       *mux.Inbound
	stdinWindow uint32
	stdout      *mux.Outbound
	stderr      *mux.Outbound // nil with a pty: the terminal merges the streams
	started     time.Time
	timeout     time.Duration
	argv0       string

	ctx    context.Context
	cancel context.CancelCauseFunc
}

// startChannel starts the command an Open asked for.
func (c *serverConn) startChannel(mc *mux.Conn, id uint32, m *frame.OpenMsg) (*execChan, error) {
	s := c.srv
	argv := m.Argv
	if m.Shell != "" {
		argv = shellArgv(m.Shell)
	}
	dir, err := s.workDir(m.Dir)
	if err != nil {
		return nil, err
	}
	env := s.Env
	if env == nil {
		env = os.Environ()
	}
	extra := m.Env
	if m.Pty != nil && m.Pty.Term != "" {
		extra = append([]string{"TERM=" + m.Pty.Term}, extra...)
	}
	p, err := startProcess(procSpec{argv: argv, env: mergeEnv(env, extra), dir: dir, pty: m.Pty})
	if err != nil {
		return nil, err
	}
	win := s.Window
	if win == 0 {
		win = DefaultWindow
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	ch := &execChan{
		c:           c,
		id:          id,
		p:           p,
		stdin:       mux.NewInbound(mc, id, frame.Stdin, win),
		stdinWindow: win,
		stdout:      mux.NewOutbound(mc, id, frame.Stdout, m.Window),
		started:     time.Now(),
		timeout:     time.Duration(m.TimeoutMS) * time.Millisecond,
		argv0:       argv[0],
		ctx:         ctx,
		cancel:      cancel,
	}
	if m.Pty == nil {
		ch.stderr = mux.NewOutbound(mc, id, frame.Stderr, m.Window)
	}
	c.log.Info("command started", "channel", id, "argv0", argv[0], "args", len(argv)-1,
		"shell", m.Shell != "", "pty", m.Pty != nil, "dir", dir, "pid", p.pid())
	return ch, nil
}

// workDir resolves the working directory a client asked for.
func (s *Server) workDir(req string) (string, error) {
	base := s.Dir
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/"
		}
		base = home
	}
	if req == "" {
		return base, nil
	}
	dir := req
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(base, dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("working directory %s: not a directory", dir)
	}
	return dir, nil
}

// mergeEnv appends extra KEY=VALUE entries to base, later keys replacing earlier ones.
func mergeEnv(base, extra []string) []string {
	out := make([]string, 0, len(base)+len(extra))
	idx := make(map[string]int, len(base)+len(extra))
	for _, kv := range append(append([]string(nil), base...), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func (ch *execChan) outbound(t frame.Type) *mux.Outbound {
	switch t {
	case frame.Stdout:
		return ch.stdout
	case frame.Stderr:
		if ch.stderr != nil {
			return ch.stderr
		}
	}
	return nil
}

func (ch *execChan) handle(f frame.Frame) error {
	switch f.Type {
	case frame.Stdin:
		return ch.stdin.Push(f.Payload, f.Flags&frame.FlagEOF != 0)
	case frame.Window:
		var m frame.WindowMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		o := ch.outbound(m.Stream)
		if o == nil {
			return protoErrf(frame.CodeInvalid, "window for %s, which the server does not send on channel %d", m.Stream, f.Channel)
		}
		return o.AddCredit(m.Credit)
	case frame.Signal:
		var m frame.SignalMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		ch.signal(m.Signal)
	case frame.Resize:
		var m frame.ResizeMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		ch.resize(m.Cols, m.Rows)
	default:
		return protoErrf(frame.CodeUnexpected, "%s frame on command channel %d", f.Type, f.Channel)
	}
	return nil
}

func (ch *execChan) pushData(h frame.Header, p []byte) error {
	if h.Type != frame.Stdin {
		return protoErrf(frame.CodeUnexpected, "%s frame on command channel %d", h.Type, h.Channel)
	}
	return ch.stdin.PushOwned(p, h.Flags&frame.FlagEOF != 0)
}

// end asks for the command to be ended with cause.
func (ch *execChan) end(cause error) { ch.cancel(cause) }

func (ch *execChan) signal(name string) {
	if err := ch.p.signal(name); err != nil {
		ch.c.log.Debug("signal not delivered", "channel", ch.id, "signal", name, "err", err)
		return
	}
	ch.c.log.Info("signal delivered", "channel", ch.id, "signal", name)
}

func (ch *execChan) resize(cols, rows uint16) {
	if err := ch.p.resize(cols, rows); err != nil {
		ch.c.log.Debug("resize ignored", "channel", ch.id, "err", err)
	}
}

// run streams the command's output, waits for it, and sends the exit
// status only after stdout and stderr have been drained.
func (ch *execChan) run() {
	c := ch.c
	defer c.wg.Done()
	defer ch.cancel(nil)
	grace := durOr(c.srv.KillGrace, DefaultKillGrace)

	var outWG sync.WaitGroup
	pump := func(r io.ReadCloser, o *mux.Outbound) {
		defer outWG.Done()
		// Ends at io.EOF, or EIO from a pty whose processes have all exited.
		// When the client is gone or abandoned the channel, stop reading so
		// that the command's writes fail; a read error alone closes nothing
		// (closing a pty master would hang up the terminal).
		n, err := o.ReadFrom(r)
		if err != nil && o.Failed() {
			_ = r.Close() // best effort
		}
		c.log.Debug("output ended", "channel", ch.id, "bytes", n, "err", err)
	}
	outWG.Add(1)
	go pump(ch.p.stdout, ch.stdout)
	if ch.stderr != nil {
		outWG.Add(1)
		go pump(ch.p.stderr, ch.stderr)
	}
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		_, err := io.Copy(ch.p.stdin, ch.stdin)
		if err == nil {
			ch.p.stdinEOF()
		}
	}()

	exited := make(chan struct{})
	var timer *time.Timer
	if ch.timeout > 0 {
		timer = time.AfterFunc(ch.timeout, func() { ch.cancel(errTimeLimit) })
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-ch.ctx.Done():
		case <-exited:
			return
		}
		cause := context.Cause(ch.ctx)
		if !errors.Is(cause, errTimeLimit) {
			// Nobody will read the output any more: do not wait for credit.
			ch.stdout.Abort(cause)
			if ch.stderr != nil {
				ch.stderr.Abort(cause)
			}
		}
		ch.p.terminate(grace)
	}()

	st := ch.p.wait()
	close(exited)
	<-watchDone
	if timer != nil {
		timer.Stop()
	}
	// The leader is gone: what is left of its process group would be an
	// orphan. End it, then drain what it wrote.
	ch.p.terminate(grace)
	drained := make(chan struct{})
	go func() {
		outWG.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(grace + time.Second):
		c.log.Warn("output still open after exit, closing", "channel", ch.id)
		ch.p.closeOutput()
		<-drained
	}
	ch.p.release()

	_ = ch.stdout.Close() // best effort: a dead connection fails every send
	if ch.stderr != nil {
		_ = ch.stderr.Close()
	}
	exit := st.exitMsg(time.Since(ch.started))
	switch cause := context.Cause(ch.ctx); {
	case errors.Is(cause, errTimeLimit):
		exit.TimedOut = true
		exit.Message = fmt.Sprintf("time limit of %s reached", ch.timeout)
	case cause != nil && ch.c.ctx.Err() == nil:
		exit.Message = cause.Error()
	}
	_ = c.mc.SendJSON(frame.Exit, ch.id, exit)
	c.log.Info("command exited", "channel", ch.id, "argv0", ch.argv0, "code", exit.Code,
		"signal", exit.Signal, "duration_ms", exit.DurationMS, "timed_out", exit.TimedOut)

	ch.stdin.CloseWithError(io.ErrClosedPipe)
	<-inDone
	c.removeChannel(ch.id)
}
