package frame

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BusyPrefix starts the line a daemon writes, in plain text before any
// TLS or frame, to a connection it will not take now (too many
// connections still logging in, overall or from one address), then
// closes: "EXECD-BUSY <retry_ms> <reason>\n". No TLS record and no frame
// header begins with 'E', so a client tells it from a handshake by its
// first byte, and retries after retry_ms (with jitter) within its
// connect timeout.
const BusyPrefix = "EXECD-BUSY "

// MaxBusyLine bounds the busy line a client reads.
const MaxBusyLine = 256

// Busy is a daemon's "not now".
type Busy struct {
	RetryAfter time.Duration
	Reason     string
}

// AppendBusy appends the busy line of b.
func AppendBusy(dst []byte, b Busy) []byte {
	reason := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, b.Reason)
	line := fmt.Appendf(nil, "%s%d %s", BusyPrefix, b.RetryAfter.Milliseconds(), reason)
	if len(line) > MaxBusyLine-1 {
		line = line[:MaxBusyLine-1]
	}
	return append(append(dst, line...), '\n')
}

// ParseBusy reads a busy line (with or without its newline).
func ParseBusy(line []byte) (Busy, error) {
	rest, ok := bytes.CutPrefix(bytes.TrimRight(line, "\n"), []byte(BusyPrefix))
	if !ok {
		return Busy{}, fmt.Errorf("%w: not a busy line", ErrMalformed)
	}
	ms, reason, _ := bytes.Cut(rest, []byte(" "))
	n, err := strconv.ParseUint(string(ms), 10, 32)
	if err != nil {
		return Busy{}, fmt.Errorf("%w: busy line: retry %q", ErrMalformed, ms)
	}
	return Busy{RetryAfter: time.Duration(n) * time.Millisecond, Reason: string(reason)}, nil
}
