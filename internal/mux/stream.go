package mux

import (
	"fmt"
	"io"
	"sync"

	"github.com/execd-project/execd/frame"
)

// DefaultChunk is the largest data payload a stream sends in one frame.
const DefaultChunk = 128 << 10

// Outbound is the sending half of one data stream of a channel. Write blocks
// until the peer has granted credit, so the sender's memory is bounded by
// the chunk it holds, never by the peer's speed. Safe for concurrent use.
type Outbound struct {
	conn    *Conn
	channel uint32
	typ     frame.Type

	mu     sync.Mutex
	cond   *sync.Cond
	credit int64
	err    error
	eof    bool

	granted  int64       // credit granted after the start: what the peer has consumed
	onCredit func(int64) // called with granted after each grant
}

// NewOutbound returns a stream of type t on channel with initial credit.
func NewOutbound(c *Conn, channel uint32, t frame.Type, credit uint32) *Outbound {
	o := &Outbound{conn: c, channel: channel, typ: t, credit: int64(credit)}
	o.cond = sync.NewCond(&o.mu)
	c.track(o)
	return o
}

// AddCredit adds credit granted by a Window frame. Credit beyond
// frame.MaxWindow*2 outstanding is a protocol violation.
func (o *Outbound) AddCredit(n uint32) error {
	o.mu.Lock()
	if o.credit+int64(n) > 2*frame.MaxWindow {
		o.mu.Unlock()
		return fmt.Errorf("%w: credit overflow on %s", ErrFlowControl, o.typ)
	}
	o.credit += int64(n)
	o.granted += int64(n)
	granted, f := o.granted, o.onCredit
	o.cond.Broadcast()
	o.mu.Unlock()
	if f != nil {
		f(granted)
	}
	return nil
}

// OnCredit makes f see, after each grant, the credit the peer has granted
// since the stream began: how many bytes it has consumed, as far as it
// has said. It is the acknowledgement a resumable stream trims its
// replay buffer by. f runs in the read loop and must not block; set it
// before the peer can grant anything.
func (o *Outbound) OnCredit(f func(granted int64)) {
	o.mu.Lock()
	o.onCredit = f
	o.mu.Unlock()
}

// Write sends p as data frames, waiting for credit as needed.
func (o *Outbound) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c, err := o.take(len(p))
		if err != nil {
			return n, err
		}
		if err := o.conn.Send(o.typ, 0, o.channel, p[:c]); err != nil {
			o.Abort(err)
			return n, err
		}
		n += int(c)
		p = p[c:]
	}
	return n, nil
}

// ReadFrom sends everything r produces until io.EOF, reading into a buffer
// with room for the frame header in front of the data so that nothing is
// copied on the way to the connection. It returns nil at io.EOF, and the
// first read or send error otherwise.
func (o *Outbound) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, frame.HeaderSize+DefaultChunk)
	var total int64
	for {
		n, rerr := r.Read(buf[frame.HeaderSize:])
		data := buf[frame.HeaderSize : frame.HeaderSize+n]
		off := frame.HeaderSize
		for len(data) > 0 {
			c, err := o.take(len(data))
			if err != nil {
				return total, err
			}
			// The bytes before this piece were sent already: its header goes there.
			frame.PutHeader(buf[off-frame.HeaderSize:], frame.Header{Version: frame.Version, Type: o.typ, Channel: o.channel, Length: uint32(c)})
			if err := o.conn.SendPrepared(buf[off-frame.HeaderSize : off+c]); err != nil {
				o.Abort(err)
				return total, err
			}
			total += int64(c)
			off += c
			data = data[c:]
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// take waits for credit and reserves up to n bytes of it.
func (o *Outbound) take(n int) (int, error) {
	peerMax := int64(o.conn.PeerMax()) // before o.mu: never hold it while waiting for the connection's lock
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.credit == 0 && o.err == nil && !o.eof {
		o.cond.Wait()
	}
	if o.err != nil {
		return 0, o.err
	}
	if o.eof {
		return 0, io.ErrClosedPipe
	}
	c := min(int64(n), o.credit, int64(DefaultChunk), peerMax)
	o.credit -= c
	return int(c), nil
}

// Close ends the stream with an EOF frame (stdin half-close included). It
// is idempotent, and a no-op after Abort.
func (o *Outbound) Close() error {
	o.mu.Lock()
	if o.eof || o.err != nil {
		o.mu.Unlock()
		return nil
	}
	o.eof = true
	o.cond.Broadcast()
	o.mu.Unlock()
	o.conn.untrack(o)
	return o.conn.Send(o.typ, frame.FlagEOF, o.channel, nil)
}

// Failed reports whether the stream was aborted or its connection failed.
func (o *Outbound) Failed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err != nil
}

// Abort fails pending and future writes with err, sending nothing.
func (o *Outbound) Abort(err error) {
	o.fail(err)
	o.conn.untrack(o)
}

func (o *Outbound) fail(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.cond.Broadcast()
	o.mu.Unlock()
}

// connLost fails the stream when its connection ended.
func (o *Outbound) connLost(err error) { o.fail(fmt.Errorf("%w: %w", ErrLost, err)) }

// chunkPool recycles the buffers data payloads are read into.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, DefaultChunk); return &b }}

// GetChunk returns a buffer of n bytes for a payload that will be handed to
// Inbound.PushOwned; pooled when n fits the usual chunk size.
func GetChunk(n int) []byte {
	if n > DefaultChunk {
		return make([]byte, n)
	}
	return (*chunkPool.Get().(*[]byte))[:n]
}

// PutChunk gives back a chunk from GetChunk (or owned through a relay)
// once nothing refers to it.
func PutChunk(b []byte) {
	if cap(b) == DefaultChunk {
		b = b[:cap(b)]
		chunkPool.Put(&b)
	}
}

// Inbound is the receiving half of one data stream. The read loop pushes
// what arrives; a consumer reads it, and credit is returned to the peer
// once half the window has been consumed. Memory is bounded by the window.
// Safe for one pusher and concurrent readers.
type Inbound struct {
	conn    *Conn
	channel uint32
	typ     frame.Type
	window  uint32

	mu          sync.Mutex
	cond        *sync.Cond
	chunks      [][]byte // queued payloads; the first may be partly read
	buffered    int
	outstanding int64 // credit the peer still holds
	consumed    uint32
	eof         bool  // reads end with io.EOF once the buffer is drained
	peerEOF     bool  // the peer sent its EOF: more from it is a violation
	ended       bool  // this side ended the stream (SetEOF): later data is dropped
	err         error // reads fail with it at once
	lost        error // reads fail with it once the buffered data is read
	stopped     bool  // Interrupt: later data is dropped, no credit granted
	held        bool  // HoldCredit: data within the credit granted still arrives
}

// NewInbound returns a stream of type t on channel whose peer starts with
// window bytes of credit.
func NewInbound(c *Conn, channel uint32, t frame.Type, window uint32) *Inbound {
	in := &Inbound{conn: c, channel: channel, typ: t, window: window, outstanding: int64(window)}
	in.cond = sync.NewCond(&in.mu)
	c.track(in)
	return in
}

// Window is the credit the peer was granted at the start.
func (in *Inbound) Window() uint32 { return in.window }

// Push adds a copy of received data; eof marks the end of the stream. It
// never blocks. Data beyond the credit granted, or after the end, is an
// error that the read loop treats as fatal for the connection.
func (in *Inbound) Push(p []byte, eof bool) error {
	var owned []byte
	if len(p) > 0 {
		owned = GetChunk(len(p))
		copy(owned, p)
	}
	return in.PushOwned(owned, eof)
}

// PushOwned is Push for a buffer the stream may keep (from GetChunk).
func (in *Inbound) PushOwned(p []byte, eof bool) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.peerEOF && (len(p) > 0 || eof) {
		return fmt.Errorf("%w: %s on channel %d", ErrAfterEOF, in.typ, in.channel)
	}
	if int64(len(p)) > in.outstanding {
		return fmt.Errorf("%w: %d bytes of %s with %d credit", ErrFlowControl, len(p), in.typ, in.outstanding)
	}
	in.outstanding -= int64(len(p))
	switch {
	case len(p) == 0:
	case in.err == nil && !in.stopped && !in.ended:
		in.chunks = append(in.chunks, p)
		in.buffered += len(p)
	default:
		PutChunk(p) // this side is done with the stream: what crossed its end is dropped
	}
	if eof {
		in.peerEOF, in.eof = true, true
		defer in.conn.untrack(in)
	}
	in.cond.Broadcast()
	return nil
}

// next waits for data and removes up to max bytes from the front of the
// queue (all of the first chunk when max is 0). whole reports that the
// returned slice is a complete chunk the caller now owns.
func (in *Inbound) next(max int) (p []byte, whole bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for in.buffered == 0 && !in.eof && in.err == nil && in.lost == nil {
		in.cond.Wait()
	}
	if in.err != nil {
		return nil, false, in.err
	}
	if in.buffered == 0 {
		if in.eof {
			return nil, false, io.EOF
		}
		return nil, false, in.lost
	}
	head := in.chunks[0]
	if max == 0 || max >= len(head) {
		in.chunks[0] = nil
		in.chunks = in.chunks[1:]
		in.buffered -= len(head)
		return head, true, nil
	}
	in.chunks[0] = head[max:]
	in.buffered -= max
	return head[:max], false, nil
}

// consumed returns credit for n bytes the consumer has taken.
func (in *Inbound) consume(n int) {
	in.mu.Lock()
	var grant uint32
	if !in.eof && in.err == nil && !in.stopped && !in.held {
		in.consumed += uint32(n)
		if in.consumed >= in.window/2 {
			grant = in.consumed
			in.outstanding += int64(grant)
			in.consumed = 0
		}
	}
	in.mu.Unlock()
	if grant > 0 {
		// A failed send means the connection is gone; the read loop reports it.
		_ = in.conn.SendJSON(frame.Window, in.channel, &frame.WindowMsg{Stream: in.typ, Credit: grant})
	}
}

// Read reads buffered data, blocking until some arrives, the stream ends
// (io.EOF) or it is closed with an error.
func (in *Inbound) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, whole, err := in.next(len(p))
	if err != nil {
		return 0, err
	}
	n := copy(p, b)
	if whole {
		PutChunk(b)
	}
	in.consume(n)
	return n, nil
}

// WriteTo writes the stream to w until it ends, handing over whole
// payloads without copying them; io.Copy uses it. It returns nil at the
// end of the stream.
func (in *Inbound) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		b, _, err := in.next(0)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		m, werr := w.Write(b)
		total += int64(m)
		PutChunk(b)
		in.consume(len(b))
		if werr != nil {
			return total, werr
		}
	}
}

// CloseWithError makes reads fail with err at once (buffered data is
// dropped) and later pushes be discarded.
func (in *Inbound) CloseWithError(err error) {
	in.mu.Lock()
	if in.err == nil {
		in.err = err
		for _, c := range in.chunks {
			PutChunk(c)
		}
		in.chunks, in.buffered = nil, 0
	}
	in.cond.Broadcast()
	in.mu.Unlock()
	in.conn.untrack(in)
}

// HoldCredit grants the peer no more credit: it may still send what it
// was granted, which arrives and is read as before. What the peer counts
// as consumed stops here (a session moving its command elsewhere).
func (in *Inbound) HoldCredit() {
	in.mu.Lock()
	in.held = true
	in.mu.Unlock()
}

// Interrupt ends the stream early without losing what has arrived:
// readers drain the buffered data, then get err; data that arrives later
// is dropped and no more credit is granted. A put uses it when its
// connection or the daemon ends, so that every byte that reached the
// daemon is kept for a resume.
func (in *Inbound) Interrupt(err error) {
	in.mu.Lock()
	if in.lost == nil {
		in.lost = err
	}
	in.stopped = true
	in.cond.Broadcast()
	in.mu.Unlock()
	in.conn.untrack(in)
}

// SetEOF ends the stream from this side, as if an EOF frame had arrived:
// readers drain what is buffered, then get io.EOF; data the peer sent
// before it learnt of the end is dropped, not taken for a violation.
func (in *Inbound) SetEOF() {
	in.mu.Lock()
	in.eof, in.ended = true, true
	in.cond.Broadcast()
	in.mu.Unlock()
	in.conn.untrack(in)
}

// connLost ends the stream when its connection ended before its EOF:
// readers drain what is buffered, then get an error wrapping ErrLost.
func (in *Inbound) connLost(err error) {
	in.mu.Lock()
	if in.lost == nil {
		in.lost = fmt.Errorf("%w: %w", ErrLost, err)
	}
	in.cond.Broadcast()
	in.mu.Unlock()
}

// Buffered returns the number of bytes waiting to be read.
func (in *Inbound) Buffered() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.buffered
}
