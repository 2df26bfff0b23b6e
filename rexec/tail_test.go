package rexec_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/rexec"
)

func TestTailLines(t *testing.T) {
	t.Parallel()
	_, c, served := startFiles(t)
	require.NoError(t, os.WriteFile(filepath.Join(served, "five"), []byte("1\n2\n3\n4\n5\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(served, "open"), []byte("a\nb"), 0o644))
	for _, tc := range []struct {
		path  string
		lines int64
		grep  string
		want  string
	}{
		{"five", 2, "", "4\n5\n"},
		{"five", 10, "", "1\n2\n3\n4\n5\n"},
		{"five", -1, "", "1\n2\n3\n4\n5\n"},
		{"five", 0, "", ""},
		{"open", 1, "", "b"},
		{"five", -1, "[24]", "2\n4\n"},
		{"open", -1, "b", "b"},
	} {
		var out bytes.Buffer
		pos, err := c.Tail(t.Context(), tc.path, rexec.TailOptions{Lines: tc.lines, Grep: tc.grep}, &out)
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.want, out.String(), "%+v", tc)
		if tc.grep == "" {
			fi, _ := os.Stat(filepath.Join(served, tc.path))
			assert.Equal(t, uint64(fi.Size()), pos.Offset, "%+v: the position is the end", tc)
		}
	}
	_, err := c.Tail(t.Context(), "../outside", rexec.TailOptions{}, io.Discard)
	assert.Error(t, err, "confined to the home")
	_, err = c.Tail(t.Context(), "missing", rexec.TailOptions{}, io.Discard)
	assert.True(t, rexec.IsNotExist(err), "%v", err)
}

// logWriter writes numbered lines to a log as an application would, and
// rotates it now and then as logrotate would: renamed and created anew
// (the application writes a few more lines to the renamed file before it
// reopens, as after a late HUP), or copied and truncated in place.
type logWriter struct {
	path  string
	lines int
}

func (w *logWriter) run(ctx context.Context, t *testing.T) {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	rotations := 0
	for i := 1; i <= w.lines; i++ {
		_, err := fmt.Fprintf(f, "line %06d %s\n", i, strings.Repeat("x", i%50))
		require.NoError(t, err)
		rotated := i%997 == 0
		if rotated {
			rotations++
			if rotations%2 == 1 { // rename and create
				require.NoError(t, os.Rename(w.path, fmt.Sprintf("%s.%d", w.path, rotations)))
				for j := 0; j < 3 && i < w.lines; j++ {
					i++
					_, err := fmt.Fprintf(f, "line %06d late\n", i)
					require.NoError(t, err)
				}
				require.NoError(t, f.Close())
				f, err = os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
				require.NoError(t, err)
			} else { // copytruncate
				b, err := os.ReadFile(w.path)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(fmt.Sprintf("%s.%d", w.path, rotations), b, 0o644))
				require.NoError(t, f.Truncate(0))
			}
		}
		// A busy log, but rotated far less often than the daemon looks.
		pause := time.Duration(0)
		switch {
		case rotated:
			pause = 300 * time.Millisecond
		case i%5 == 0: // 997 lines in about 400 ms: several of the daemon's looks
			pause = 2 * time.Millisecond
		}
		if pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
	}
}

// checkLines checks that out holds "line 000001" to "line N" once each,
// in order.
func checkLines(t *testing.T, out string, n int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf("line %06d ", i+1)) {
			t.Fatalf("line %d is %q (the one before: %q); %d lines in all", i+1, l, lines[max(0, i-1)], len(lines))
		}
	}
	require.Equal(t, n, len(lines), "every line once")
}

// Issue 17: tail -F across rename and copytruncate rotations while the
// connection is cut at random points (over 20 times) and resumed from the
// last position: every line exactly once.
func TestTailFollowRotationsAndCuts(t *testing.T) {
	t.Parallel()
	d, _, served := startFiles(t)
	p := execdtest.StartProxy(t, d.Addr)
	connect := func() *rexec.Client {
		return dial(t, &execdtest.Server{Addr: p.Addr, Fingerprint: d.Fingerprint})
	}
	const n = 8000
	w := &logWriter{path: filepath.Join(served, "app.log"), lines: n}
	require.NoError(t, os.WriteFile(w.path, nil, 0o644))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); w.run(ctx, t) }()

	var out execdtest.SyncBuffer
	var since *rexec.TailPos
	cuts := 0
	for ctx.Err() == nil {
		if cuts < 25 {
			p.ResetNext(true, int64(2000+cuts*1531%20000))
		}
		c := connect()
		tctx, tcancel := context.WithCancel(ctx)
		go func() { // stop once the last line is in
			defer tcancel()
			for tctx.Err() == nil {
				if strings.Contains(out.String(), fmt.Sprintf("line %06d ", n)) {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		pos, err := c.Tail(tctx, "app.log", rexec.TailOptions{Lines: -1, Follow: true, Since: since}, &out)
		_ = c.Close()
		since = &pos
		if tctx.Err() != nil && ctx.Err() == nil {
			break // all in
		}
		require.ErrorIs(t, err, rexec.ErrConnectionLost)
		cuts++
	}
	require.NoError(t, ctx.Err(), "the tail did not get every line in time")
	<-writerDone
	assert.GreaterOrEqual(t, cuts, 20, "cuts")
	checkLines(t, out.String(), n)
}

// A tail resumed while the path is missing (between a rotation's rename
// and the new file's creation) reads the rest of the file rotated away
// first, then follows the new one when it appears: no line is lost.
func TestTailResumeWhilePathMissing(t *testing.T) {
	t.Parallel()
	_, c, served := startFiles(t)
	log := filepath.Join(served, "app.log")
	require.NoError(t, os.WriteFile(log, []byte("one\ntwo\n"), 0o644))
	var out bytes.Buffer
	pos, err := c.Tail(t.Context(), "app.log", rexec.TailOptions{Lines: -1}, &out)
	require.NoError(t, err)
	require.Equal(t, "one\ntwo\n", out.String())

	// Written after the client's position, then renamed away; no new file yet.
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("three\nfour\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(log, log+".1"))

	var rest execdtest.SyncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Tail(ctx, "app.log", rexec.TailOptions{Follow: true, Since: &pos}, &rest)
		done <- err
	}()
	require.Eventually(t, func() bool { return rest.String() == "three\nfour\n" }, 10*time.Second, 5*time.Millisecond,
		"the rest of the rotated file first: %q", rest.String())
	require.NoError(t, os.WriteFile(log, []byte("five\n"), 0o644))
	require.Eventually(t, func() bool { return rest.String() == "three\nfour\nfive\n" }, 10*time.Second, 5*time.Millisecond,
		"then the new file: %q", rest.String())
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not end with its context")
	}
}
