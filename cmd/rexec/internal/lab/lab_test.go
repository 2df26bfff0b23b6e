package lab

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run(t *testing.T, s Strategy, msgs [][]byte, k Knobs) *Result {
	t.Helper()
	r, err := Run(t.Context(), s, msgs, k)
	require.NoError(t, err)
	return r
}

func verdicts(r *Result) []Verdict { return r.Verdicts }

func all(v Verdict, n int) []Verdict {
	out := make([]Verdict, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// The classic demo's five small messages arrive glued when the reader is
// slower than the writer, every time.
func TestReaderDelayGlues(t *testing.T) {
	for i := range 5 {
		r := run(t, Raw, Numbered("hello", 5), Knobs{ReaderDelay: 30 * time.Millisecond})
		require.NoError(t, r.Err)
		assert.Equal(t, all(Glued, 5), verdicts(r), "run %d", i)
		require.Len(t, r.Reads, 1, "run %d: one read holds all five", i)
		assert.Equal(t, "hello 1hello 2hello 3hello 4hello 5", string(r.Got[0]))
		assert.Equal(t, 0, r.Recovered())
	}
}

// With a 1-byte receive buffer every message arrives in pieces.
func TestOneByteBufferSplits(t *testing.T) {
	for i := range 3 {
		r := run(t, Raw, Numbered("hello", 5), Knobs{ReadBuffer: 1})
		assert.Equal(t, all(Split, 5), verdicts(r), "run %d", i)
		assert.Len(t, r.Reads, 35, "one read per byte")
		for _, rd := range r.Reads {
			assert.Equal(t, int64(1), rd.End-rd.Start)
		}
	}
}

// A trickling sender splits messages; batching glues them.
func TestTrickleAndBatch(t *testing.T) {
	r := run(t, Raw, Numbered("hello", 3), Knobs{Trickle: 2, TricklePause: 5 * time.Millisecond})
	assert.Equal(t, all(Split, 3), verdicts(r))
	r = run(t, Raw, Numbered("hello", 3), Knobs{Batch: true, ReaderDelay: 5 * time.Millisecond})
	assert.Equal(t, all(Glued, 3), verdicts(r))
}

// Every framed strategy recovers every message intact, whatever the
// knobs do to the reads.
func TestFramingAlwaysRecovers(t *testing.T) {
	knobs := map[string]Knobs{
		"plain":        {},
		"reader delay": {ReaderDelay: 20 * time.Millisecond},
		"1-byte reads": {ReadBuffer: 1},
		"7-byte reads": {ReadBuffer: 7},
		"batched":      {Batch: true, ReaderDelay: 5 * time.Millisecond},
		"trickle":      {Trickle: 3, TricklePause: time.Millisecond},
		"split header": {SplitHeader: true, Nagle: true},
	}
	workloads := map[string][][]byte{
		"small":   Numbered("hello", 5),
		"listing": {Listing(40), []byte("date\n"), {}},
	}
	for _, s := range []Strategy{LenI, LenBE, JSONHeader, JSONHeader8, Frames, Delimiter} {
		for kn, k := range knobs {
			for wn, msgs := range workloads {
				if s == Delimiter && wn == "listing" {
					continue // lines of text hold the delimiter: see TestDelimiterBreaksOnBinary
				}
				t.Run(string(s)+"/"+kn+"/"+wn, func(t *testing.T) {
					r := run(t, s, msgs, k)
					require.NoError(t, r.Err)
					assert.Equal(t, all(Intact, len(msgs)), verdicts(r))
					require.Len(t, r.Got, len(msgs))
					for i := range msgs {
						assert.True(t, bytes.Equal(msgs[i], r.Got[i]), "message %d", i)
					}
				})
			}
		}
	}
}

// A delimiter breaks on binary data that holds it; a length prefix does not.
func TestDelimiterBreaksOnBinary(t *testing.T) {
	msgs := Binary(5, 200)
	r := run(t, Delimiter, msgs, Knobs{})
	assert.Equal(t, all(Broken, 5), verdicts(r))
	assert.Greater(t, len(r.Got), 5, "messages cut at the newlines they hold")
	r = run(t, LenBE, msgs, Knobs{})
	assert.Equal(t, all(Intact, 5), verdicts(r))
}

// Write header, write body, wait for the answer: with Nagle on, the body
// waits for the receiver's delayed ack.
func TestNagleStall(t *testing.T) {
	msgs := Numbered("request", 8)
	on := run(t, LenBE, msgs, Knobs{SplitHeader: true, Reply: true, Nagle: true})
	off := run(t, LenBE, msgs, Knobs{SplitHeader: true, Reply: true})
	require.Equal(t, 8, on.Recovered())
	require.Equal(t, 8, off.Recovered())
	t.Logf("p50 with Nagle on %v, off %v", on.Percentile(50), off.Percentile(50))
	assert.Greater(t, on.Percentile(50), 30*time.Millisecond, "the write-write-read stall")
	assert.Less(t, off.Percentile(50), 5*time.Millisecond)
}

// The sleep strategy holds only while the reader keeps up.
func TestSleepNeedsAFastReader(t *testing.T) {
	r := run(t, Sleep, Numbered("hello", 3), Knobs{Pause: 40 * time.Millisecond})
	assert.Equal(t, all(Intact, 3), verdicts(r))
	r = run(t, Sleep, Numbered("hello", 3), Knobs{Pause: 10 * time.Millisecond, ReaderDelay: 60 * time.Millisecond})
	assert.Contains(t, verdicts(r), Glued)
}

// The ack handshake keeps small messages apart but not a large one.
func TestAckLimits(t *testing.T) {
	r := run(t, Ack, Numbered("hello", 5), Knobs{ReaderDelay: 10 * time.Millisecond})
	assert.Equal(t, all(Intact, 5), verdicts(r))
	r = run(t, Ack, [][]byte{Listing(40), []byte("date\n")}, Knobs{})
	assert.Equal(t, Split, r.Verdicts[0], "larger than one recv(1024)")
}

// The 'i' header overflows at 2 GiB, shown with a sparse file.
func TestOverflow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.iso")
	const size = 2<<30 + 1
	require.NoError(t, SparseFile(path, size))
	var b strings.Builder
	failed := Overflow(&b, size)
	assert.Equal(t, []Strategy{LenI}, failed)
	assert.Contains(t, b.String(), "len-i         FAILS: struct.error: 'i' format requires -2147483648 <= number <= 2147483647, got 2147483649")
	assert.Contains(t, b.String(), "len-be        ok: header 80 00 00 01")
	failed = Overflow(&b, 4<<30)
	assert.Equal(t, []Strategy{LenI, LenBE}, failed)
}

// The read view draws message boundaries over the reads.
func TestView(t *testing.T) {
	r := run(t, Raw, Numbered("hello", 3), Knobs{ReaderDelay: 20 * time.Millisecond})
	var b strings.Builder
	View(&b, r, false)
	out := b.String()
	assert.Contains(t, out, "== raw: no framing")
	assert.Regexp(t, `read #1 +bytes +0-20 +21 B +\+[0-9.]+ms +hello 1\|hello 2\|hello 3\n`, out)
	assert.Contains(t, out, "message 1        7 B  glued ")
	r = run(t, LenBE, Numbered("hello", 2), Knobs{ReaderDelay: 20 * time.Millisecond})
	b.Reset()
	View(&b, r, true)
	assert.Contains(t, b.String(), "\x1b[32m⟨00 00 00 07⟩\x1b[0m\x1b[32mhello 1\x1b[0m|\x1b[33m⟨00 00 00 07⟩")

	b.Reset()
	Table(&b, []*Result{r})
	assert.Regexp(t, `len-be +2/2 +`, b.String())
}

// Every preset runs, and its runs say what the lesson says.
func TestPresets(t *testing.T) {
	for _, name := range PresetNames() {
		p, _ := LookupPreset(name)
		assert.NotEmpty(t, p.Lesson)
		for _, v := range p.Runs(nil) {
			r := run(t, v.Strategy, p.Messages(), v.Knobs)
			if v.Strategy == Raw && name != "trickle" && name != "split" {
				assert.Equal(t, 0, r.Recovered(), "%s: raw loses the boundaries", name)
			}
			if v.Strategy == Frames || v.Strategy == LenI || v.Strategy == LenBE || v.Strategy == JSONHeader {
				assert.Equal(t, len(r.Sent), r.Recovered(), "%s: %s recovers everything", name, v.Strategy)
			}
		}
	}
}

func TestParseStrategy(t *testing.T) {
	for _, s := range Strategies() {
		got, err := ParseStrategy(string(s))
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	_, err := ParseStrategy("pigeon")
	assert.ErrorContains(t, err, "unknown strategy \"pigeon\"")
}

// UDP keeps boundaries, truncates a datagram larger than the buffer, and
// refuses one beyond 65,507 bytes.
func TestUDP(t *testing.T) {
	r, err := UDP(t.Context(), 1024)
	require.NoError(t, err)
	assert.Equal(t, r.Sent, r.Got, "one read, one datagram, even when read late")
	assert.Equal(t, 2050, r.BigSent)
	assert.Equal(t, 1024, r.BigGot, "truncated to the buffer")
	assert.Equal(t, "next", string(r.AfterBig), "the rest of the big one is gone")
	assert.NoError(t, r.MaxOK)
	require.Error(t, r.OverLimit)
	assert.Contains(t, r.OverLimit.Error(), "message too long")
	var b strings.Builder
	ViewUDP(&b, r, 1024)
	assert.Contains(t, b.String(), "got 1024 bytes; the other 1026 are gone")
}
