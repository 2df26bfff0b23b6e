package frame

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"unicode/utf8"
)

// KindTail follows a file, as tail -F does: its data stream carries
// TailRecords (below), not the file's bytes alone, so that the client
// always knows which file and which offset each byte came from and can
// resume after a reconnect with no duplicate and no gap.
const KindTail = "tail"

// Limits of a tail channel.
const (
	MaxTailGrep   = 1024    // bytes in a tail's regular expression
	MaxTailData   = 1 << 20 // bytes in one data record
	MaxTailReason = 1024    // bytes in a file record's reason
)

// TailRequest is what a tail channel asks for (OpenMsg.Tail).
type TailRequest struct {
	// Lines starts this many lines before the end of the file (tail -n);
	// negative starts at its beginning. Ignored with Since.
	Lines int64 `json:"lines"`
	// Follow goes on after the end: new data as it is written, the file
	// that replaces it at its path after a rotation (rename and create,
	// or copy and truncate), the same file from its start after a
	// truncation. Without Follow the channel ends at the end of the file.
	Follow bool `json:"follow,omitempty"`
	// Grep, when set, is a regular expression (RE2): only the lines it
	// matches cross the wire.
	Grep string `json:"grep,omitempty"`
	// Since resumes where a previous tail stopped: the file it read and
	// the offset after the last byte it received.
	Since *TailPos `json:"since,omitempty"`
	// SinceNS, when not zero and without Since, starts at the first line
	// whose leading timestamp is at or after this time (Unix nanoseconds):
	// lines are taken to be in time order, and a line without a timestamp
	// to belong to the one before it. A file with no such timestamps is
	// refused (bad_path is not it: invalid_message, with the formats).
	SinceNS int64 `json:"since_ns,omitempty"`
}

// TailPos is a position in a followed file: its identity (device and
// inode on Unix; zero where the system has none) and an offset.
type TailPos struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Offset uint64 `json:"offset"`
	// Last holds the last bytes before Offset (up to MaxTailLast), as the
	// client received them: the daemon checks them to know that the file
	// was not truncated and written again meanwhile, and to find the copy
	// a copytruncate made. Not part of a file record on the wire.
	Last []byte `json:"last,omitempty"`
}

// MaxTailLast is how many of the last bytes a position keeps.
const MaxTailLast = 64

// Validate checks the request's structure.
func (r *TailRequest) Validate() error {
	if r.Since != nil && len(r.Since.Last) > MaxTailLast {
		return fmt.Errorf("%w: since.last longer than %d bytes", ErrInvalid, MaxTailLast)
	}
	if len(r.Grep) > MaxTailGrep {
		return fmt.Errorf("%w: grep longer than %d bytes", ErrInvalid, MaxTailGrep)
	}
	if r.Grep != "" {
		if _, err := regexp.Compile(r.Grep); err != nil {
			return fmt.Errorf("%w: grep: %v", ErrInvalid, err)
		}
	}
	return nil
}

// TailRecord is one record of a tail channel's data stream: either File,
// a switch to a file (its identity, the offset reading starts at, and
// why), or Data, bytes of the current file starting at Offset.
//
// On the wire a file record is 'F', dev, ino and offset (8 bytes each,
// big-endian), the reason's length (2 bytes) and the reason; a data
// record is 'D', the offset (8 bytes), the length (4 bytes) and the bytes.
type TailRecord struct {
	File   *TailFile
	Offset uint64
	Data   []byte
}

// TailFile starts the records of one file.
type TailFile struct {
	TailPos
	// Reason says why: "start", "resumed", "rotated", "truncated",
	// "appeared", or what was lost when the file was rotated away while
	// the client was gone.
	Reason string
}

// AppendTailRecord appends the wire form of rec to b.
func AppendTailRecord(b []byte, rec *TailRecord) []byte {
	if f := rec.File; f != nil {
		reason := f.Reason
		if len(reason) > MaxTailReason {
			reason = reason[:MaxTailReason]
		}
		b = append(b, 'F')
		b = binary.BigEndian.AppendUint64(b, f.Dev)
		b = binary.BigEndian.AppendUint64(b, f.Ino)
		b = binary.BigEndian.AppendUint64(b, f.Offset)
		b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
		return append(b, reason...)
	}
	b = append(b, 'D')
	b = binary.BigEndian.AppendUint64(b, rec.Offset)
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec.Data)))
	return append(b, rec.Data...)
}

// TailReader reads TailRecords from a tail channel's data stream.
type TailReader struct {
	r   *bufio.Reader
	buf []byte
}

// NewTailReader reads records from r.
func NewTailReader(r io.Reader) *TailReader { return &TailReader{r: bufio.NewReaderSize(r, 64<<10)} }

// Next returns the next record; its Data is valid until the next call.
// io.EOF is the clean end of the stream; a record cut short or beyond the
// limits is ErrMalformed.
func (t *TailReader) Next() (*TailRecord, error) {
	kind, err := t.r.ReadByte()
	if err != nil {
		return nil, err // io.EOF between records: the end
	}
	switch kind {
	case 'F':
		var h [26]byte
		if _, err := io.ReadFull(t.r, h[:]); err != nil {
			return nil, cut(err)
		}
		n := int(binary.BigEndian.Uint16(h[24:]))
		if n > MaxTailReason {
			return nil, fmt.Errorf("%w: tail reason of %d bytes", ErrMalformed, n)
		}
		reason := make([]byte, n)
		if _, err := io.ReadFull(t.r, reason); err != nil {
			return nil, cut(err)
		}
		if !utf8.Valid(reason) {
			return nil, fmt.Errorf("%w: tail reason is not UTF-8", ErrMalformed)
		}
		return &TailRecord{File: &TailFile{TailPos: TailPos{
			Dev: binary.BigEndian.Uint64(h[0:]), Ino: binary.BigEndian.Uint64(h[8:]), Offset: binary.BigEndian.Uint64(h[16:]),
		}, Reason: string(reason)}}, nil
	case 'D':
		var h [12]byte
		if _, err := io.ReadFull(t.r, h[:]); err != nil {
			return nil, cut(err)
		}
		n := binary.BigEndian.Uint32(h[8:])
		if n > MaxTailData {
			return nil, fmt.Errorf("%w: tail data record of %d bytes", ErrMalformed, n)
		}
		if cap(t.buf) < int(n) {
			t.buf = make([]byte, n)
		}
		data := t.buf[:n]
		if _, err := io.ReadFull(t.r, data); err != nil {
			return nil, cut(err)
		}
		off := binary.BigEndian.Uint64(h[0:])
		if off+uint64(n) < off {
			return nil, fmt.Errorf("%w: tail data past the largest offset", ErrMalformed)
		}
		return &TailRecord{Offset: off, Data: data}, nil
	}
	return nil, fmt.Errorf("%w: tail record of type %#x", ErrMalformed, kind)
}

// cut is the error of a record the stream ended in the middle of.
func cut(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: tail record cut short", ErrMalformed)
	}
	return err
}
