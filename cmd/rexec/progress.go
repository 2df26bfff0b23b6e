package main

import (
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/rexec"
)

// progress draws one bar per file in flight (bytes, rate, ETA), redrawn
// at most ten times a second; finished files leave one line above, as
// scp's do.
type progress struct {
	p *mpb.Progress
}

func newProgress(w io.Writer) *progress {
	return &progress{p: mpb.New(
		mpb.WithOutput(w),
		mpb.WithRefreshRate(100*time.Millisecond),
		mpb.WithWidth(100),
		mpb.PopCompletedMode(),
		mpb.WithAutoRefresh(),
	)}
}

// File implements rexec.Observer.
func (p *progress) File(name string, size, resumed uint64) rexec.FileTracker {
	bar := p.p.AddBar(int64(size),
		mpb.PrependDecorators(decor.Name(shorten(termsafe.String(name), 32), decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
			decor.OnComplete(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace), ""),
			// The time left, then "done" or "failed" in its column (a
			// separate decorator would glue "failed" to the last time).
			decor.OnAbort(decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), "done"), "failed"),
		),
	)
	bar.SetCurrent(int64(resumed))
	if size == resumed {
		bar.SetTotal(int64(size), true)
	}
	return &barTracker{bar: bar, last: time.Now()}
}

// Wait waits for the last redraw.
func (p *progress) Wait() { p.p.Wait() }

type barTracker struct {
	mu   sync.Mutex
	bar  *mpb.Bar
	last time.Time
}

func (t *barTracker) Add(n int) {
	t.mu.Lock()
	now := time.Now()
	t.bar.EwmaIncrBy(n, now.Sub(t.last))
	t.last = now
	t.mu.Unlock()
}

func (t *barTracker) Done(err error) {
	if err != nil {
		t.bar.Abort(false)
		return
	}
	t.bar.SetTotal(-1, true) // complete, whatever the count says
}

// shorten keeps the end of a long name, which tells files apart.
func shorten(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return "…" + string(r[len(r)-max+1:])
}
