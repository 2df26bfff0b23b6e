package lab

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/execd-project/execd/cmd/internal/units"
	"github.com/execd-project/execd/frame"
)

// colours of messages in the read view, in turn.
var msgColors = [...]string{"32", "33", "36", "35", "34", "92", "93", "96", "95", "94"}

// View prints what the receiver saw: one line per read() with its number,
// byte range, length and time, the message boundaries drawn over the
// bytes ('|'), then each message's verdict.
func View(w io.Writer, r *Result, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	fmt.Fprintf(w, "== %s: %s\n", r.name(), r.Strategy.Describe())
	fmt.Fprintf(w, "   %d messages, %s on the wire; %s\n", len(r.Sent), units.Bytes(uint64(r.Bytes), " "), r.Knobs)
	if r.Err != nil && len(r.Reads) == 0 {
		fmt.Fprintf(w, "   FAILED: %v\n\n", r.Err)
		return
	}
	for i, rd := range r.Reads {
		fmt.Fprintf(w, "   read #%-3d bytes %5d-%-5d %5d B  +%-8s %s\n", i+1, rd.Start, rd.End-1, rd.End-rd.Start,
			fmtDur(rd.At), drawRead(rd, r.Spans, r.Wire, paint))
	}
	for i, v := range r.Verdicts {
		code := "32"
		if v != Intact {
			code = "31"
		}
		fmt.Fprintf(w, "   message %-3d %6d B  %s  %s\n", i+1, len(r.Sent[i]), paint(code, fmt.Sprintf("%-6s", v)), preview(r.Sent[i], 40))
	}
	if r.Err != nil {
		fmt.Fprintf(w, "   receiver error: %v\n", r.Err)
	}
	fmt.Fprintln(w)
}

// name is the run's label, or its strategy.
func (r *Result) name() string {
	if r.Label != "" {
		return r.Label
	}
	return string(r.Strategy)
}

// String describes the knobs in one line.
func (k Knobs) String() string {
	parts := []string{fmt.Sprintf("recv buffer %d", k.readBuffer())}
	if k.ReaderDelay > 0 {
		parts = append(parts, "reader delay "+k.ReaderDelay.String())
	}
	if k.Batch {
		parts = append(parts, "batched into one write")
	}
	if k.Trickle > 0 {
		parts = append(parts, fmt.Sprintf("trickle %d B per write, %v apart", k.Trickle, k.TricklePause))
	}
	if k.SplitHeader {
		parts = append(parts, "header and body in two writes")
	}
	if k.Reply {
		parts = append(parts, "each message answered")
	}
	if k.Nagle {
		parts = append(parts, "Nagle on")
	} else {
		parts = append(parts, "Nagle off")
	}
	return strings.Join(parts, ", ")
}

// drawRead shows a read's bytes, split where messages, headers and bodies
// begin and end: '|' between messages, headers in hex within ⟨⟩.
func drawRead(rd Read, spans []Span, wire []byte, paint func(code, s string) string) string {
	var b strings.Builder
	budget := 90
	pos := rd.Start
	for pos < rd.End && budget > 0 {
		mi := spanAt(spans, pos)
		if mi < 0 {
			break
		}
		sp := spans[mi]
		if pos == sp.Start && pos != rd.Start {
			b.WriteString("|")
		}
		// the piece up to the next boundary within this read
		end := rd.End
		for _, x := range []int64{sp.BodyStart, sp.BodyEnd, sp.End} {
			if x > pos && x < end {
				end = x
			}
		}
		seg := wire[pos:end]
		var text string
		if pos >= sp.BodyStart && pos < sp.BodyEnd {
			text = preview(seg, budget)
		} else {
			text = "⟨" + hexPreview(seg, budget/2) + "⟩"
		}
		budget -= utf8.RuneCountInString(text)
		b.WriteString(paint(msgColors[mi%len(msgColors)], text))
		pos = end
	}
	if pos < rd.End {
		b.WriteString("…")
	}
	return b.String()
}

// spanAt is the message whose span holds pos.
func spanAt(spans []Span, pos int64) int {
	for i, sp := range spans {
		if pos >= sp.Start && pos < sp.End {
			return i
		}
	}
	return -1
}

// preview quotes bytes for one line, escaping what is not printable.
func preview(b []byte, max int) string {
	q := strconv.Quote(string(b))
	q = q[1 : len(q)-1]
	if utf8.RuneCountInString(q) > max {
		r := []rune(q)
		return string(r[:max-1]) + "…"
	}
	return q
}

func hexPreview(b []byte, max int) string {
	s := fmt.Sprintf("% x", b)
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) + "ms"
}

// Table compares runs: messages recovered, throughput, latency, failures.
func Table(w io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\trecovered\tthroughput\tp50\tp99\ton the wire\tnotes")
	for _, r := range results {
		label := r.name()
		notes := verdictCounts(r)
		if r.Err != nil {
			notes = strings.TrimSpace(notes + " " + oneLine(r.Err))
		}
		tp, p50, p99 := "-", "-", "-"
		if r.Recovered() > 0 {
			tp = units.Bytes(uint64(r.Throughput()), " ") + "/s"
			p50, p99 = fmtDur(r.Percentile(50)), fmtDur(r.Percentile(99))
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", label, r.Recovered(), len(r.Sent), tp, p50, p99, units.Bytes(uint64(r.Bytes), " "), notes)
	}
	_ = tw.Flush() // the writer is the caller's
}

func verdictCounts(r *Result) string {
	counts := map[Verdict]int{}
	for _, v := range r.Verdicts {
		counts[v]++
	}
	var parts []string
	for _, v := range []Verdict{Glued, Split, Broken, Lost} {
		if counts[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
		}
	}
	return strings.Join(parts, ", ")
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// Overflow tells which headers can carry the length of a file of size
// bytes (a sparse file makes a 2 GiB+ one cheaply). Nothing is sent: the
// header is built as each strategy's sender would, and fails or not.
func Overflow(w io.Writer, size int64) (failed []Strategy) {
	fmt.Fprintf(w, "== a file of %d bytes (%s): can the header say so?\n", size, units.Bytes(uint64(size), " "))
	for _, s := range []Strategy{LenI, LenBE, JSONHeader, JSONHeader8, Frames} {
		if s == Frames {
			fmt.Fprintf(w, "   %-13s ok: a file goes in many data frames of at most %s; its size travels as a u64 in the open message\n", s, units.Bytes(frame.MaxMaxPayload, " "))
			continue
		}
		parts, err := s.encode(nil, size)
		if err != nil {
			fmt.Fprintf(w, "   %-13s FAILS: %s\n", s, strings.TrimPrefix(err.Error(), ErrHeaderOverflow.Error()+": "))
			failed = append(failed, s)
			continue
		}
		fmt.Fprintf(w, "   %-13s ok: header % x\n", s, parts[0].b)
	}
	fmt.Fprintln(w)
	return failed
}

// SparseFile makes a sparse file of size bytes at path: it takes no disk
// space, and stat reports its full size.
func SparseFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
