package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/execd-project/execd/internal/hostlist"
	"github.com/execd-project/execd/internal/termsafe"
	"github.com/execd-project/execd/rexec"
)

// maxLine is the longest line held back waiting for its newline; a longer
// one is printed in pieces, each with the host's prefix.
const maxLine = 64 << 10

// maxOutput bounds what --group and --json keep of each stream of each
// host.
const maxOutput = 16 << 20

// hostColors are the ANSI colours of host prefixes, in turn (no red,
// which reads as an error).
var hostColors = [...]string{"32", "33", "34", "35", "36", "92", "93", "94", "95", "96"}

// useColor decides whether prefixes are coloured: --color=auto colours on a
// terminal unless NO_COLOR is set or TERM is dumb.
func useColor(mode string, e env) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		return isTerminal(e.stdout) && e.getenv("NO_COLOR") == "" && e.getenv("TERM") != "dumb", nil
	}
	return false, fmt.Errorf("--color wants auto, always or never, got %q", mode)
}

// fanPrinter shows the output of many hosts: each line with its host's
// prefix as it arrives (the default), grouped by identical output at the
// end (--group), or one JSON object per host as each finishes (--json).
type fanPrinter struct {
	e      env
	opts   *fanOptions
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

func newFanPrinter(e env, hosts []string, opts *fanOptions, color bool) *fanPrinter {
	p := &fanPrinter{
		e: e, opts: opts,
		out:    &lockedWriter{w: e.stdout},
		errOut: &lockedWriter{w: e.stderr},
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
		if opts.group || opts.json {
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
func (p *fanPrinter) writers(host string) (io.Writer, io.Writer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ho := p.hosts[host]
	return ho.stdout, ho.stderr
}

// done is called as each host finishes.
func (p *fanPrinter) done(r rexec.HostResult) {
	p.mu.Lock()
	ho := p.hosts[r.Host]
	p.mu.Unlock()
	ho.stdout.flush()
	ho.stderr.flush()
	o := classify(r)
	switch {
	case p.opts.json:
		b, _ := json.Marshal(hostRecord(r, o, ho)) // plain types: cannot fail
		p.out.write(append(b, '\n'))
	case p.opts.group:
	case o.state == stateOK, o.state == stateInterrupted:
	case !(o.state == stateFailed && o.signal == "" && !o.timedOut):
		// a plain non-zero exit speaks for itself in the summary
		p.errOut.write([]byte(fmt.Sprintf("%s: rexec: %s\n", r.Host, termsafe.String(o.message()))))
	}
}

// finish prints what waits for every host: the groups of --group.
func (p *fanPrinter) finish(results []rexec.HostResult) {
	if !p.opts.group {
		return
	}
	type group struct {
		hosts []string
		o     outcome
		out   []byte
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, r := range results {
		ho := p.hosts[r.Host]
		o := classify(r)
		var out bytes.Buffer
		out.Write(ho.stdout.(*cappedBuffer).bytes())
		out.Write(ho.stderr.(*cappedBuffer).bytes())
		key := o.state + "\x00" + o.reason + "\x00" + out.String()
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
		if g.o.state != stateOK {
			title += ": " + stateLabel(g.o.state) + ": " + g.o.reason
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

// hostJSON is one line of --json.
type hostJSON struct {
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

func hostRecord(r rexec.HostResult, o outcome, ho *hostOutput) hostJSON {
	stdout, stderr := ho.stdout.(*cappedBuffer), ho.stderr.(*cappedBuffer)
	j := hostJSON{
		Host: r.Host, State: o.state, Status: o.status, ExitCode: o.exit,
		Signal: o.signal, TimedOut: o.timedOut,
		Stdout: string(stdout.bytes()), Stderr: string(stderr.bytes()),
		Truncated: stdout.truncated || stderr.truncated,
		Duration:  float64(r.Duration().Microseconds()) / 1e6,
	}
	if o.state != stateOK {
		j.Error = o.reason
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
