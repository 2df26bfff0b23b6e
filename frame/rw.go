package frame

import (
	"fmt"
	"io"
)

// Frame is one decoded frame. Payload is valid until the next call to
// Reader.ReadFrame, which reuses its buffer.
type Frame struct {
	Header
	Payload []byte
}

// Reader reads frames from a byte stream. It is not safe for concurrent use.
type Reader struct {
	r   io.Reader
	max uint32
	hdr [HeaderSize]byte
	buf []byte
}

// NewReader returns a Reader that refuses payloads longer than max bytes.
// A max of 0 means DefaultMaxPayload.
func NewReader(r io.Reader, max uint32) *Reader {
	if max == 0 {
		max = DefaultMaxPayload
	}
	return &Reader{r: r, max: max}
}

// Max returns the largest payload the reader accepts.
func (r *Reader) Max() uint32 { return r.max }

// ReadFrame reads the next frame. It returns io.EOF only when the stream
// ends exactly at a frame boundary and io.ErrUnexpectedEOF when it ends
// inside a header or a payload. The declared length is checked against the
// limit before any payload memory is allocated, so a hostile length costs
// nothing. Errors other than io.EOF wrap one of the package's sentinels or
// io.ErrUnexpectedEOF; every error leaves the stream at an unknown position,
// so the connection must be closed after it.
func (r *Reader) ReadFrame() (Frame, error) {
	h, err := r.ReadHeader()
	if err != nil {
		return Frame{Header: h}, err
	}
	if uint32(cap(r.buf)) < h.Length {
		r.buf = make([]byte, h.Length)
	}
	p := r.buf[:h.Length]
	if err := r.ReadPayload(p); err != nil {
		return Frame{Header: h}, err
	}
	return Frame{Header: h, Payload: p}, nil
}

// ReadHeader reads and checks the next header, the length against the
// limit included, leaving the payload unread: the caller must then call
// ReadPayload with a slice of exactly h.Length bytes. It lets a caller read
// a payload straight into memory it owns. Errors are those of ReadFrame.
func (r *Reader) ReadHeader() (Header, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Header{}, err // io.EOF at a boundary, io.ErrUnexpectedEOF inside the header
	}
	h, err := ParseHeader(r.hdr)
	if err != nil {
		return h, err
	}
	if h.Length > r.max {
		return h, fmt.Errorf("%w: %d bytes declared, limit %d", ErrTooLarge, h.Length, r.max)
	}
	return h, nil
}

// ReadPayload reads the payload announced by the last ReadHeader into p,
// which must be exactly that long.
func (r *Reader) ReadPayload(p []byte) error {
	if _, err := io.ReadFull(r.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// PutHeader writes the wire form of h into b[:HeaderSize], so that a
// payload already in place after it can be sent with no copy.
func PutHeader(b []byte, h Header) {
	_ = AppendHeader(b[:0], h)
}

// Writer writes frames to a byte stream, each header and payload in a single
// Write call. It is not safe for concurrent use: give each connection one
// owner, or guard it with a mutex.
type Writer struct {
	w   io.Writer
	max uint32
	buf []byte
}

// NewWriter returns a Writer that refuses payloads longer than max bytes
// (the peer's announced limit). A max of 0 means DefaultMaxPayload.
func NewWriter(w io.Writer, max uint32) *Writer {
	if max == 0 {
		max = DefaultMaxPayload
	}
	return &Writer{w: w, max: max}
}

// SetMax changes the payload limit, for use after the peer's hello.
func (w *Writer) SetMax(max uint32) { w.max = max }

// Max returns the payload limit.
func (w *Writer) Max() uint32 { return w.max }

// WriteFrame writes one frame. It returns ErrTooLarge without writing
// anything when the payload exceeds the limit.
func (w *Writer) WriteFrame(t Type, flags Flags, channel uint32, payload []byte) error {
	if uint64(len(payload)) > uint64(w.max) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), w.max)
	}
	w.buf = AppendHeader(w.buf[:0], Header{Version: Version, Type: t, Flags: flags, Channel: channel, Length: uint32(len(payload))})
	w.buf = append(w.buf, payload...)
	_, err := w.w.Write(w.buf)
	if cap(w.buf) > 2*HeaderSize+int(DefaultMaxPayload) {
		w.buf = nil // do not pin an unusually large buffer
	}
	return err
}

// WriteJSON encodes msg and writes it as one control frame of type t.
func (w *Writer) WriteJSON(t Type, channel uint32, msg any) error {
	p, err := Marshal(msg)
	if err != nil {
		return err
	}
	return w.WriteFrame(t, 0, channel, p)
}

// streamWriter adapts a Writer to io.Writer for one data stream.
type streamWriter struct {
	w       *Writer
	t       Type
	channel uint32
}

// NewStreamWriter returns an io.Writer that sends everything written to it
// as data frames of type t on channel, split at the writer's limit, so that
// it can be plugged into exec.Cmd.Stdout. It does no flow control; it is
// for tools and tests, and it is no safer for concurrent use than w.
func NewStreamWriter(w *Writer, t Type, channel uint32) io.Writer {
	return &streamWriter{w: w, t: t, channel: channel}
}

func (s *streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), int(s.w.max))
		if err := s.w.WriteFrame(s.t, 0, s.channel, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}
