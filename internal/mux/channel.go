package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/execd-project/execd/frame"
)

// State is where a channel is in its life. It moves only forward, and
// only in Channel.end (and confirm, from Opening to Open).
type State uint8

// The states of a channel.
const (
	// Opening: the open was sent (or received) and not yet answered.
	Opening State = iota
	// Open: the open was confirmed with open_ok.
	Open
	// Refused: the open was answered with an error; the channel never ran.
	Refused
	// Finished: the channel ended normally (exit, done, or closed by its owner).
	Finished
	// Failed: the peer ended the channel with an error, or abandoned it (close).
	Failed
	// Lost: the connection ended before the channel did.
	Lost
)

var stateNames = [...]string{"opening", "open", "refused", "finished", "failed", "lost"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ended reports whether the state is final.
func (s State) ended() bool { return s >= Refused }

// Errors of channels.
var (
	// ErrAbandoned ends a channel whose peer sent close.
	ErrAbandoned = errors.New("mux: channel closed by the peer")
	// ErrChannelClosed ends a channel its own side closed.
	ErrChannelClosed = errors.New("mux: channel closed")
	// ErrGoAway refuses an open after the peer said it is going away.
	ErrGoAway = errors.New("mux: the peer accepts no new channels")
)

// ControlFunc takes the payload of one control frame of a channel (one
// of its kind's own: exit, done, signal, resize, request, reply) from the
// read loop; the payload is valid only during the call. An error is a
// protocol violation that ends the connection.
type ControlFunc func(ch *Channel, payload []byte) error

// On returns a ControlFunc that decodes the payload into a new M (and
// checks it, as frame.Unmarshal does) before passing it to f.
func On[M any, PM interface {
	*M
	frame.Message
}](f func(ch *Channel, m PM) error) ControlFunc {
	return func(ch *Channel, payload []byte) error {
		m := PM(new(M))
		if err := frame.Unmarshal(payload, m); err != nil {
			return err
		}
		return f(ch, m)
	}
}

// Channel is one channel of a Session: its streams under flow control,
// its control frames, and one end-of-life state machine. Safe for
// concurrent use.
type Channel struct {
	s       *Session
	id      uint32
	kind    string
	open    *frame.OpenMsg // what the opener asked for
	control map[frame.Type]ControlFunc
	relay   RelayFunc // set by OpenRelay: every frame goes there

	ctx    context.Context // ends with the channel
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	state  State
	err    error // why it ended, nil for Finished
	in     map[frame.Type]*Inbound
	out    map[frame.Type]*Outbound
	ok     *frame.OpenOKMsg
	opened chan struct{} // closed once confirmed or ended
	done   chan struct{} // closed once ended
}

func newChannel(s *Session, id uint32, m *frame.OpenMsg) *Channel {
	ctx, cancel := context.WithCancelCause(s.ctx)
	return &Channel{
		s: s, id: id, kind: m.Kind, open: m, ctx: ctx, cancel: cancel,
		control: map[frame.Type]ControlFunc{},
		in:      map[frame.Type]*Inbound{}, out: map[frame.Type]*Outbound{},
		opened: make(chan struct{}), done: make(chan struct{}),
	}
}

// ID is the channel's id on the wire.
func (ch *Channel) ID() uint32 { return ch.id }

// Kind is the channel's kind (frame.KindExec, ...).
func (ch *Channel) Kind() string { return ch.kind }

// OpenMsg is the open that created the channel.
func (ch *Channel) OpenMsg() *frame.OpenMsg { return ch.open }

// OpenOK is the open_ok that confirmed the channel (nil before).
func (ch *Channel) OpenOK() *frame.OpenOKMsg {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.ok
}

// Context is cancelled when the channel ends, with the cause: ErrAbandoned
// when the peer closed it, a *frame.RemoteError when it reported an error, an
// error wrapping ErrLost when the connection ended.
func (ch *Channel) Context() context.Context { return ch.ctx }

// Done is closed when the channel has ended.
func (ch *Channel) Done() <-chan struct{} { return ch.done }

// State returns the channel's state and, once it ended other than
// Finished, why.
func (ch *Channel) State() (State, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.state, ch.err
}

// Inbound adds a stream of type t this side receives, granting the peer
// window bytes of credit. Add streams before the open leaves (opener) or
// before Accept (acceptor), so that no data arrives without a home.
func (ch *Channel) Inbound(t frame.Type, window uint32) *Inbound {
	in := NewInbound(ch.s.conn, ch.id, t, window)
	ch.mu.Lock()
	ch.in[t] = in
	ch.mu.Unlock()
	return in
}

// Outbound adds a stream of type t this side sends, with credit granted
// by the peer (in its open or open_ok).
func (ch *Channel) Outbound(t frame.Type, credit uint32) *Outbound {
	o := NewOutbound(ch.s.conn, ch.id, t, credit)
	ch.mu.Lock()
	ch.out[t] = o
	ch.mu.Unlock()
	return o
}

// Send sends a control frame of this channel with payload as it is.
func (ch *Channel) Send(t frame.Type, payload []byte) error {
	return ch.s.conn.Send(t, 0, ch.id, payload)
}

// SendJSON sends a control message of this channel.
func (ch *Channel) SendJSON(t frame.Type, msg any) error {
	return ch.s.conn.SendJSON(t, ch.id, msg)
}

// Fits reports whether a payload of n bytes is within the peer's limit.
func (ch *Channel) Fits(n int) bool { return ch.s.conn.Fits(n) }

// PeerMax is the largest payload the peer accepts.
func (ch *Channel) PeerMax() uint32 { return ch.s.conn.PeerMax() }

// Fail sends an error for the channel and ends it: the acceptor's way to
// refuse an open or to end a channel that failed.
func (ch *Channel) Fail(code frame.Code, msg string) {
	_ = ch.s.conn.SendError(ch.id, code, msg) // a failure closes the connection
	ch.mu.Lock()
	st := ch.state
	ch.mu.Unlock()
	if st == Opening {
		st = Refused
	} else {
		st = Failed
	}
	ch.end(st, &frame.RemoteError{Code: code, Message: msg}, false)
}

// Finish ends the channel normally: its owner has sent the channel's last
// frame (exit, done) or received it. Buffered input is still readable.
func (ch *Channel) Finish() { ch.end(Finished, nil, false) }

// Close abandons the channel: a close frame tells the peer, and local
// readers and writers fail with err (ErrChannelClosed when nil).
func (ch *Channel) Close(err error) {
	if err == nil {
		err = ErrChannelClosed
	}
	ch.mu.Lock()
	ended := ch.state.ended()
	ch.mu.Unlock()
	if !ended {
		_ = ch.s.conn.Send(frame.Close, 0, ch.id, nil) // best effort: a dead connection ends it anyway
	}
	ch.end(Failed, err, true)
}

// confirm moves an opening channel to Open.
func (ch *Channel) confirm(ok *frame.OpenOKMsg) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state != Opening {
		return false
	}
	ch.state, ch.ok = Open, ok
	for t, o := range ch.out {
		if o == nil { // declared by Sends: the open_ok grants its credit
			ch.out[t] = NewOutbound(ch.s.conn, ch.id, t, ok.Window)
		}
	}
	close(ch.opened)
	return true
}

// end moves the channel to a final state once, forgets it in the session,
// and wakes every reader, writer and waiter (Done is closed last). Readers drain what arrived
// and then see io.EOF (Finished) or err; with drop (this side abandoned
// the channel) they fail at once. Writers fail with err, or
// io.ErrClosedPipe after a Finished end. For Lost, err is the
// connection's end, which the channel's error wraps in ErrLost.
func (ch *Channel) end(st State, err error, drop bool) {
	ch.mu.Lock()
	if ch.state.ended() {
		ch.mu.Unlock()
		return
	}
	cause := err
	if st == Lost {
		err = fmt.Errorf("%w: %w", ErrLost, cause)
	}
	prev := ch.state
	ch.state, ch.err = st, err
	if prev == Opening {
		close(ch.opened)
	}
	ins := make([]*Inbound, 0, len(ch.in))
	for _, in := range ch.in {
		ins = append(ins, in)
	}
	outs := make([]*Outbound, 0, len(ch.out))
	for _, o := range ch.out {
		outs = append(outs, o)
	}
	ch.mu.Unlock()
	// Out of the table first: frames that crossed the end on the wire are
	// then dropped as stale. The context ends before the streams do, so
	// that whoever sees a stream fail finds the channel's end in it.
	ch.s.forget(ch)
	if err == nil {
		ch.cancel(ErrChannelClosed)
	} else {
		ch.cancel(err)
	}
	for _, in := range ins {
		switch {
		case st == Finished:
			in.SetEOF()
		case st == Lost:
			in.connLost(cause)
			ch.s.conn.untrack(in)
		case drop:
			in.CloseWithError(err)
		default:
			in.Interrupt(err)
		}
	}
	// Writers fail now, except after the peer's close: then the owner,
	// told by the context, stops its writers in its own order (a command
	// is signalled as its output is cut, not after).
	werr := err
	if werr == nil {
		werr = io.ErrClosedPipe
	}
	for _, o := range outs {
		if o != nil && !errors.Is(err, ErrAbandoned) {
			o.Abort(werr)
		}
	}
	close(ch.done) // last: whoever waits on it sees the whole end
}

// route takes one frame of this channel from the read loop.
func (ch *Channel) route(f frame.Frame) error {
	if ch.relay != nil {
		return ch.relay(f)
	}
	switch f.Type {
	case frame.OpenOK:
		var m frame.OpenOKMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		if !ch.confirm(&m) {
			return fmt.Errorf("%w: second open_ok on channel %d", frame.ErrInvalid, ch.id)
		}
		return nil
	case frame.Error:
		var m frame.ErrorMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		st := Failed
		if s, _ := ch.State(); s == Opening {
			st = Refused
		}
		ch.end(st, &frame.RemoteError{Code: m.Code, Message: m.Message}, false)
		return nil
	case frame.Close:
		ch.end(Failed, ErrAbandoned, false)
		return nil
	case frame.Window:
		var m frame.WindowMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		ch.mu.Lock()
		o := ch.out[m.Stream]
		ch.mu.Unlock()
		if o == nil {
			return fmt.Errorf("%w: window for %s, which this side does not send on %s channel %d", frame.ErrInvalid, m.Stream, ch.kind, ch.id)
		}
		return o.AddCredit(m.Credit)
	}
	if f.Type.IsData() {
		in := ch.inbound(f.Type)
		if in == nil {
			return ch.unexpected(f.Type)
		}
		return in.Push(f.Payload, f.Flags&frame.FlagEOF != 0)
	}
	ch.mu.Lock()
	handle := ch.control[f.Type]
	ch.mu.Unlock()
	if handle == nil {
		return ch.unexpected(f.Type)
	}
	return handle(ch, f.Payload)
}

func (ch *Channel) inbound(t frame.Type) *Inbound {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.in[t]
}

// pushData takes a data payload read into a buffer the stream keeps.
func (ch *Channel) pushData(h frame.Header, chunk []byte) error {
	in := ch.inbound(h.Type)
	if in == nil {
		PutChunk(chunk)
		return ch.unexpected(h.Type)
	}
	return in.PushOwned(chunk, h.Flags&frame.FlagEOF != 0)
}

func (ch *Channel) unexpected(t frame.Type) error {
	return &Violation{Code: frame.CodeUnexpected, Err: fmt.Errorf("%s frame on %s channel %d", t, ch.kind, ch.id)}
}

// Violation is a breach of the protocol by the peer that ends the
// connection with an error frame of Code.
type Violation struct {
	Code frame.Code
	Err  error
}

func (v *Violation) Error() string { return v.Err.Error() }
func (v *Violation) Unwrap() error { return v.Err }

// Violationf returns a Violation with a formatted message.
func Violationf(code frame.Code, format string, args ...any) error {
	return &Violation{Code: code, Err: fmt.Errorf(format, args...)}
}

// violationCode is the code an error frame for err carries.
func violationCode(err error) frame.Code {
	var v *Violation
	switch {
	case errors.As(err, &v):
		return v.Code
	case errors.Is(err, ErrFlowControl), errors.Is(err, ErrAfterEOF):
		return frame.CodeFlowControl
	}
	return frame.CodeOf(err)
}

// NewChannel is an open the peer sent, waiting for its handler to Accept
// or Reject it. The handler is called on the read loop: it may decide at
// once, or hand the NewChannel to a goroutine that decides later (after a
// disk access, say). Until then the channel exists: a close from the peer
// cancels its Context.
type NewChannel struct{ *Channel }

// Accept confirms the channel with ok (its Window is the credit of the
// stream the peer sends, if any).
func (nc NewChannel) Accept(ok *frame.OpenOKMsg) (*Channel, error) {
	if !nc.confirm(ok) {
		_, err := nc.State()
		return nil, err
	}
	if err := nc.s.conn.SendJSON(frame.OpenOK, nc.id, ok); err != nil {
		nc.end(Lost, err, false)
		return nil, err
	}
	return nc.Channel, nil
}

// Reject refuses the open with an error the peer sees.
func (nc NewChannel) Reject(code frame.Code, msg string) { nc.Fail(code, msg) }

// Handler takes the opens of one channel kind.
type Handler func(NewChannel)

// waitOpen waits until the channel is confirmed or ends, or ctx ends.
func (ch *Channel) waitOpen(ctx context.Context) error {
	select {
	case <-ch.opened:
	case <-ctx.Done():
		ch.Close(ctx.Err())
		return ctx.Err()
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.ok != nil {
		// Confirmed, whatever came after (a reset right behind the
		// open_ok): the open succeeded, and the channel's end is for its
		// owner to find in Wait.
		return nil
	}
	return ch.err
}

// Wait waits for the channel to end and returns why: nil when it
// finished, the error otherwise.
func (ch *Channel) Wait() error {
	<-ch.done
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err
}

// ReaderOf returns the stream of type t this side receives, as an
// io.Reader, or nil.
func (ch *Channel) ReaderOf(t frame.Type) io.Reader {
	if in := ch.inbound(t); in != nil {
		return in
	}
	return nil
}
