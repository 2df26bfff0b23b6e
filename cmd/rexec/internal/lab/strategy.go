// Package lab is the sticky-packet (粘包) lab: it sends a workload of
// messages over a real loopback TCP connection under one framing strategy
// and records what the receiver saw, read by read, so that a class can see
// why TCP needs framing and what each classic fix costs.
package lab

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/execd-project/execd/frame"
)

// Strategy names a way to delimit messages on a byte stream.
type Strategy string

// The strategies, in the order a lesson meets them.
const (
	Raw         Strategy = "raw"          // no framing: each read() is taken as a message
	Sleep       Strategy = "sleep"        // no framing, a pause between sends
	Ack         Strategy = "ack"          // stop-and-wait: the receiver answers each message
	LenI        Strategy = "len-i"        // 4-byte length, struct 'i': native (little-endian) signed
	LenBE       Strategy = "len-be"       // 4-byte length, struct '>I': big-endian unsigned
	JSONHeader  Strategy = "json-header"  // struct 'i' header length + JSON header + body (报头)
	JSONHeader8 Strategy = "json-header8" // the same with a u64 ('>Q') header length
	Delimiter   Strategy = "delimiter"    // a '\n' after each message
	Frames      Strategy = "frame"        // this project's frame protocol (12-byte header)
)

// Strategies lists every strategy.
func Strategies() []Strategy {
	return []Strategy{Raw, Sleep, Ack, LenI, LenBE, JSONHeader, JSONHeader8, Delimiter, Frames}
}

// ParseStrategy checks a strategy name.
func ParseStrategy(s string) (Strategy, error) {
	for _, st := range Strategies() {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(Strategies()))
	for i, st := range Strategies() {
		names[i] = string(st)
	}
	return "", fmt.Errorf("unknown strategy %q (one of %s)", s, strings.Join(names, ", "))
}

// Describe is a one-line explanation of a strategy for the view.
func (s Strategy) Describe() string {
	switch s {
	case Raw:
		return "no framing: every read() is taken as one message"
	case Sleep:
		return "no framing; the sender pauses between messages and hopes"
	case Ack:
		return "stop-and-wait: one read() per message, answered with an ack before the next is sent"
	case LenI:
		return "struct.pack('i', len): 4 bytes, native order (little-endian here), signed"
	case LenBE:
		return "struct.pack('>I', len): 4 bytes, big-endian, unsigned"
	case JSONHeader:
		return "struct.pack('i', len(header)) + JSON header {\"size\": n} + body"
	case JSONHeader8:
		return "struct.pack('>Q', len(header)) + JSON header {\"size\": n} + body"
	case Delimiter:
		return "a '\\n' ends each message (breaks on binary data that holds one)"
	case Frames:
		return "execd's frames: version, type, flags, channel, length (12 bytes, big-endian) + payload"
	}
	return string(s)
}

// ErrHeaderOverflow is wrapped when a length does not fit the header.
var ErrHeaderOverflow = errors.New("length does not fit the header")

// part is one piece of the stream a message becomes: header bytes or the
// message's own bytes.
type part struct {
	b      []byte
	header bool
}

// encode turns a message of size bytes into the parts the sender writes.
// body is nil for a message that is only measured (the 2 GiB sparse file).
func (s Strategy) encode(body []byte, size int64) ([]part, error) {
	switch s {
	case Raw, Sleep, Ack:
		return []part{{b: body}}, nil
	case LenI:
		if size > math.MaxInt32 {
			return nil, fmt.Errorf("%w: %w", ErrHeaderOverflow, fmt.Errorf("struct.error: 'i' format requires -2147483648 <= number <= 2147483647, got %d", size))
		}
		h := make([]byte, 4)
		binary.LittleEndian.PutUint32(h, uint32(int32(size)))
		return []part{{b: h, header: true}, {b: body}}, nil
	case LenBE:
		if size > math.MaxUint32 {
			return nil, fmt.Errorf("%w: %w", ErrHeaderOverflow, fmt.Errorf("struct.error: argument out of range for '>I', got %d", size))
		}
		h := make([]byte, 4)
		binary.BigEndian.PutUint32(h, uint32(size))
		return []part{{b: h, header: true}, {b: body}}, nil
	case JSONHeader, JSONHeader8:
		j, _ := json.Marshal(map[string]int64{"size": size}) // a map of numbers always marshals
		var h []byte
		if s == JSONHeader {
			h = binary.LittleEndian.AppendUint32(nil, uint32(len(j)))
		} else {
			h = binary.BigEndian.AppendUint64(nil, uint64(len(j)))
		}
		return []part{{b: append(h, j...), header: true}, {b: body}}, nil
	case Delimiter:
		return []part{{b: body}, {b: []byte{'\n'}, header: true}}, nil
	case Frames:
		if size > frame.MaxMaxPayload {
			return nil, fmt.Errorf("%w: %w", ErrHeaderOverflow, fmt.Errorf("a frame carries at most %d bytes; larger files go in many frames, each with its own length", frame.MaxMaxPayload))
		}
		var b bytes.Buffer
		w := frame.NewWriter(&b, frame.MaxMaxPayload)
		if err := w.WriteFrame(frame.Data, 0, 1, nil); err != nil {
			return nil, err
		}
		h := b.Bytes()[:frame.HeaderSize]
		binary.BigEndian.PutUint32(h[8:12], uint32(size)) // the header's length field, for any size
		return []part{{b: h, header: true}, {b: body}}, nil
	}
	return nil, fmt.Errorf("unknown strategy %q", s)
}

// decoder recovers messages from the reads of a stream.
type decoder interface {
	// next returns the next message, or io.EOF at the end of the stream.
	next() ([]byte, error)
}

// newDecoder returns the receiving side of a strategy over r. Raw, Sleep
// and Ack take each read() as a message: that is the point.
func (s Strategy) newDecoder(r *recorder) decoder {
	switch s {
	case Raw, Sleep, Ack:
		return readDecoder{r}
	case LenI, LenBE, JSONHeader, JSONHeader8, Frames:
		return &lengthDecoder{s: s, r: bufio.NewReaderSize(r, max(r.max, 16)), rec: r}
	case Delimiter:
		return &delimDecoder{r: bufio.NewReaderSize(r, max(r.max, 16))}
	}
	return nil
}

// readDecoder: one read(), one message.
type readDecoder struct{ r *recorder }

func (d readDecoder) next() ([]byte, error) {
	b, err := d.r.readOnce()
	if len(b) > 0 {
		return b, nil
	}
	return nil, err
}

// lengthDecoder reads a header, then exactly the length it announces.
type lengthDecoder struct {
	s   Strategy
	r   *bufio.Reader
	rec *recorder
}

// maxLabMessage bounds what a receiver allocates for one message.
const maxLabMessage = 64 << 20

func (d *lengthDecoder) next() ([]byte, error) {
	var n int64
	switch d.s {
	case LenI, LenBE:
		var h [4]byte
		if _, err := io.ReadFull(d.r, h[:]); err != nil {
			return nil, err
		}
		if d.s == LenI {
			n = int64(int32(binary.LittleEndian.Uint32(h[:])))
		} else {
			n = int64(binary.BigEndian.Uint32(h[:]))
		}
	case JSONHeader, JSONHeader8:
		var hl int64
		if d.s == JSONHeader {
			var h [4]byte
			if _, err := io.ReadFull(d.r, h[:]); err != nil {
				return nil, err
			}
			hl = int64(int32(binary.LittleEndian.Uint32(h[:])))
		} else {
			var h [8]byte
			if _, err := io.ReadFull(d.r, h[:]); err != nil {
				return nil, err
			}
			hl = int64(binary.BigEndian.Uint64(h[:]) & math.MaxInt64)
		}
		if hl < 0 || hl > 4096 {
			return nil, fmt.Errorf("header length %d is not believable", hl)
		}
		hb := make([]byte, hl) // at most 4 KiB
		if _, err := io.ReadFull(d.r, hb); err != nil {
			return nil, noEOF(err)
		}
		var h struct {
			Size int64 `json:"size"`
		}
		if err := json.Unmarshal(hb, &h); err != nil {
			return nil, fmt.Errorf("json header: %w", err)
		}
		n = h.Size
	case Frames:
		fr := frame.NewReader(d.r, frame.MaxMaxPayload)
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), f.Payload...), nil
	}
	if n < 0 || n > maxLabMessage {
		return nil, fmt.Errorf("length %d is not believable", n)
	}
	// Memory grows with the bytes that arrive, not with what the header claims.
	b, err := io.ReadAll(io.LimitReader(d.r, n))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < n {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

// noEOF turns an end of stream inside a message into an error.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// delimDecoder splits at '\n'.
type delimDecoder struct{ r *bufio.Reader }

func (d *delimDecoder) next() ([]byte, error) {
	b, err := d.r.ReadBytes('\n')
	if err != nil {
		if len(b) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b[:len(b)-1], nil
}
