// Package mux is the connection machinery shared by execd and rexec: one
// locked frame writer per connection, ping/pong, and flow-controlled
// streams (Outbound for sending with credit, Inbound for receiving within
// a window). Channel tables and what a channel means stay with each side.
package mux

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/execd-project/execd/frame"
)

// Errors of the connection.
var (
	// ErrClosed is returned by sends on a connection that has been closed.
	ErrClosed = errors.New("mux: connection closed")
	// ErrFlowControl is returned when the peer sends past its credit.
	ErrFlowControl = errors.New("mux: peer sent more than its window allows")
	// ErrAfterEOF is returned when data arrives on a stream that ended.
	ErrAfterEOF = errors.New("mux: data after end of stream")
	// ErrLost is wrapped by reads and writes of a stream whose connection
	// ended before the stream did.
	ErrLost = errors.New("mux: connection lost")
)

// DefaultWriteTimeout bounds one frame write: a peer that stops reading the
// socket altogether for this long is gone.
const DefaultWriteTimeout = 60 * time.Second

// Conn is one framed connection. ReadFrame belongs to a single read loop;
// every Send method is safe for concurrent use.
type Conn struct {
	nc           net.Conn
	r            *frame.Reader
	writeTimeout time.Duration

	wmu   sync.Mutex
	w     *frame.Writer
	flush func() error // sends what a buffered layer below holds, after each frame

	closeOnce sync.Once
	done      chan struct{}
	errMu     sync.Mutex
	err       error

	pingMu  sync.Mutex
	pingSeq uint64
	pings   map[uint64]chan struct{}

	// streams are the open streams, failed together when the connection
	// ends: no reader or writer waits for ever on a dead connection.
	streamMu sync.Mutex
	streams  map[stream]struct{}

	trace frame.Tracer // nil: no tracing
}

// SetTracer makes t see every frame sent and received from now on; call
// it before the connection is used.
func (c *Conn) SetTracer(t frame.Tracer) { c.trace = t }

// NewConn wraps nc. maxRecv is this side's payload limit (0 for the default);
// writeTimeout bounds each frame write (0 for DefaultWriteTimeout). When
// nc is a TLS connection over a BufConn, pass that BufConn as below so
// that each frame is flushed; otherwise below is nil.
func NewConn(nc net.Conn, below *BufConn, maxRecv uint32, writeTimeout time.Duration) *Conn {
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	var r io.Reader = nc
	flush := func() error { return nil }
	if below != nil {
		flush = below.Flush
	} else {
		r = bufio.NewReaderSize(nc, 64<<10)
	}
	return &Conn{
		nc:           nc,
		flush:        flush,
		r:            frame.NewReader(r, maxRecv),
		w:            frame.NewWriter(nc, frame.MinMaxPayload),
		writeTimeout: writeTimeout,
		done:         make(chan struct{}),
		pings:        make(map[uint64]chan struct{}),
		streams:      make(map[stream]struct{}),
	}
}

// stream is an Inbound or Outbound, told when its connection ends.
type stream interface{ connLost(err error) }

// track registers st to be failed when the connection ends; when it has
// ended already, st fails at once.
func (c *Conn) track(st stream) {
	c.streamMu.Lock()
	if c.streams != nil {
		c.streams[st] = struct{}{}
		c.streamMu.Unlock()
		return
	}
	c.streamMu.Unlock()
	st.connLost(c.Err())
}

// untrack forgets a stream that has ended.
func (c *Conn) untrack(st stream) {
	c.streamMu.Lock()
	delete(c.streams, st)
	c.streamMu.Unlock()
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// MaxRecv is this side's payload limit, announced in its hello.
func (c *Conn) MaxRecv() uint32 { return c.r.Max() }

// SetPeerMax sets the peer's payload limit from its hello.
func (c *Conn) SetPeerMax(n uint32) {
	c.wmu.Lock()
	c.w.SetMax(n)
	c.wmu.Unlock()
}

// PeerMax is the largest payload the peer accepts.
func (c *Conn) PeerMax() uint32 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Max()
}

// ReadFrame reads the next frame; only the connection's read loop calls it.
func (c *Conn) ReadFrame() (frame.Frame, error) {
	f, err := c.r.ReadFrame()
	if err == nil && c.trace != nil {
		c.trace.TraceFrame(false, f.Header, f.Payload)
	}
	return f, err
}

// Send writes one frame under the connection's write lock.
func (c *Conn) Send(t frame.Type, flags frame.Flags, channel uint32, payload []byte) error {
	return c.locked(func() error {
		err := c.w.WriteFrame(t, flags, channel, payload)
		if err == nil && c.trace != nil {
			c.trace.TraceFrame(true, frame.Header{Version: frame.Version, Type: t, Flags: flags, Channel: channel, Length: uint32(len(payload))}, payload)
		}
		return err
	})
}

// locked runs one frame write under the write lock with the write
// deadline set, flushes it, and closes the connection if it failed.
func (c *Conn) locked(write func() error) error {
	c.wmu.Lock()
	select {
	case <-c.done:
		c.wmu.Unlock()
		return c.Err()
	default:
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout)) // best effort: a failed set shows up in Write
	err := write()
	if err == nil {
		err = c.flush()
	}
	c.wmu.Unlock()
	if err != nil && !errors.Is(err, frame.ErrTooLarge) {
		// After the unlock: closing fails every stream, whose locks a
		// writer waiting here may hold.
		c.CloseWithError(fmt.Errorf("write frame: %w", err))
	}
	return err
}

// SendFrames sends frames in order, in one gathered write where the
// connection allows it, their payloads not copied.
func (c *Conn) SendFrames(fs []frame.Frame) error {
	return c.locked(func() error {
		heads := make([]byte, 0, len(fs)*frame.HeaderSize)
		bufs := make(net.Buffers, 0, 2*len(fs))
		for _, f := range fs {
			if uint64(len(f.Payload)) > uint64(c.w.Max()) {
				return fmt.Errorf("%w: %d bytes, limit %d", frame.ErrTooLarge, len(f.Payload), c.w.Max())
			}
			at := len(heads)
			heads = frame.AppendHeader(heads, frame.Header{Version: frame.Version, Type: f.Type, Flags: f.Flags, Channel: f.Channel, Length: uint32(len(f.Payload))})
			bufs = append(bufs, heads[at:len(heads):len(heads)])
			if len(f.Payload) > 0 {
				bufs = append(bufs, f.Payload)
			}
		}
		if _, err := bufs.WriteTo(c.nc); err != nil {
			return err
		}
		if c.trace != nil {
			for _, f := range fs {
				c.trace.TraceFrame(true, frame.Header{Version: frame.Version, Type: f.Type, Flags: f.Flags, Channel: f.Channel, Length: uint32(len(f.Payload))}, f.Payload)
			}
		}
		return nil
	})
}

// SendPrepared sends one frame whose header the caller has put in
// b[:frame.HeaderSize] (frame.PutHeader) with its payload after it, so the
// payload is not copied.
func (c *Conn) SendPrepared(b []byte) error {
	return c.locked(func() error {
		if n := len(b) - frame.HeaderSize; n < 0 || uint64(n) > uint64(c.w.Max()) {
			return fmt.Errorf("%w: %d bytes, limit %d", frame.ErrTooLarge, n, c.w.Max())
		}
		_, err := c.nc.Write(b)
		if err == nil && c.trace != nil {
			if h, perr := frame.ParseHeader([frame.HeaderSize]byte(b)); perr == nil {
				c.trace.TraceFrame(true, h, b[frame.HeaderSize:])
			}
		}
		return err
	})
}

// ReadHeader and ReadPayload split ReadFrame for a read loop that reads
// data payloads into memory it hands on; see frame.Reader.
func (c *Conn) ReadHeader() (frame.Header, error) { return c.r.ReadHeader() }

// ReadPayload reads the payload of the header last read; see frame.Reader.
func (c *Conn) ReadPayload(p []byte) error { return c.r.ReadPayload(p) }

// ReadFrames reads frames until an error, which it returns. For a data
// frame with a payload, owner says who keeps it: a non-nil push gets the
// payload read into a pooled buffer (GetChunk) it may keep, so data is
// never copied on the way in. Every other frame goes to handle, with a
// payload valid only during the call.
func (c *Conn) ReadFrames(owner func(h frame.Header) (push func([]byte) error), handle func(frame.Frame) error) error {
	var scratch []byte
	for {
		h, err := c.ReadHeader()
		if err != nil {
			return err
		}
		if h.Type.IsData() && h.Length > 0 {
			if push := owner(h); push != nil {
				chunk := GetChunk(int(h.Length))
				if err := c.ReadPayload(chunk); err != nil {
					return err
				}
				if c.trace != nil {
					c.trace.TraceFrame(false, h, chunk)
				}
				if err := push(chunk); err != nil {
					return err
				}
				continue
			}
		}
		if cap(scratch) < int(h.Length) {
			scratch = make([]byte, h.Length)
		}
		p := scratch[:h.Length]
		if err := c.ReadPayload(p); err != nil {
			return err
		}
		if c.trace != nil {
			c.trace.TraceFrame(false, h, p)
		}
		if err := handle(frame.Frame{Header: h, Payload: p}); err != nil {
			return err
		}
	}
}

// SendJSON encodes msg and sends it as a control frame.
func (c *Conn) SendJSON(t frame.Type, channel uint32, msg any) error {
	p, err := frame.Marshal(msg)
	if err != nil {
		return err
	}
	return c.Send(t, 0, channel, p)
}

// SendError sends an Error frame; on channel 0 the caller closes afterwards.
// A message too long for the peer's payload limit is shortened to fit.
func (c *Conn) SendError(channel uint32, code frame.Code, msg string) error {
	if len(msg) > frame.MaxMessageLen {
		msg = msg[:frame.MaxMessageLen]
	}
	m := &frame.ErrorMsg{Code: code, Message: strings.ToValidUTF8(msg, "")}
	for {
		p, err := frame.Marshal(m)
		if err != nil {
			return err
		}
		if len(p) <= int(c.PeerMax()) || m.Message == "" {
			return c.Send(frame.Error, 0, channel, p)
		}
		m.Message = strings.ToValidUTF8(m.Message[:len(m.Message)/2], "") + "..."
		if len(m.Message) <= 3 {
			m.Message = ""
		}
	}
}

// Fits reports whether a payload of n bytes is within the peer's limit.
func (c *Conn) Fits(n int) bool { return n <= int(c.PeerMax()) }

// CloseWithError closes the connection once, remembering the first cause.
func (c *Conn) CloseWithError(err error) {
	c.closeOnce.Do(func() {
		if err == nil {
			err = ErrClosed
		}
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		close(c.done)
		_ = c.nc.Close() // best effort
		c.streamMu.Lock()
		streams := c.streams
		c.streams = nil
		c.streamMu.Unlock()
		for st := range streams {
			st.connLost(err)
		}
	})
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.CloseWithError(ErrClosed)
	return nil
}

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// HandlePing answers a Ping frame; called by the read loop.
func (c *Conn) HandlePing(payload []byte) error {
	if len(payload) > frame.MaxPingPayload {
		return fmt.Errorf("%w: ping payload of %d bytes", frame.ErrInvalid, len(payload))
	}
	return c.Send(frame.Pong, 0, frame.ConnChannel, payload)
}

// HandlePong delivers a Pong to the Ping waiting for it; called by the read loop.
// Unsolicited pongs are ignored.
func (c *Conn) HandlePong(payload []byte) {
	if len(payload) != 8 {
		return
	}
	seq := binary.BigEndian.Uint64(payload)
	c.pingMu.Lock()
	ch, ok := c.pings[seq]
	delete(c.pings, seq)
	c.pingMu.Unlock()
	if ok {
		close(ch)
	}
}

// Ping sends a Ping and waits for its Pong, returning the round-trip time.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	c.pingMu.Lock()
	c.pingSeq++
	seq := c.pingSeq
	ch := make(chan struct{})
	c.pings[seq] = ch
	c.pingMu.Unlock()
	defer func() {
		c.pingMu.Lock()
		delete(c.pings, seq)
		c.pingMu.Unlock()
	}()
	start := time.Now()
	if err := c.Send(frame.Ping, 0, frame.ConnChannel, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.done:
		return 0, c.Err()
	}
}

// Linger ends a connection after a final frame: it half-closes the write
// side and drains what the peer still sends for up to d (and 256 KiB), so
// that closing does not reset the connection and destroy the frame before
// the peer has read it. Only the read loop's owner calls it, after the loop.
func (c *Conn) Linger(d time.Duration) {
	type closeWriter interface{ CloseWrite() error }
	c.wmu.Lock()
	if cw, ok := c.nc.(closeWriter); ok {
		_ = cw.CloseWrite() // best effort
	}
	c.wmu.Unlock()
	_ = c.nc.SetReadDeadline(time.Now().Add(d)) // best effort
	_, _ = io.CopyN(io.Discard, c.nc, 256<<10)  // best effort
	c.CloseWithError(ErrClosed)
}
