// Package fanout judges and shows the results of one command or transfer
// on many hosts: what each host's result means (Classify), the exit
// status of the whole run (Worst), the summary, and the printer of the
// hosts' output with prefixes, in groups or as JSON.
package fanout

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/execd-project/execd/cmd/rexec/internal/hostlist"
	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// Per-host states, as the summary and --json name them.
const (
	StateOK          = "ok"
	StateFailed      = "failed"      // the command ran and exited non-zero or was killed
	StateTimedOut    = "timeout"     // a time limit ended it (shown as "timed out")
	StateUnreachable = "unreachable" // no connection
	StateRefused     = "refused"     // the login or the daemon's identity was refused
	StateInterrupted = "interrupted" // Ctrl-C (or TERM, HUP) ended it
	StateError       = "error"       // the connection failed after it was made
)

// Outcome is what one host's result means to the user.
type Outcome struct {
	State    string // one of the State constants
	Status   int    // the host's share of rexec's exit status
	Exit     *int   // remote exit code, when one arrived
	Signal   string // the signal that ended the command, if one did
	TimedOut bool
	Reason   string // one line, empty when ok, the same for hosts failing alike
	Detail   string // the whole story for this host, one line per failure
}

// Classify says what one host's result means.
func Classify(r rexec.HostResult) Outcome {
	var ee *rexec.ExitError
	var em *frame.ErrorMsg
	var he *rexec.HostError
	var te *TransferError
	switch {
	case r.Err == nil:
		zero := 0
		return Outcome{State: StateOK, Exit: &zero}
	case errors.Is(r.Err, context.Canceled):
		return Outcome{State: StateInterrupted, Status: rexec.StatusConnection, Reason: "interrupted"}
	case errors.As(r.Err, &ee):
		o := Outcome{State: StateFailed, Status: rexec.ShellStatus(ee.ExitStatus()), Signal: string(ee.Signal), TimedOut: ee.TimedOut}
		if ee.Signal == "" {
			o.Exit = &ee.Status
			o.Reason = fmt.Sprintf("exit %d", ee.Status)
		} else {
			o.Reason = "killed by SIG" + string(ee.Signal)
		}
		if ee.TimedOut {
			o.State = StateTimedOut
			o.Reason = "time limit reached, " + o.Reason
		}
		return o
	case errors.As(r.Err, &em) && em.Code == frame.CodeExecFailed:
		return Outcome{State: StateFailed, Status: rexec.StatusNotFound, Reason: em.Message}
	case errors.As(r.Err, &te):
		first, _, _ := strings.Cut(te.Error(), "\n")
		o := Outcome{State: StateFailed, Status: 1, Reason: strings.TrimPrefix(first, "rexec: ")}
		if errors.Is(te, rexec.ErrConnectionLost) {
			o.State, o.Status = StateError, rexec.StatusConnection
		}
		if n := strings.Count(te.Error(), "\n"); n > 0 {
			o.Reason += fmt.Sprintf(" (and %d more)", n)
		}
		return o
	case errors.As(r.Err, &he):
		o := Outcome{State: StateError, Status: rexec.StatusConnection, Reason: shortReason(he.Err), Detail: oneLine(he.Err)}
		var ae *rexec.AuthError
		var ke *rexec.HostKeyError
		switch {
		case he.Stage != rexec.StageConnect:
		case errors.As(he.Err, &ae), errors.As(he.Err, &ke), errors.Is(he.Err, rexec.ErrNoAuth):
			o.State = StateRefused
		default:
			o.State = StateUnreachable
		}
		if errors.Is(he.Err, rexec.ErrHostTimeout) {
			o.State = StateTimedOut
		}
		return o
	default:
		return Outcome{State: StateError, Status: rexec.StatusConnection, Reason: shortReason(r.Err), Detail: oneLine(r.Err)}
	}
}

// oneLine is an error's message without rexec's prefix, lines joined.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimPrefix(err.Error(), "rexec: "), "\n", "; ")
}

// message is what to print for a failed host: the detail when there is one.
func (o Outcome) Message() string {
	if o.Detail != "" {
		return o.Detail
	}
	return o.Reason
}

// shortReason is an error as one line without the host's address, so that
// hosts failing alike are listed together.
func shortReason(err error) string {
	var se *os.SyscallError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, rexec.ErrHostTimeout):
		return "host time limit reached"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer within the time limit"
	case errors.As(err, &se):
		return se.Err.Error() // "connection refused", not the dial's whole story
	}
	return oneLine(err)
}

// printSummary writes the closing lines: counts by state, the slowest
// host, and each kind of failure with its hosts.
func Summary(w io.Writer, results []rexec.HostResult) {
	counts := map[string]int{}
	type failure struct {
		State, Reason string
		hosts         []string
	}
	var failures []*failure
	index := map[[2]string]*failure{}
	var slowest rexec.HostResult
	for _, r := range results {
		o := Classify(r)
		counts[o.State]++
		if r.Duration() > slowest.Duration() || slowest.Host == "" {
			slowest = r
		}
		if o.State == StateOK {
			continue
		}
		k := [2]string{o.State, o.Reason}
		f := index[k]
		if f == nil {
			f = &failure{State: o.State, Reason: o.Reason}
			index[k] = f
			failures = append(failures, f)
		}
		f.hosts = append(f.hosts, r.Host)
	}
	var parts []string
	for _, st := range []string{StateOK, StateFailed, StateTimedOut, StateError, StateUnreachable, StateRefused, StateInterrupted} {
		if counts[st] > 0 || st == StateOK {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], stateLabel(st)))
		}
	}
	fmt.Fprintf(w, "rexec: %d %s: %s; slowest %s (%s)\n", len(results), plural(len(results), "host"),
		strings.Join(parts, ", "), slowest.Host, slowest.Duration().Round(time.Millisecond))
	for _, f := range failures {
		if f.State == f.Reason {
			fmt.Fprintf(w, "rexec: %s: %s\n", stateLabel(f.State), compressHosts(f.hosts))
			continue
		}
		fmt.Fprintf(w, "rexec: %s: %s: %s\n", stateLabel(f.State), compressHosts(f.hosts), termsafe.String(f.Reason))
	}
}

// stateLabel is how the summary names a state.
func stateLabel(state string) string {
	if state == StateTimedOut {
		return "timed out"
	}
	return state
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// maxLine is the longest line held back waiting for its newline; a longer
// one is printed in pieces, each with the host's prefix.
const maxLine = 64 << 10

// maxOutput bounds what --group and --json keep of each stream of each
// host.
const maxOutput = 16 << 20

// hostColors are the ANSI colours of host prefixes, in turn (no red,
// which reads as an error).
var hostColors = [...]string{"32", "33", "34", "35", "36", "92", "93", "94", "95", "96"}

// Printer shows the output of many hosts: each line with its host's
// prefix as it arrives (the default), grouped by identical output at the
// end (--group), or one JSON object per host as each finishes (--json).
type Printer struct {
	mode   Mode
	out    *lockedWriter
	errOut *lockedWriter
	index  map[string]int // host -> position in the inventory

	mu    sync.Mutex
	hosts map[string]*hostOutput
}

// hostOutput is one host's streams.
type hostOutput struct {
	stdout, stderr interface {
		io.Writer
		flush()
	}
}

// Mode is how a Printer shows the hosts' output.
type Mode struct {
	Group bool // hosts with identical output together, at the end
	JSON  bool // one JSON object per host as it finishes
}

// NewPrinter returns a printer of the output of hosts on stdout and
// stderr; color gives each host's prefix a colour.
func NewPrinter(stdout, stderr io.Writer, hosts []string, mode Mode, color bool) *Printer {
	p := &Printer{
		mode:   mode,
		out:    &lockedWriter{w: stdout},
		errOut: &lockedWriter{w: stderr},
		index:  make(map[string]int, len(hosts)),
		hosts:  make(map[string]*hostOutput, len(hosts)),
	}
	width := 0
	for i, h := range hosts {
		p.index[h] = i
		width = max(width, utf8.RuneCountInString(h))
	}
	for i, h := range hosts {
		ho := &hostOutput{}
		if mode.Group || mode.JSON {
			ho.stdout, ho.stderr = &cappedBuffer{limit: maxOutput}, &cappedBuffer{limit: maxOutput}
		} else {
			prefix := h + ": "
			if color {
				prefix = "\x1b[" + hostColors[i%len(hostColors)] + "m" + h + "\x1b[0m: "
			}
			ho.stdout = &prefixWriter{dst: p.out, prefix: prefix}
			ho.stderr = &prefixWriter{dst: p.errOut, prefix: prefix}
		}
		p.hosts[h] = ho
	}
	return p
}

// writers returns the host's stdout and stderr.
func (p *Printer) Writers(host string) (io.Writer, io.Writer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ho := p.hosts[host]
	return ho.stdout, ho.stderr
}

// done is called as each host finishes.
func (p *Printer) Done(r rexec.HostResult) {
	p.mu.Lock()
	ho := p.hosts[r.Host]
	p.mu.Unlock()
	ho.stdout.flush()
	ho.stderr.flush()
	o := Classify(r)
	switch {
	case p.mode.JSON:
		b, _ := json.Marshal(hostRecord(r, o, ho)) // plain types: cannot fail
		p.out.write(append(b, '\n'))
	case p.mode.Group:
	case o.State == StateOK, o.State == StateInterrupted:
	case !(o.State == StateFailed && o.Signal == "" && !o.TimedOut):
		// a plain non-zero exit speaks for itself in the summary
		p.errOut.write([]byte(fmt.Sprintf("%s: rexec: %s\n", r.Host, termsafe.String(o.Message()))))
	}
}

// finish prints what waits for every host: the groups of --group.
func (p *Printer) Finish(results []rexec.HostResult) {
	if !p.mode.Group {
		return
	}
	type group struct {
		hosts []string
		o     Outcome
		out   []byte
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, r := range results {
		ho := p.hosts[r.Host]
		o := Classify(r)
		var out bytes.Buffer
		out.Write(ho.stdout.(*cappedBuffer).bytes())
		out.Write(ho.stderr.(*cappedBuffer).bytes())
		key := o.State + "\x00" + o.Reason + "\x00" + out.String()
		g := byKey[key]
		if g == nil {
			g = &group{o: o, out: out.Bytes()}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.hosts = append(g.hosts, r.Host)
	}
	var b bytes.Buffer
	for _, g := range groups {
		title := compressHosts(g.hosts)
		if g.o.State != StateOK {
			title += ": " + stateLabel(g.o.State) + ": " + g.o.Reason
		}
		fmt.Fprintf(&b, "----------------\n%s\n----------------\n", title)
		b.Write(g.out)
		if len(g.out) > 0 && g.out[len(g.out)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	p.out.write(b.Bytes())
}

// compressHosts writes hosts the short way: 127.0.0.[2-40,42].
func compressHosts(hosts []string) string { return hostlist.Compress(hosts) }

// HostJSON is one line of --json: one host's result and output.
type HostJSON struct {
	Host         string  `json:"host"`
	State        string  `json:"state"`
	Status       int     `json:"status"`
	ExitCode     *int    `json:"exit_code"`
	Signal       string  `json:"signal,omitempty"`
	TimedOut     bool    `json:"timed_out,omitempty"`
	Stdout       string  `json:"stdout"`
	Stderr       string  `json:"stderr"`
	StdoutBase64 string  `json:"stdout_base64,omitempty"`
	StderrBase64 string  `json:"stderr_base64,omitempty"`
	Truncated    bool    `json:"truncated,omitempty"`
	Duration     float64 `json:"duration"`
	Error        string  `json:"error,omitempty"`
}

func hostRecord(r rexec.HostResult, o Outcome, ho *hostOutput) HostJSON {
	stdout, stderr := ho.stdout.(*cappedBuffer), ho.stderr.(*cappedBuffer)
	j := HostJSON{
		Host: r.Host, State: o.State, Status: o.Status, ExitCode: o.Exit,
		Signal: o.Signal, TimedOut: o.TimedOut,
		Stdout: string(stdout.bytes()), Stderr: string(stderr.bytes()),
		Truncated: stdout.truncated || stderr.truncated,
		Duration:  float64(r.Duration().Microseconds()) / 1e6,
	}
	if o.State != StateOK {
		j.Error = o.Reason
	}
	// JSON strings are Unicode: bytes that are not UTF-8 would be replaced,
	// so they are given exactly beside the readable text.
	if !utf8.Valid(stdout.bytes()) {
		j.StdoutBase64 = base64.StdEncoding.EncodeToString(stdout.bytes())
	}
	if !utf8.Valid(stderr.bytes()) {
		j.StderrBase64 = base64.StdEncoding.EncodeToString(stderr.bytes())
	}
	return j
}

// lockedWriter gives whole writes to one stream shared by every host.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b) // a closed stdout must not stop the other hosts
}

// prefixWriter prints whole lines, each after the host's prefix, in one
// write each time, so that lines of different hosts never mix.
type prefixWriter struct {
	dst     *lockedWriter
	prefix  string
	pending []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.pending = append(w.pending, p...)
	last := bytes.LastIndexByte(w.pending, '\n')
	if last < 0 {
		if len(w.pending) >= maxLine {
			w.emit(w.pending, true)
			w.pending = w.pending[:0]
		}
		return len(p), nil
	}
	w.emit(w.pending[:last+1], false)
	w.pending = append(w.pending[:0], w.pending[last+1:]...)
	return len(p), nil
}

// emit prints lines (ending in '\n' unless open) with their prefix.
func (w *prefixWriter) emit(lines []byte, open bool) {
	var b bytes.Buffer
	for len(lines) > 0 {
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line = lines[:i+1]
		}
		lines = lines[len(line):]
		b.WriteString(w.prefix)
		b.Write(line)
	}
	if open {
		b.WriteByte('\n')
	}
	w.dst.write(b.Bytes())
}

// flush prints a last line that had no newline.
func (w *prefixWriter) flush() {
	if len(w.pending) > 0 {
		w.emit(w.pending, true)
		w.pending = nil
	}
}

// cappedBuffer keeps up to limit bytes and notes what it dropped.
type cappedBuffer struct {
	mu        sync.Mutex
	b         bytes.Buffer
	limit     int64
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - int64(c.b.Len())
	if int64(len(p)) > room {
		c.b.Write(p[:max(room, 0)])
		c.truncated = true
		return len(p), nil
	}
	c.b.Write(p)
	return len(p), nil
}

func (c *cappedBuffer) flush() {}

func (c *cappedBuffer) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Bytes()
}

// TransferError is a get or put that reached its host but left files
// undone; wrapping rexec.ErrConnectionLost tells a cut connection from
// files that failed.
type TransferError struct{ Err error }

func (t *TransferError) Error() string { return t.Err.Error() }
func (t *TransferError) Unwrap() error { return t.Err }

// Worst is the exit status of a run: the worst of all hosts.
func Worst(results []rexec.HostResult) int {
	worst := 0
	for _, r := range results {
		worst = max(worst, Classify(r).Status)
	}
	return worst
}

// FailureLines is a failed host's error as lines "HOST: rexec: ...", one
// per line of the error, without the host in the message: the prefix
// gives it.
func FailureLines(r rexec.HostResult) []byte {
	msg := r.Err.Error()
	var he *rexec.HostError
	if errors.As(r.Err, &he) {
		msg = he.Err.Error()
	}
	var b bytes.Buffer
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(&b, "%s: rexec: %s\n", r.Host, termsafe.String(strings.TrimPrefix(line, "rexec: ")))
	}
	return b.Bytes()
}
