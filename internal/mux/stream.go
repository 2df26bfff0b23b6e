package mux

import (
	"bytes"
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
}

// NewOutbound returns a stream of type t on channel with initial credit.
func NewOutbound(c *Conn, channel uint32, t frame.Type, credit uint32) *Outbound {
	o := &Outbound{conn: c, channel: channel, typ: t, credit: int64(credit)}
	o.cond = sync.NewCond(&o.mu)
	return o
}

// AddCredit adds credit granted by a Window frame. Credit beyond
// frame.MaxWindow*2 outstanding is a protocol violation.
func (o *Outbound) AddCredit(n uint32) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.credit+int64(n) > 2*frame.MaxWindow {
		return fmt.Errorf("%w: credit overflow on %s", ErrFlowControl, o.typ)
	}
	o.credit += int64(n)
	o.cond.Broadcast()
	return nil
}

// Write sends p as data frames, waiting for credit as needed.
func (o *Outbound) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		o.mu.Lock()
		for o.credit == 0 && o.err == nil && !o.eof {
			o.cond.Wait()
		}
		if o.err != nil || o.eof {
			err := o.err
			if err == nil {
				err = io.ErrClosedPipe
			}
			o.mu.Unlock()
			return n, err
		}
		c := min(int64(len(p)), o.credit, int64(DefaultChunk), int64(o.conn.PeerMax()))
		o.credit -= c
		o.mu.Unlock()
		if err := o.conn.Send(o.typ, 0, o.channel, p[:c]); err != nil {
			o.Abort(err)
			return n, err
		}
		n += int(c)
		p = p[c:]
	}
	return n, nil
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
	return o.conn.Send(o.typ, frame.FlagEOF, o.channel, nil)
}

// Abort fails pending and future writes with err, sending nothing.
func (o *Outbound) Abort(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.cond.Broadcast()
	o.mu.Unlock()
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
	buf         bytes.Buffer
	outstanding int64 // credit the peer still holds
	consumed    uint32
	eof         bool
	err         error
}

// NewInbound returns a stream of type t on channel whose peer starts with
// window bytes of credit.
func NewInbound(c *Conn, channel uint32, t frame.Type, window uint32) *Inbound {
	in := &Inbound{conn: c, channel: channel, typ: t, window: window, outstanding: int64(window)}
	in.cond = sync.NewCond(&in.mu)
	return in
}

// Push adds received data; eof marks the end of the stream. It never
// blocks. Data beyond the credit granted, or after the end, is an error
// that the read loop treats as fatal for the connection.
func (in *Inbound) Push(p []byte, eof bool) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.eof && (len(p) > 0 || eof) {
		return fmt.Errorf("%w: %s on channel %d", ErrAfterEOF, in.typ, in.channel)
	}
	if int64(len(p)) > in.outstanding {
		return fmt.Errorf("%w: %d bytes of %s with %d credit", ErrFlowControl, len(p), in.typ, in.outstanding)
	}
	in.outstanding -= int64(len(p))
	if in.err == nil {
		in.buf.Write(p)
	}
	if eof {
		in.eof = true
	}
	in.cond.Broadcast()
	return nil
}

// Read reads buffered data, blocking until some arrives, the stream ends
// (io.EOF) or it is closed with an error.
func (in *Inbound) Read(p []byte) (int, error) {
	in.mu.Lock()
	for in.buf.Len() == 0 && !in.eof && in.err == nil {
		in.cond.Wait()
	}
	if in.err != nil {
		err := in.err
		in.mu.Unlock()
		return 0, err
	}
	if in.buf.Len() == 0 {
		in.mu.Unlock()
		return 0, io.EOF
	}
	n, _ := in.buf.Read(p)
	var grant uint32
	if !in.eof {
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
	return n, nil
}

// WriteTo writes the stream to w until it ends, in large pieces; io.Copy
// uses it. It returns nil at the end of the stream.
func (in *Inbound) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, DefaultChunk*2)
	var total int64
	for {
		n, err := in.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// CloseWithError makes reads fail with err at once (buffered data is
// dropped) and later pushes be discarded.
func (in *Inbound) CloseWithError(err error) {
	in.mu.Lock()
	if in.err == nil {
		in.err = err
		in.buf = bytes.Buffer{}
	}
	in.cond.Broadcast()
	in.mu.Unlock()
}

// SetEOF ends the stream as if an EOF frame had arrived: readers drain what
// is buffered, then get io.EOF.
func (in *Inbound) SetEOF() {
	in.mu.Lock()
	in.eof = true
	in.cond.Broadcast()
	in.mu.Unlock()
}

// Buffered returns the number of bytes waiting to be read.
func (in *Inbound) Buffered() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.buf.Len()
}
