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
	"sync/atomic"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/proc"
	"github.com/execd-project/execd/internal/xfer"
)

// Why a command was ended early; sent in the exit message.
var (
	errAbandoned = errors.New("abandoned by the client")
	errTimeLimit = errors.New("time limit reached")
)

// execChan is one command on one channel.
type execChan struct {
	c        *serverConn
	ch       *mux.Channel
	id       uint32
	p        *proc.Process
	stdin    *mux.Inbound
	stdout   *mux.Outbound
	stderr   *mux.Outbound // nil with a pty: the terminal merges the streams
	started  time.Time
	timeout  time.Duration
	argv0    string
	audit    *AuditEvent // the exec event; its copy with the outcome is the exit event
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	encoding string // how the output is transcoded to UTF-8 (and stdin back)

	ctx    context.Context
	cancel context.CancelCauseFunc
}

// openExec is the handler of exec channels: it starts the command the
// open asks for, as the connection's account, confirms the channel with
// the command's pid and runs it.
func (c *serverConn) openExec(nc mux.NewChannel) {
	ch, err := c.startCommand(nc)
	if err != nil {
		c.reject(nc, frame.CodeExecFailed, err.Error())
		return
	}
	// A failed confirmation means the connection is gone: run ends the
	// command, as the channel's end cancelled its context.
	_, _ = nc.Accept(&frame.OpenOKMsg{Window: ch.stdin.Window(), PID: ch.p.Pid(), Encoding: ch.encoding})
	c.wg.Add(1)
	go ch.run()
}

// startCommand starts the command of an exec open and sets up its streams.
func (c *serverConn) startCommand(nc mux.NewChannel) (*execChan, error) {
	s, m, id := c.srv, nc.OpenMsg(), nc.ID()
	acct := c.acct
	argv0 := "shell"
	if len(m.Argv) > 0 {
		argv0 = m.Argv[0]
	}
	dir, err := workDir(acct.home, m.Dir)
	if err != nil {
		return nil, err
	}
	account := s.runAsOf(acct.user)
	cred, err := runAs(account)
	if err != nil {
		return nil, err
	}
	env := s.Env
	if env == nil {
		env = os.Environ()
	}
	var extra []string
	if acct.st != nil {
		extra = append(extra, "HOME="+acct.home, "REXEC_USER="+acct.user.Name)
		if account != "" {
			extra = append(extra, "USER="+account, "LOGNAME="+account)
		}
	}
	if m.Pty != nil && m.Pty.Term != "" {
		extra = append(extra, "TERM="+m.Pty.Term)
	}
	extra = append(extra, m.Env...)
	encoding, err := s.outputEncoding(m.Encoding, m.Pty != nil)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(m.TimeoutMS) * time.Millisecond
	if limit := time.Duration(acct.user.CommandTimeout); limit > 0 && (timeout == 0 || timeout > limit) {
		timeout = limit
	}
	p, err := proc.Start(proc.Spec{Argv: m.Argv, Shell: m.Shell, Env: mergeEnv(env, extra), Dir: dir, Pty: m.Pty, Cred: cred, Keeper: s.Keeper})
	if err != nil {
		return nil, err
	}
	win := s.Window
	if win == 0 {
		win = DefaultWindow
	}
	ctx, cancel := context.WithCancelCause(nc.Context())
	ch := &execChan{
		c:        c,
		ch:       nc.Channel,
		id:       id,
		p:        p,
		stdin:    nc.Inbound(frame.Stdin, win),
		stdout:   nc.Outbound(frame.Stdout, m.Window),
		started:  time.Now(),
		timeout:  timeout,
		argv0:    argv0,
		audit:    &AuditEvent{Event: "exec", User: acct.user.Name, Addr: c.nc.RemoteAddr().String(), Argv: m.Argv, Shell: m.Shell, Dir: dir, Pty: m.Pty != nil, PID: p.Pid()},
		ctx:      ctx,
		cancel:   cancel,
		encoding: encoding,
	}
	if m.Pty == nil {
		ch.stderr = nc.Outbound(frame.Stderr, m.Window)
	}
	nc.OnControl(frame.Signal, mux.On(func(_ *mux.Channel, m *frame.SignalMsg) error { ch.signal(m.Signal); return nil }))
	nc.OnControl(frame.Resize, mux.On(func(_ *mux.Channel, m *frame.ResizeMsg) error { ch.resize(m.Cols, m.Rows); return nil }))
	if acct.st != nil && acct.user.Quota > 0 {
		s.quotas.get(acct.home).markDirty() // a command may write anywhere in the home
	}
	ch.audit.Start = ptr(ch.started.UTC())
	s.Audit.Log(ch.audit)
	s.Metrics.commandStarted()
	c.log.Info("command started", "channel", id, "argv0", argv0, "args", max(len(m.Argv)-1, 0),
		"shell", m.Shell != "", "pty", m.Pty != nil, "dir", dir, "pid", p.Pid())
	return ch, nil
}

// workDir resolves the working directory a client asked for: a path
// relative to base (the home), confined to it as file paths are: no
// absolute path, no ".." above it, no symlink leading out of it.
func workDir(base, req string) (string, error) {
	if req == "" {
		return base, nil
	}
	p, err := xfer.Resolve(".", req)
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	defer root.Close()
	fi, err := root.Stat(p)
	if err != nil {
		return "", fmt.Errorf("working directory: %s", xfer.ErrorFor(p, err).Message)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("working directory %s: not a directory", xfer.Display(p))
	}
	return filepath.Join(base, filepath.FromSlash(p)), nil
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

func (ch *execChan) signal(name string) {
	if err := ch.p.Signal(name); err != nil {
		ch.c.log.Debug("signal not delivered", "channel", ch.id, "signal", name, "err", err)
		return
	}
	ch.c.log.Info("signal delivered", "channel", ch.id, "signal", name)
}

func (ch *execChan) resize(cols, rows uint16) {
	if err := ch.p.Resize(cols, rows); err != nil {
		ch.c.log.Debug("resize ignored", "channel", ch.id, "err", err)
	}
}

// run streams the command's output, waits for it, and sends the exit
// status only after stdout and stderr have been drained.
func (ch *execChan) run() {
	defer ch.c.wg.Done()
	defer ch.cancel(nil)
	grace := durOr(ch.c.srv.KillGrace, DefaultKillGrace)
	drained := ch.pumpOutput()
	inDone := ch.pumpInput()
	st := ch.wait(grace)
	// The leader is gone: what is left of its process group would be an
	// orphan. End it, then drain what it wrote.
	ch.p.Terminate(grace)
	select {
	case <-drained:
	case <-time.After(grace + time.Second):
		ch.c.log.Warn("output still open after exit, closing", "channel", ch.id)
		ch.p.CloseOutput()
		<-drained
	}
	ch.p.Release()
	_ = ch.stdout.Close() // best effort: a dead connection fails every send
	if ch.stderr != nil {
		_ = ch.stderr.Close()
	}
	exit := ch.exitMsg(st)
	_ = ch.ch.SendJSON(frame.Exit, exit)
	ch.c.log.Info("command exited", "channel", ch.id, "argv0", ch.argv0, "code", exit.Code,
		"signal", exit.Signal, "duration_ms", exit.DurationMS, "timed_out", exit.TimedOut)
	ch.stdin.CloseWithError(io.ErrClosedPipe)
	<-inDone
	ch.recordExit(exit)
	ch.ch.Finish()
}

// pumpOutput copies stdout and stderr to their streams; the returned
// channel is closed when both have ended.
func (ch *execChan) pumpOutput() <-chan struct{} {
	var wg sync.WaitGroup
	pump := func(r io.ReadCloser, o *mux.Outbound, stream string) {
		defer wg.Done()
		// Ends at io.EOF, or EIO from a pty whose processes have all exited.
		// When the client is gone or abandoned the channel, stop reading so
		// that the command's writes fail; a read error alone closes nothing
		// (closing a pty master would hang up the terminal).
		n, err := o.ReadFrom(r)
		ch.bytesOut.Add(n)
		ch.c.srv.Metrics.addBytes("out", stream, n)
		if err != nil && o.Failed() {
			_ = r.Close() // best effort
		}
		ch.c.log.Debug("output ended", "channel", ch.id, "bytes", n, "err", err)
	}
	wg.Add(1)
	go pump(decodeOutput(ch.p.Stdout, ch.encoding), ch.stdout, "stdout")
	if ch.stderr != nil {
		wg.Add(1)
		go pump(decodeOutput(ch.p.Stderr, ch.encoding), ch.stderr, "stderr")
	}
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		close(drained)
	}()
	return drained
}

// pumpInput copies the stdin stream to the command; the returned channel
// is closed when the copy has ended.
func (ch *execChan) pumpInput() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := io.Copy(ch.p.Stdin, encodeInput(ch.stdin, ch.encoding))
		ch.bytesIn.Add(n)
		ch.c.srv.Metrics.addBytes("in", "stdin", n)
		if err == nil {
			ch.p.StdinEOF()
		}
	}()
	return done
}

// wait waits for the command's leader to exit, ending its process group
// when the channel ends first (the client left, abandoned it, or the time
// limit came).
func (ch *execChan) wait(grace time.Duration) proc.ExitState {
	if ch.timeout > 0 {
		timer := time.AfterFunc(ch.timeout, func() { ch.cancel(errTimeLimit) })
		defer timer.Stop()
	}
	exited := make(chan struct{})
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
		ch.p.Terminate(grace)
	}()
	st := ch.p.Wait()
	close(exited)
	<-watchDone
	return st
}

// exitMsg is the exit frame of the command, with why it was ended early.
func (ch *execChan) exitMsg(st proc.ExitState) *frame.ExitMsg {
	exit := st.ExitMsg(time.Since(ch.started))
	exit.Encoding = ch.encoding
	var re *mux.RemoteError
	switch cause := context.Cause(ch.ctx); {
	case errors.Is(cause, errTimeLimit):
		exit.TimedOut = true
		exit.Message = fmt.Sprintf("time limit of %s reached", ch.timeout)
	case errors.Is(cause, mux.ErrAbandoned):
		exit.Message = errAbandoned.Error()
	case errors.As(cause, &re):
		exit.Message = "the client reported: " + re.Message
	}
	return exit
}

// recordExit writes the exit event to the audit log.
func (ch *execChan) recordExit(exit *frame.ExitMsg) {
	c := ch.c
	ev := *ch.audit
	ev.Time, ev.Event, ev.End = time.Time{}, "exit", ptr(time.Now().UTC())
	ev.Exit, ev.Signal, ev.TimedOut, ev.Result = ptr(int(exit.Code)), exit.Signal, exit.TimedOut, exit.Message
	ev.BytesIn, ev.BytesOut = ch.bytesIn.Load(), ch.bytesOut.Load()
	c.srv.Audit.Log(&ev)
	c.srv.Metrics.commandExited(exit)
	if acct := c.acct; acct.st != nil && acct.user.Quota > 0 {
		c.srv.quotas.get(acct.home).markDirty()
	}
}
