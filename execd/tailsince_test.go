package execd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLineStamp(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		line string
		want time.Time
		ok   bool
	}{
		{"2026-12-01T10:00:00Z app started", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), true},
		{"2026-12-01T10:00:00.123+08:00\tx", time.Date(2026, 12, 1, 2, 0, 0, 123e6, time.UTC), true},
		{"2026-11-30 23:59:59,120 INFO x", time.Date(2026, 11, 30, 23, 59, 59, 0, time.Local), true},
		{"Nov 30 23:59:59 host sshd[1]: x", time.Date(2026, 11, 30, 23, 59, 59, 0, time.Local), true},
		{"Dec 24 08:00:00 host x", time.Date(2025, 12, 24, 8, 0, 0, 0, time.Local), true}, // in the last twelve months
		{`127.0.0.1 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1`, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), true},
		{"    at com.example.Main(Main.java:1)", time.Time{}, false},
		{"", time.Time{}, false},
		{"2026-13-01T10:00:00Z bad month", time.Time{}, false},
		{"[", time.Time{}, false},
	} {
		got, ok := lineStamp([]byte(tc.line), now)
		assert.Equal(t, tc.ok, ok, tc.line)
		if ok {
			assert.True(t, tc.want.Equal(got), "%s: %s, want %s", tc.line, got, tc.want)
		}
	}
}

// firstLineSince against a line-by-line answer, on a log of 100,000
// lines (some without a stamp: a stack trace's) and on small ones.
func TestFirstLineSince(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	var starts []int64
	var stamps []time.Time
	for i := range 100000 {
		starts = append(starts, int64(b.Len()))
		ts := t0.Add(time.Duration(i/3) * time.Second) // three lines a second
		stamps = append(stamps, ts)
		fmt.Fprintf(&b, "%s line %d\n", ts.Format(time.RFC3339), i)
		if i%1000 == 7 {
			b.WriteString("    at a stack frame\n    at another\n")
		}
	}
	path := filepath.Join(t.TempDir(), "app.log")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	size := int64(b.Len())
	want := func(since time.Time) uint64 {
		for i, ts := range stamps {
			if !ts.Before(since) {
				return uint64(starts[i])
			}
		}
		return uint64(size)
	}
	for _, since := range []time.Time{
		t0.Add(-time.Hour), t0, t0.Add(time.Second), t0.Add(1500 * time.Millisecond), t0.Add(333 * time.Second),
		t0.Add(10000 * time.Second), t0.Add(33332 * time.Second), t0.Add(33333 * time.Second), t0.Add(time.Hour * 24),
	} {
		got, err := firstLineSince(f, size, since)
		require.NoError(t, err)
		assert.Equal(t, want(since), got, "since %s", since)
	}

	noStamps := filepath.Join(t.TempDir(), "plain.log")
	require.NoError(t, os.WriteFile(noStamps, []byte("no time here\nnor here\n"), 0o600))
	g, err := os.Open(noStamps)
	require.NoError(t, err)
	defer g.Close()
	_, err = firstLineSince(g, 22, t0)
	require.ErrorIs(t, err, errNoStamps)
}

func FuzzLineStamp(f *testing.F) {
	for _, s := range []string{"2026-12-01T10:00:00Z x", "2026-11-30 23:59:59 x", "Nov 30 23:59:59 x", "[01/Dec/2026:10:00:00 +0000]", "    at x", "\xff\xfe["} {
		f.Add([]byte(s))
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, line []byte) {
		ts, ok := lineStamp(line, now)
		if !ok && !ts.IsZero() {
			t.Fatalf("no stamp, but a time: %v", ts)
		}
		// And a file of it: never a panic, an offset within the file.
		path := filepath.Join(t.TempDir(), "f")
		data := append(append(append([]byte{}, line...), '\n'), line...)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		off, err := firstLineSince(fh, int64(len(data)), now)
		if err == nil && off > uint64(len(data)) {
			t.Fatalf("offset %d past the end (%d)", off, len(data))
		}
	})
}
