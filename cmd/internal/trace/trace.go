// Package trace prints frames as they cross the wire, for people learning
// or debugging the protocol: rexec --trace and execd --trace print text,
// --trace-file writes JSON lines. Passwords in auth frames are masked.
package trace

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/execd-project/execd/frame"
)

// previewLen is how much of a data payload a trace shows.
const previewLen = 64

// Writer is a frame.Tracer that writes to W: text, or JSON lines.
type Writer struct {
	// Label names the side and connection, e.g. "rexec" or "execd 127.0.0.1:50312".
	Label string
	// JSON writes one JSON object per frame instead of text.
	JSON bool

	mu    *sync.Mutex // shared by every Writer on one stream
	w     io.Writer
	start time.Time
}

// New returns a tracer writing to w. Writers made with For share its lock,
// so that frames of several connections never mix on one stream.
func New(w io.Writer, label string, jsonLines bool) *Writer {
	return &Writer{Label: label, JSON: jsonLines, mu: &sync.Mutex{}, w: w, start: time.Now()}
}

// For returns a tracer for another connection on the same stream.
func (t *Writer) For(label string) *Writer {
	c := *t
	c.Label = label
	return &c
}

// Record is one traced frame, as --trace-file writes it.
type Record struct {
	Time    float64         `json:"t"` // seconds since the trace began
	Side    string          `json:"side"`
	Dir     string          `json:"dir"` // "send" or "recv"
	Type    string          `json:"type"`
	Code    uint8           `json:"type_code"`
	Channel uint32          `json:"channel"`
	Flags   uint8           `json:"flags"`
	Length  uint32          `json:"length"`
	Header  string          `json:"header"` // the 12 header bytes in hex
	JSON    json.RawMessage `json:"json,omitempty"`
	Preview string          `json:"preview,omitempty"` // data: the first bytes, quoted
}

// TraceFrame implements frame.Tracer.
func (t *Writer) TraceFrame(out bool, h frame.Header, payload []byte) {
	r := Record{
		Time: time.Since(t.start).Seconds(), Side: t.Label, Dir: "recv",
		Type: h.Type.String(), Code: uint8(h.Type), Channel: h.Channel, Flags: uint8(h.Flags), Length: h.Length,
		Header: hex.EncodeToString(frame.AppendHeader(nil, h)),
	}
	if out {
		r.Dir = "send"
	}
	switch {
	case h.Type.IsData():
		r.Preview = preview(payload)
	case len(payload) > 0 && json.Valid(payload):
		r.JSON = mask(h.Type, payload)
	case h.Type == frame.Auth:
		r.Preview = "(not JSON; hidden: it may hold a password)"
	case len(payload) > 0:
		r.Preview = preview(payload)
	}
	var b bytes.Buffer
	if t.JSON {
		line, _ := json.Marshal(r) // plain fields and valid JSON: cannot fail
		b.Write(line)
		b.WriteByte('\n')
	} else {
		arrow := "<-"
		if out {
			arrow = "->"
		}
		fmt.Fprintf(&b, "%9.3fms %s %s %-9s ch=%-3d flags=%02x len=%-6d [% x]", r.Time*1000, t.Label, arrow, r.Type, r.Channel, r.Flags, r.Length, frame.AppendHeader(nil, h))
		switch {
		case r.JSON != nil:
			var pretty bytes.Buffer
			_ = json.Indent(&pretty, r.JSON, "    ", "  ") // valid JSON: cannot fail
			b.WriteString("\n    ")
			b.Write(pretty.Bytes())
		case r.Preview != "":
			b.WriteString(" ")
			b.WriteString(r.Preview)
		}
		b.WriteByte('\n')
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _ = t.w.Write(b.Bytes()) // a trace that cannot be written must not stop the connection
}

// mask hides secrets: the password of an auth frame.
func mask(t frame.Type, p []byte) json.RawMessage {
	if t != frame.Auth {
		return append(json.RawMessage(nil), p...)
	}
	var m map[string]any
	if json.Unmarshal(p, &m) != nil {
		return append(json.RawMessage(nil), p...)
	}
	if _, ok := m["password"]; ok {
		m["password"] = "********"
	}
	out, _ := json.Marshal(m) // decoded from JSON: encodes again
	return out
}

// preview quotes the first bytes of a payload.
func preview(p []byte) string {
	more := ""
	if len(p) > previewLen {
		p, more = p[:previewLen], "…"
	}
	if !utf8.Valid(p) {
		// cut inside a character, or binary: show it quoted all the same
		return strconv.QuoteToASCII(string(p)) + more
	}
	return strconv.Quote(string(p)) + more
}

// Tee traces to each of ts.
func Tee(ts ...*Writer) frame.Tracer {
	var live []*Writer
	for _, t := range ts {
		if t != nil {
			live = append(live, t)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return tee(live)
}

type tee []*Writer

func (t tee) TraceFrame(out bool, h frame.Header, payload []byte) {
	for _, w := range t {
		w.TraceFrame(out, h, payload)
	}
}

// Pair is a text trace and a JSON-lines trace, either of which may be nil,
// that label each connection.
type Pair struct{ Text, File *Writer }

// For returns the tracer of one connection, or nil when there is none.
func (p Pair) For(label string) frame.Tracer {
	var a, b *Writer
	if p.Text != nil {
		a = p.Text.For(label)
	}
	if p.File != nil {
		b = p.File.For(label)
	}
	return Tee(a, b)
}
