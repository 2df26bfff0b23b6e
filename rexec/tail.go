package rexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// TailPos is a position in a followed file: its identity and the offset
// after the last byte received. Give it back in TailOptions.Since to
// resume after a lost connection, with no duplicate and no gap.
type TailPos struct {
	// Dev and Ino identify the file on the daemon's machine (0 for a
	// position by offset alone).
	Dev, Ino uint64
	// Offset is the byte after the last one received.
	Offset uint64
	// Last holds the last bytes received before Offset: the daemon checks
	// them to know that the file was not truncated and written again
	// meanwhile, and to find the copy a copytruncate made.
	Last []byte
}

// TailFile tells of a switch to a file: at the start, after a rotation
// or a truncation, or on resuming.
type TailFile struct {
	TailPos
	// Reason says why: "start", "resumed", "rotated", "truncated",
	// "appeared", or what was lost when the file was rotated away while
	// the client was gone.
	Reason string
}

// wire is the position as a tail request carries it (nil for none).
func (p *TailPos) wire() *frame.TailPos {
	if p == nil {
		return nil
	}
	return &frame.TailPos{Dev: p.Dev, Ino: p.Ino, Offset: p.Offset, Last: p.Last}
}

// lostIf is err, or ErrConnectionLost when err comes from the loss of the
// connection (seen by a read or a write before the session marked it).
func (c *Client) lostIf(err error) error {
	if errors.Is(err, mux.ErrLost) && !errors.Is(err, ErrConnectionLost) {
		return c.lost()
	}
	return err
}

// lastBytes is the last MaxTailLast bytes of prev followed by p, in a
// new slice.
func lastBytes(prev, p []byte) []byte {
	b := append(append([]byte(nil), prev...), p[max(0, len(p)-frame.MaxTailLast):]...)
	return b[max(0, len(b)-frame.MaxTailLast):]
}

// TailOptions says how Tail follows a file.
type TailOptions struct {
	// Lines starts this many lines before the end (tail -n); negative
	// starts at the beginning. Ignored with Since.
	Lines int64
	// Follow goes on as the file grows, across rotations and truncations
	// (tail -F), until ctx ends or the connection is lost.
	Follow bool
	// Grep keeps only the lines this regular expression (RE2) matches; the
	// daemon filters, so that only they cross the wire.
	Grep string
	// Since resumes at a position a previous Tail returned.
	Since *TailPos
	// SinceTime, when not zero and without Since, starts at the first
	// line whose leading timestamp is at or after it (see
	// frame.TailRequest.SinceNS).
	SinceTime time.Time
	// OnFile, when set, is told of each switch of file.
	OnFile func(TailFile)
}

// Tail writes the file at path (relative to the user's home) to w, as
// tail -n and tail -F do. It returns the position after the last byte
// written, also on error, so that a caller can resume: with Follow it
// returns only when ctx ends (ctx's error) or the channel does (a lost
// connection is ErrConnectionLost).
func (c *Client) Tail(ctx context.Context, path string, opts TailOptions, w io.Writer) (TailPos, error) {
	var pos TailPos
	if opts.Since != nil {
		pos = *opts.Since
	}
	fc, err := c.openFile(ctx, &frame.OpenMsg{Kind: frame.KindTail, Path: path,
		Tail: &frame.TailRequest{Lines: opts.Lines, Follow: opts.Follow, Grep: opts.Grep, Since: opts.Since.wire(), SinceNS: sinceNS(opts)}})
	if err != nil {
		return pos, c.lostIf(err)
	}
	stop := fc.endWith(ctx)
	defer stop()
	tr := frame.NewTailReader(fc.in)
	for {
		rec, err := tr.Next()
		if err != nil {
			if errors.Is(err, frame.ErrMalformed) {
				fc.close()
				return pos, fmt.Errorf("rexec: tail: %w", err)
			}
			if errors.Is(err, io.EOF) { // the end of the file, without Follow
				fc.ch.Finish()
				_, err = fc.wait(ctx)
				return pos, err
			}
			if ctx.Err() != nil {
				return pos, ctx.Err()
			}
			if cerr := c.channelErr(fc.ch); cerr != nil {
				return pos, c.lostIf(cerr)
			}
			return pos, c.lostIf(err)
		}
		if f := rec.File; f != nil {
			named := f.Dev != 0 || f.Ino != 0 // else a notice (a file not there yet), not a place
			if named && (f.Dev != pos.Dev || f.Ino != pos.Ino || f.Offset != pos.Offset) {
				// another file or place: what came before it is not its
				pos = TailPos{Dev: f.Dev, Ino: f.Ino, Offset: f.Offset}
			}
			if opts.OnFile != nil {
				opts.OnFile(TailFile{TailPos{Dev: f.Dev, Ino: f.Ino, Offset: f.Offset}, f.Reason})
			}
			continue
		}
		if _, err := w.Write(rec.Data); err != nil {
			fc.close()
			return pos, err
		}
		if pos.Offset != rec.Offset { // with grep, lines in between were left out
			pos.Last = nil
		}
		pos.Last = lastBytes(pos.Last, rec.Data)
		pos.Offset = rec.Offset + uint64(len(rec.Data))
	}
}

// sinceNS is the request's SinceNS: the time, unless a position is given.
func sinceNS(opts TailOptions) int64 {
	if opts.Since != nil || opts.SinceTime.IsZero() {
		return 0
	}
	return opts.SinceTime.UnixNano()
}
