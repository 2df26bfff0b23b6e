package rexec

import (
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

// DefaultReconnectFor is how long a session tries to reconnect after
// losing its connection, unless Reconnect.For says otherwise. The daemon
// keeps the command for its grace period (3 minutes by default).
const DefaultReconnectFor = 3 * time.Minute

// Reconnect makes a session survive a lost connection. The daemon keeps
// the command running, and its output, for its grace period; the session
// dials again (with backoff), attaches to the command, and resumes its
// stdout and stderr at the byte offsets it has written and its stdin at
// the offset the daemon has taken: every byte is delivered once, and Wait
// returns the command's own status.
type Reconnect struct {
	// Dial makes a new connection, logged in as the first one was, to the
	// same daemon (the same pinned identity).
	Dial func(ctx context.Context) (*Client, error)
	// For bounds the time spent reconnecting after each loss; 0 means
	// DefaultReconnectFor.
	For time.Duration
	// Notify, when set, is told when the connection is lost (err is why)
	// and when the session resumed (err nil).
	Notify func(err error)
	// Own, when set, dials a connection of the session's own to the same
	// daemon, never asking for a secret. A command on a shared connection
	// (a control master's) that has written MoveAfter bytes of output
	// moves there: bulk output then costs no relay. If it cannot, the
	// command stays where it is.
	Own func(ctx context.Context) (*Client, error)
	// MoveAfter is the output after which a command moves to its own
	// connection; 0 means DefaultMoveAfter.
	MoveAfter int64
}

// DefaultMoveAfter is how much output makes a command on a shared
// connection move to a connection of its own (Reconnect.Own): past it,
// the relay costs more than a connection does.
const DefaultMoveAfter = 16 << 20

// stdinLog keeps what has been read of the local stdin and not yet
// acknowledged by the daemon, so that after a reconnect the session sends
// on from the offset the command took, never a byte twice.
type stdinLog struct {
	mu    sync.Mutex
	cond  *sync.Cond
	buf   []byte // bytes [base, base+len(buf))
	base  int64
	eof   bool  // the local stdin ended
	err   error // reading it failed: no end is sent
	done  bool  // the session is over
	limit int
}

func newStdinLog(limit int) *stdinLog {
	l := &stdinLog{limit: limit}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// fill reads src into the log until it ends, waiting while the log holds
// limit bytes the daemon has not acknowledged.
func (l *stdinLog) fill(src io.Reader) {
	tmp := make([]byte, 32<<10)
	for {
		l.mu.Lock()
		for len(l.buf) >= l.limit && !l.done {
			l.cond.Wait()
		}
		done := l.done
		l.mu.Unlock()
		if done {
			return
		}
		n, err := src.Read(tmp)
		l.mu.Lock()
		l.buf = append(l.buf, tmp[:n]...)
		if err == io.EOF {
			l.eof = true
		} else if err != nil {
			l.err = err
		}
		l.cond.Broadcast()
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// ack drops what is before off: the command took it.
func (l *stdinLog) ack(off int64) {
	l.mu.Lock()
	if n := off - l.base; n > 0 && n <= int64(len(l.buf)) {
		l.buf = append(l.buf[:0], l.buf[n:]...)
		l.base = off
		l.cond.Broadcast()
	}
	l.mu.Unlock()
}

// close ends the log: senders and the filler stop.
func (l *stdinLog) close() {
	l.mu.Lock()
	l.done = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

// send sends the log from off on o until the local stdin ends (then the
// stream's end), the stream fails, or the log is closed.
func (l *stdinLog) send(o *mux.Outbound, off int64) {
	chunk := make([]byte, mux.DefaultChunk)
	for {
		l.mu.Lock()
		for off == l.base+int64(len(l.buf)) && !l.eof && l.err == nil && !l.done {
			l.cond.Wait()
		}
		if l.done || off < l.base || o.Failed() {
			l.mu.Unlock()
			return
		}
		end := l.base + int64(len(l.buf))
		if off == end {
			eof := l.eof
			l.mu.Unlock()
			if eof {
				_ = o.Close() // best effort: a lost connection resends it
			}
			return
		}
		n := copy(chunk, l.buf[off-l.base:])
		l.mu.Unlock()
		if _, err := o.Write(chunk[:n]); err != nil {
			return
		}
		off += int64(n)
	}
}

// counter counts what is written through it: the offset a stream
// resumes at. Past the session's bound for a shared connection, it asks
// the session to move (moveAfter).
type counter struct {
	w io.Writer
	n *atomic.Int64
	s *Session
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	c.s.moveAfter()
	return n, err
}

// resumed is a stream of a channel that took over from another one at
// pos: once the other's copies have ended, it writes only what lies past
// what they wrote, so that every byte is delivered once.
type resumed struct {
	w       counter
	pos     int64
	written *atomic.Int64
	before  *sync.WaitGroup // the copies of the channel taken over from
	waited  bool
}

func (r *resumed) Write(p []byte) (int, error) {
	if !r.waited {
		r.before.Wait()
		r.waited = true
	}
	n := len(p)
	if skip := r.written.Load() - r.pos; skip > 0 {
		p = p[min(skip, int64(len(p))):]
	}
	r.pos += int64(n)
	if len(p) == 0 {
		return n, nil
	}
	if _, err := r.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// Job is the daemon's id of the command once a resumable session has
// started (see Reconnect), or "".
func (s *Session) Job() string { return s.job }

// resumable reports whether s may ask the daemon to keep its command.
func (s *Session) resumable() bool {
	return s.Reconnect != nil && s.Reconnect.Dial != nil && !s.piped[1] && !s.piped[2]
}

// supervise follows a resumable session: when its connection is lost
// before the exit, it reconnects and attaches, until the exit arrives or
// reconnecting fails.
func (s *Session) supervise(ctx context.Context) {
	defer close(s.supervised)
	// A move under way binds a channel (and its copies) for Wait to wait
	// for: it settles before supervise returns.
	defer s.moved(nil)
	for {
		s.mu.Lock()
		ch, c, bound := s.ch, s.c, s.bound
		s.mu.Unlock()
		select {
		case <-s.done:
			return
		case <-ch.Done():
		}
		if s.moved(ch) {
			continue // it was taken over by the session itself: stream on from the new one
		}
		bound.Wait() // what arrived before the loss is written: the offsets are final
		select {
		case <-s.done:
			return
		default:
		}
		err := c.channelErr(ch)
		if !errors.Is(err, ErrConnectionLost) || ctx.Err() != nil || !s.resumable() || codeIs(err, frame.CodeRevoked) {
			if err == nil || !errors.Is(err, ErrConnectionLost) {
				err = fmt.Errorf("%w: %w", ErrConnectionLost, err)
			}
			s.finish(nil, err)
			return
		}
		if err := s.reattach(ctx, err); err != nil {
			s.finish(nil, err)
			return
		}
	}
}

// reattach dials again and attaches to the command, with backoff, for
// Reconnect.For at most.
func (s *Session) reattach(ctx context.Context, lost error) error {
	r := s.Reconnect
	if r.Notify != nil {
		r.Notify(lost)
	}
	limit := r.For
	if limit <= 0 {
		limit = DefaultReconnectFor
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	backoff := 50 * time.Millisecond
	last := lost
	s.mu.Lock()
	before := s.c.instance()
	s.mu.Unlock()
	for {
		if s.closing.Load() {
			return fmt.Errorf("%w: the session was closed while it reconnected", ErrConnectionLost)
		}
		c, err := r.Dial(ctx)
		if err == nil {
			err = s.attach(ctx, c, true)
			if err == nil {
				if s.closing.Load() {
					s.mu.Lock()
					ch := s.ch
					s.mu.Unlock()
					_ = ch.Send(frame.Close, nil) // closed meanwhile: the command is abandoned
				}
				if r.Notify != nil {
					r.Notify(nil)
				}
				return nil
			}
			_ = c.Close()
			var re *RemoteError
			if errors.As(err, &re) && re.Code == frame.CodeNoSuchJob && before != "" && c.instance() != "" && c.instance() != before {
				return fmt.Errorf("%w: the daemon restarted while the connection was down, which ended the command (a restart ends every command but detached jobs)", ErrConnectionLost)
			}
			if errors.As(err, &re) && (re.Code == frame.CodeNoSuchJob || re.Code == frame.CodeOffsetGone || re.Code == frame.CodeNotPermitted) {
				return fmt.Errorf("%w: the command cannot be resumed: %w", ErrConnectionLost, err)
			}
		}
		var ae *AuthError
		if errors.As(err, &ae) { // the login itself is refused now: retrying cannot help
			return fmt.Errorf("%w: the command cannot be resumed: %w", ErrConnectionLost, err)
		}
		last = err
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: no connection for %s (last: %v)", ErrConnectionLost, limit, last)
			}
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// attach opens an attach channel on c for the session's job, at the
// offsets written so far, and streams the session on it.
func (s *Session) attach(ctx context.Context, c *Client, owned bool) error {
	return s.attachAfter(ctx, c, owned, nil)
}

// attachAfter is attach taking over from a channel still streaming, whose
// copies before counts: the new one writes once they have ended, from
// where they stopped.
func (s *Session) attachAfter(ctx context.Context, c *Client, owned bool, before *sync.WaitGroup) error {
	from := [2]int64{s.written[0].Load(), s.written[1].Load()}
	m := &frame.OpenMsg{Kind: frame.KindAttach, Window: c.window,
		Attach: &frame.AttachRequest{Job: s.job, Stdout: uint64(from[0]), Stderr: uint64(from[1])}}
	s.mu.Lock()
	if s.pty != nil {
		m.Pty = &frame.PtyRequest{Cols: s.pty.Cols, Rows: s.pty.Rows}
	}
	s.mu.Unlock()
	ch, err := c.open(ctx, m, s.setup(c))
	if err != nil {
		return err
	}
	s.mu.Lock()
	if owned {
		s.owned = append(s.owned, c)
	}
	s.c = c
	s.mu.Unlock()
	ok := ch.OpenOK()
	var after *takeover
	if before != nil {
		after = &takeover{from: from, before: before}
	}
	s.bind(ch, int64(ok.StdinOffset), ok.StdinEOF, after)
	return nil
}

// takeover is where a channel that took over from another begins, and
// the other's copies.
type takeover struct {
	from   [2]int64
	before *sync.WaitGroup
}

// bind makes ch the channel the session streams on: output copied out
// (counted), stdin sent from the offset the daemon took. With after, the
// output waits for the channel taken over from, then goes on from it.
func (s *Session) bind(ch *mux.Channel, stdinFrom int64, stdinEOF bool, after *takeover) {
	s.mu.Lock()
	s.ch, s.stdin = ch, ch.Out(frame.Stdin)
	s.bound = &sync.WaitGroup{}
	stdin, bound := s.stdin, s.bound
	s.mu.Unlock()
	out := func(w io.Writer, i int) io.Writer {
		c := counter{orDiscard(w), &s.written[i], s}
		if after == nil {
			return c
		}
		return &resumed{w: c, pos: after.from[i], written: &s.written[i], before: after.before}
	}
	s.copyOut(out(s.Stdout, 0), s.stdout, 1, bound)
	if s.stderr != nil {
		s.copyOut(out(s.Stderr, 1), s.stderr, 2, bound)
	}
	if stdinEOF {
		return
	}
	stdin.OnCredit(func(granted int64) { s.stdinLog.ack(stdinFrom + granted) })
	go s.stdinLog.send(stdin, stdinFrom)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// moveAfter starts the move of a command on a shared connection to one
// of its own, once, when its output has passed Reconnect.MoveAfter.
func (s *Session) moveAfter() {
	r := s.Reconnect
	if r == nil || r.Own == nil || s.moveTried.Load() {
		return
	}
	limit := r.MoveAfter
	if limit == 0 {
		limit = DefaultMoveAfter
	}
	if limit < 0 || s.written[0].Load()+s.written[1].Load() < limit || !s.moveTried.CompareAndSwap(false, true) {
		return
	}
	go s.move()
}

// move moves the command to a connection of its own: it attaches there,
// taking the command over from the shared connection, whose channel ends
// (taken over) once what it had in flight is written; the new channel
// goes on from there. Any failure leaves the command where it was.
func (s *Session) move() {
	s.mu.Lock()
	c, ch, bound, ctx := s.c, s.ch, s.bound, s.runCtx
	stdout, stderr := s.stdout, s.stderr
	s.mu.Unlock()
	if !c.Shared() || ctx == nil || s.closing.Load() {
		return
	}
	own, err := s.Reconnect.Own(ctx)
	if err != nil {
		c.log.Debug("the command stays on the shared connection", "err", err)
		return
	}
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		_ = own.Close()
		return
	default:
	}
	if s.ch != ch || s.closing.Load() {
		s.mu.Unlock()
		_ = own.Close()
		return
	}
	moving := make(chan struct{})
	s.moving = moving
	s.movedFrom = ch
	s.mu.Unlock()
	// The shared channel grants no more credit from here: what the daemon
	// counts as delivered stops at most at what has been written, where
	// the new channel starts. What the shared one still carries is
	// written, and an exit on it (all its output before) ends the session
	// there.
	for _, in := range []*mux.Inbound{stdout, stderr} {
		if in != nil {
			in.HoldCredit()
		}
	}
	err = s.attachAfter(ctx, own, true, bound)
	if err != nil {
		_ = own.Close()
		c.log.Debug("the command stays on the shared connection", "err", err)
		// Taken back on the shared connection, from where it stopped.
		err = s.attachAfter(ctx, c, false, bound)
	}
	s.mu.Lock()
	s.moving = nil
	s.mu.Unlock()
	close(moving)
	if err != nil {
		s.finish(nil, fmt.Errorf("%w: the command could not be moved to a connection of its own, nor taken back: %w", ErrConnectionLost, err))
		s.abandon()
	}
}

// moved reports, once a move that may be under way has settled, whether
// ch is the channel the session moved away from.
func (s *Session) moved(ch *mux.Channel) bool {
	s.mu.Lock()
	moving := s.moving
	s.mu.Unlock()
	if moving != nil {
		<-moving
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.movedFrom == ch && s.ch != ch
}
