package execd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// bind makes b the channel the job is streamed on.
func (j *job) bind(b *binding) {
	j.mu.Lock()
	j.bound = b
	if j.grace != nil {
		j.grace.Stop()
		j.grace = nil
	}
	j.mu.Unlock()
}

// unbind is told that b has ended, with why. A plain job ends with its
// channel; so does a resumable one its client abandoned. A resumable job
// whose connection was lost (or taken over) waits for an attach until
// the grace period is over.
func (j *job) unbind(b *binding, cause error) {
	// Counted before j.mu is taken (waitingJobs takes each job's); j is
	// still bound, so not counted.
	crowded := j.resumable && j.srv.waitingJobs(j.acct) >= j.srv.channelLimit(j.acct)
	j.mu.Lock()
	if j.bound != b {
		j.mu.Unlock()
		return
	}
	j.bound = nil
	if j.detached || b.takenOver.Load() {
		j.mu.Unlock()
		return // it goes on without a channel (detached), or a new one is on its way
	}
	select {
	case <-j.done:
		if !j.resumable {
			j.mu.Unlock()
			return
		}
	default:
		var re *frame.RemoteError
		if !j.resumable || errors.Is(cause, mux.ErrAbandoned) || errors.As(cause, &re) {
			j.mu.Unlock()
			j.cancel(cause)
			return
		}
	}
	j.srv.mu.Lock()
	closing := j.srv.closing
	j.srv.mu.Unlock()
	why := errJobClosed
	if !closing && crowded {
		closing, why = true, errCrowded
		j.log.Warn("ending a command that lost its client", "job", j.id, "user", j.acct.user.Name, "why", errCrowded)
	}
	if closing {
		// The daemon is shutting down (nobody can attach any more), or
		// the user has too many commands waiting.
		j.mu.Unlock()
		j.cancel(why)
		select {
		case <-j.done:
			j.forget()
		default: // run forgets it at its end
		}
		return
	}
	select {
	case <-j.done:
		// What waits for the client is the end of the output: keep no
		// more memory for it than it needs.
		for _, sp := range j.out {
			if sp != nil {
				sp.compact()
			}
		}
	default:
	}
	grace := j.srv.resumeGrace()
	j.grace = time.AfterFunc(grace, func() {
		if j.isBound() {
			return
		}
		select {
		case <-j.done:
		default:
			j.log.Info("ending a command its client did not come back for", "job", j.id, "pid", j.p.Pid(), "grace", grace)
			j.cancel(errGraceOver)
			<-j.done
		}
		j.forget()
	})
	j.mu.Unlock()
	j.log.Info("command waits for its client", "job", j.id, "pid", j.p.Pid(), "grace", grace, "cause", cause)
}

// binding streams a job on one channel, from given offsets: the spools to
// the client under its credit (whose grants acknowledge, and so trim,
// what it has written), the client's stdin to the job, and at the end
// the exit.
type binding struct {
	j     *job
	c     *serverConn
	ch    *mux.Channel
	stdin *mux.Inbound
	out   [2]*mux.Outbound
	from  [2]int64
	stop  chan struct{} // closed to stop the pumps
	once  sync.Once
	// takenOver marks a binding an attach took the job from: its end
	// neither ends the job nor starts a grace period.
	takenOver atomic.Bool
	pumps     sync.WaitGroup
}

// newBinding sets up the streams of a new channel (before its Accept).
func (j *job) newBinding(c *serverConn, nc mux.NewChannel, from [2]int64) *binding {
	win := c.srv.Window
	if win == 0 {
		win = DefaultWindow
	}
	m := nc.OpenMsg()
	b := &binding{j: j, c: c, ch: nc.Channel, from: from, stop: make(chan struct{})}
	c.streams(nc.Channel, j)
	b.stdin = nc.Inbound(frame.Stdin, win)
	b.out[0] = nc.Outbound(frame.Stdout, m.Window)
	if j.out[1] != nil {
		b.out[1] = nc.Outbound(frame.Stderr, m.Window)
	}
	for i, o := range b.out {
		if o != nil && j.resumable && !j.detached { // a detached job keeps all its output
			sp, start := j.out[i], from[i]
			o.OnCredit(func(granted int64) { sp.ack(start + granted) })
		}
	}
	nc.OnControl(frame.Signal, mux.On(func(_ *mux.Channel, m *frame.SignalMsg) error { j.signal(m.Signal); return nil }))
	nc.OnControl(frame.Resize, mux.On(func(_ *mux.Channel, m *frame.ResizeMsg) error { j.resize(m.Cols, m.Rows); return nil }))
	// Every pump serve starts is counted now, before anyone may wait
	// for them: serve's watcher when the channel ends at once (a
	// client's Ctrl-C), an attach taking the job over.
	b.pumps.Add(1)
	for _, o := range b.out {
		if o != nil {
			b.pumps.Add(1)
		}
	}
	return b
}

// halt stops the binding's pumps; it is idempotent.
func (b *binding) halt(cause error) {
	b.once.Do(func() {
		close(b.stop)
		for i, o := range b.out {
			if o != nil {
				o.Abort(cause)
				b.j.out[i].wake()
			}
		}
		b.stdin.CloseWithError(cause)
	})
}

// serve streams the job until its exit is sent or the channel ends.
func (b *binding) serve() {
	defer b.c.wg.Done()
	j := b.j
	finished := make(chan struct{})
	go b.watchEnd(finished)
	go b.pumpInput()
	errs := b.pumpOutput()
	select { // the exit is set once the job is done
	case <-j.done:
	case <-b.ch.Context().Done():
	}
	if (errors.Is(errs[0], errTrimmed) || errors.Is(errs[1], errTrimmed)) && b.ch.Context().Err() == nil {
		// A stream lost its place with the channel still open: a fault of
		// ours, said rather than left hanging. (A failed send means the
		// connection is gone: the channel's end follows.)
		b.c.log.Error("output stream failed", "job", j.id, "stdout", errs[0], "stderr", errs[1])
		b.ch.Fail(frame.CodeInternal, fmt.Sprintf("output stream failed: %v", cmp.Or(errs[0], errs[1])))
	}
	if b.ch.Context().Err() != nil {
		cause := context.Cause(b.ch.Context())
		if errors.Is(cause, mux.ErrLost) || b.takenOver.Load() || j.detached {
			return // watchEnd unbinds: the job waits for an attach, ends, or (detached) goes on
		}
		// Abandoned, or failed by the client: the job ends, and its exit
		// (with why) is still sent, as the client waits for it.
		<-j.done
	}
	j.mu.Lock()
	exit := j.exit
	j.mu.Unlock()
	if err := b.ch.SendJSON(frame.Exit, exit); err != nil {
		return
	}
	close(finished)
	b.halt(io.ErrClosedPipe)
	if !j.resumable || j.detached {
		b.ch.Finish()
		b.pumps.Wait()
		j.unbind(b, nil)
		return
	}
	delivered, sess := b.exitAcknowledged()
	b.ch.Finish()
	b.pumps.Wait()
	if !delivered {
		b.c.log.Debug("exit not known to be delivered", "job", j.id, "channel", context.Cause(b.ch.Context()), "session", sess.Err())
		j.unbind(b, mux.ErrLost)
		return
	}
	j.mu.Lock()
	if j.bound == b {
		j.bound = nil
	}
	j.mu.Unlock()
	j.forget()
}

// watchEnd unbinds the job when the channel ends before its exit was
// sent (finished closes once it was: serve unbinds then).
func (b *binding) watchEnd(finished <-chan struct{}) {
	select {
	case <-b.ch.Context().Done():
		select {
		case <-finished:
			return // the exit was sent before the channel ended: serve unbinds
		default:
		}
		cause := context.Cause(b.ch.Context())
		b.halt(cause)
		b.pumps.Wait()
		b.j.unbind(b, cause)
	case <-finished:
	}
}

// pumpOutput sends the job's stdout and stderr from the binding's
// offsets until they end (closing both when both ended well), and gives
// each stream's error.
func (b *binding) pumpOutput() [2]error {
	var outs sync.WaitGroup
	var errs [2]error
	for i, o := range b.out {
		if o == nil {
			continue
		}
		outs.Add(1)
		go func() {
			defer b.pumps.Done()
			defer outs.Done()
			_, errs[i] = o.ReadFrom(&spoolReader{sp: b.j.out[i], off: b.from[i], stop: b.stop, drop: !b.j.resumable})
		}()
	}
	outs.Wait()
	if errs[0] == nil && errs[1] == nil {
		for _, o := range b.out {
			if o != nil {
				_ = o.Close() // best effort: a dead connection fails every send
			}
		}
	}
	return errs
}

// exitAcknowledged tells, once the exit is sent, whether the client has
// it: its close of the channel (its acknowledgement) or the pong of a
// ping sent after the exit comes back (frames are read in order); then
// nobody will attach. If the connection ends first, the exit may be
// lost: the job waits out the grace period for an attach.
func (b *binding) exitAcknowledged() (bool, *mux.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.c.mu.Lock()
	sess := b.c.sess
	b.c.mu.Unlock()
	pinged := make(chan error, 1)
	go func() { _, err := sess.Ping(ctx); pinged <- err }()
	select {
	case <-b.ch.Context().Done():
		return errors.Is(context.Cause(b.ch.Context()), mux.ErrAbandoned), sess
	case err := <-pinged:
		// A connection that ended after the client's close was read: the
		// close is the acknowledgement (the read loop took it first).
		return err == nil || (b.ch.Context().Err() != nil && errors.Is(context.Cause(b.ch.Context()), mux.ErrAbandoned)), sess
	}
}

// pumpInput hands the client's stdin to the job, counting what the job
// took: the offset an attach resumes stdin at.
func (b *binding) pumpInput() {
	defer b.pumps.Done()
	j := b.j
	j.mu.Lock()
	eof := j.stdinEOF
	j.mu.Unlock()
	if eof {
		return // the client knows from the open_ok: it sends nothing more
	}
	if _, err := b.stdin.WriteTo(handoff{b}); err == nil {
		j.endStdin(b.stop)
	}
}

// endStdin hands the end of stdin to the job's writer, unless stop is
// closed or the command exits first.
func (j *job) endStdin(stop <-chan struct{}) {
	select {
	case j.stdinQ <- nil:
		j.mu.Lock()
		j.stdinEOF = true
		j.mu.Unlock()
	case <-stop:
	case <-j.exited:
	}
}

// handoff gives a chunk of stdin to the job's writer, or fails once the
// binding stops or the command has exited.
type handoff struct{ b *binding }

func (h handoff) Write(p []byte) (int, error) {
	j := h.b.j
	c := append([]byte(nil), p...)
	select {
	case j.stdinQ <- c:
		j.mu.Lock()
		j.stdinOff += int64(len(p))
		j.mu.Unlock()
		return len(p), nil
	case <-h.b.stop:
		return 0, errStopped
	case <-j.exited:
		return 0, io.ErrClosedPipe
	}
}
