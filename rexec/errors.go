package rexec

import (
	"fmt"
	"time"

	"github.com/execd-project/execd/frame"
)

// Exit is how a command ended, as its daemon reported it.
type Exit struct {
	// Status is the exit status (0..255 on Unix, the 32-bit exit code on
	// Windows), or -1 when Signal is set.
	Status int
	// Signal names the signal that ended the command, e.g. SIGTERM.
	Signal Signal
	// CoreDumped reports a core dump.
	CoreDumped bool
	// TimedOut reports that the daemon ended the command at its time limit.
	TimedOut bool
	// Message is the daemon's explanation of an abnormal end, if any.
	Message string
	// Duration is how long the command ran.
	Duration time.Duration
	// Encoding names how the daemon transcoded the command's output to
	// UTF-8: "utf-8" or "raw" (untouched), "gbk", "gb18030", ...
	Encoding string
}

// exitOf is the exit a daemon's exit message reports.
func exitOf(m *frame.ExitMsg) *Exit {
	return &Exit{
		Status:     int(m.Code),
		Signal:     Signal(m.Signal),
		CoreDumped: m.CoreDumped,
		TimedOut:   m.TimedOut,
		Message:    m.Message,
		Duration:   time.Duration(m.DurationMS) * time.Millisecond,
		Encoding:   m.Encoding,
	}
}

// ExitError reports a command that exited with a non-zero status or was
// killed by a signal.
type ExitError struct{ Exit }

// Error describes the exit.
func (e *ExitError) Error() string {
	var s string
	if e.Signal != "" {
		s = fmt.Sprintf("remote command killed by signal %s", e.Signal)
		if e.CoreDumped {
			s += " (core dumped)"
		}
	} else {
		s = fmt.Sprintf("remote command exited with status %d", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// ExitStatus returns the status as a shell reports it: the exit code, or
// 128 plus the signal number (Linux numbering) for a signal.
func (e *Exit) ExitStatus() int {
	if e.Signal != "" {
		return 128 + SignalNumber(e.Signal)
	}
	return e.Status
}

// Exit statuses a client reports, as shells and ssh do, for outcomes
// that are not a remote command's own status.
const (
	// StatusNotFound: the command could not be started (a shell's 127).
	StatusNotFound = 127
	// StatusConnection: the connection, TLS, the daemon's identity or
	// the protocol failed (ssh's 255).
	StatusConnection = 255
)

// ShellStatus fits a remote exit status into the byte a local exit status
// holds: a Windows code over 255 keeps its low byte, or 1 when that is 0,
// so that a failure never reads as success.
func ShellStatus(st int) int {
	if st <= 255 {
		return st
	}
	if low := st & 0xff; low != 0 {
		return low
	}
	return 1
}

// SignalNumber returns the Linux number of a signal name, or 0 if unknown.
func SignalNumber(s Signal) int { return frame.SignalNumber(string(s)) }
