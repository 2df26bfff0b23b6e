package execd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/xfer"
)

// errNoStamps refuses a tail --since TIME of a file whose lines carry no
// time it can read.
var errNoStamps = xfer.Errorf(frame.CodeInvalid, "no line of this file starts with a time that --since TIME can be compared with (RFC 3339, 2006-01-02 15:04:05, syslog's Jan _2 15:04:05, or a web server's [02/Jan/2006:15:04:05 -0700])")

// stampWindow bounds how far a probe reads for a line with a timestamp.
const stampWindow = 64 << 10

// lineStamp reads the time a log line starts with, in the formats most
// logs use; ok is false for a line without one (a stack trace's
// continuation, say). Times without a zone are the daemon's local time; a
// syslog time without a year is in the last twelve months.
func lineStamp(line []byte, now time.Time) (time.Time, bool) {
	line = bytes.TrimLeft(line, " \t")
	if len(line) > 64 {
		line = line[:64]
	}
	s := string(line)
	if n := len(s); n >= 20 && s[4] == '-' && s[10] == 'T' {
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		if t, err := time.Parse(time.RFC3339Nano, s[:end]); err == nil {
			return t, true
		}
	}
	if len(s) >= 19 && s[4] == '-' && s[10] == ' ' {
		if t, err := time.ParseInLocation(time.DateTime, s[:19], time.Local); err == nil {
			return t, true
		}
	}
	if len(s) >= 15 && s[3] == ' ' && s[6] == ' ' {
		if t, err := time.ParseInLocation(time.Stamp, s[:15], time.Local); err == nil {
			t = t.AddDate(now.Year(), 0, 0)
			if t.After(now.Add(24 * time.Hour)) {
				t = t.AddDate(-1, 0, 0)
			}
			return t, true
		}
	}
	if i := bytes.IndexByte(line, '['); i >= 0 && len(s) >= i+28 {
		if t, err := time.Parse("02/Jan/2006:15:04:05 -0700", s[i+1:i+27]); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// nextStamped finds the first line starting at or after off (the start
// of the line after the one off is in, unless off is 0) that carries a
// timestamp, reading at most stampWindow bytes of lines; ok is false when
// there is none in that window.
func nextStamped(f *os.File, off, size int64, now time.Time) (start int64, ts time.Time, ok bool, err error) {
	buf := make([]byte, min(stampWindow, size-max(off-1, 0)))
	base := max(off-1, 0)
	n, err := f.ReadAt(buf, base)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, time.Time{}, false, err
	}
	buf = buf[:n]
	i := 0
	if off > 0 {
		nl := bytes.IndexByte(buf, '\n')
		if nl < 0 {
			return 0, time.Time{}, false, nil
		}
		i = nl + 1
	}
	for i < len(buf) {
		end := bytes.IndexByte(buf[i:], '\n')
		if end < 0 && base+int64(len(buf)) < size {
			return 0, time.Time{}, false, nil // a line longer than the window
		}
		line := buf[i:]
		if end >= 0 {
			line = buf[i : i+end]
		}
		if t, ok := lineStamp(line, now); ok {
			return base + int64(i), t, true, nil
		}
		if end < 0 {
			break
		}
		i += end + 1
	}
	return 0, time.Time{}, false, nil
}

// firstLineSince is the offset of the first line of f whose timestamp is
// at or after since (the end of the file when none is): a binary search
// over the file, the lines taken to be in time order, then a short walk.
func firstLineSince(f *os.File, size int64, since time.Time) (uint64, error) {
	now := time.Now()
	if size == 0 {
		return 0, nil
	}
	if _, _, ok, err := nextStamped(f, 0, size, now); err != nil {
		return 0, err
	} else if !ok {
		return 0, errNoStamps
	}
	// Every stamped line that starts before lo is earlier than since.
	lo, hi := int64(0), size
	for hi-lo > stampWindow {
		mid := lo + (hi-lo)/2
		start, ts, ok, err := nextStamped(f, mid, size, now)
		if err != nil {
			return 0, err
		}
		if ok && start < hi && ts.Before(since) {
			lo = start + 1
		} else {
			hi = mid
		}
	}
	// From the line lo is in, walk on to the first line at or after since.
	for off := lo; off < size; {
		start, ts, ok, err := nextStamped(f, off, size, now)
		if err != nil {
			return 0, err
		}
		if !ok {
			off += stampWindow // no stamp in this window: on past it
			continue
		}
		if !ts.Before(since) {
			return uint64(start), nil
		}
		off = start + 1
	}
	return uint64(size), nil
}
