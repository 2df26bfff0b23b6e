package execd

import (
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/xfer"
)

// quotaSet holds one usage tracker per home directory.
type quotaSet struct {
	mu sync.Mutex
	m  map[string]*quota
}

func (qs *quotaSet) get(home string) *quota {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.m == nil {
		qs.m = make(map[string]*quota)
	}
	q := qs.m[home]
	if q == nil {
		q = &quota{home: home, dirty: true}
		qs.m[home] = q
	}
	return q
}

// quota tracks the usage of one home tree: the sizes of its regular files
// (partial copies included), scanned from disk and then kept current by
// the daemon's own writes. Puts reserve the bytes they announce before
// writing any, so concurrent puts cannot together pass the limit.
// Commands and removals mark the tree dirty; it is scanned again before
// the next put once no put is in flight.
type quota struct {
	home string

	mu       sync.Mutex
	used     int64 // bytes on disk
	reserved int64 // bytes promised to puts in flight, not yet written
	active   int   // puts in flight
	dirty    bool  // used may be stale
}

// markDirty asks for a scan before the next put.
func (q *quota) markDirty() {
	q.mu.Lock()
	q.dirty = true
	q.mu.Unlock()
}

// refresh rescans a dirty tree when no put is in flight; call with q.mu held.
func (q *quota) refresh() error {
	if !q.dirty || q.active > 0 {
		return nil
	}
	n, err := treeSize(q.home)
	if err != nil {
		return err
	}
	q.used, q.dirty = n, false
	return nil
}

// HomeUsage is what a quota counts in a home: the sizes of its regular
// files (partial copies included), not following symbolic links.
func HomeUsage(dir string) (int64, error) { return treeSize(dir) }

// treeSize sums the sizes of the regular files under dir, not following
// symbolic links. Entries that vanish during the walk are skipped.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // unreadable or vanished: not counted
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring the home directory: %w", err)
	}
	return n, nil
}

// charge is one put's claim on a quota.
type charge struct {
	q      *quota
	limit  int64
	user   string
	shown  string
	left   int64 // reserved bytes not yet written
	closed bool
}

// reserve admits a put of need more bytes under limit, or refuses it
// before anything is written.
func (q *quota) reserve(limit, need int64, user, shown string) (*charge, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.refresh(); err != nil {
		return nil, err
	}
	if q.used+q.reserved+need > limit {
		return nil, xfer.Errorf(frame.CodeQuota, "%s: %s more would exceed the quota of user %s (%s of %s used)",
			shown, Size(need), user, Size(q.used+q.reserved), Size(limit))
	}
	q.reserved += need
	q.active++
	return &charge{q: q, limit: limit, user: user, shown: shown, left: need}, nil
}

// write accounts for n bytes about to be written: from the reservation
// first, then from the room left under the limit.
func (c *charge) write(n int64) error {
	q := c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	from := min(n, c.left)
	extra := n - from
	if extra > 0 && q.used+q.reserved+extra > c.limit {
		return xfer.Errorf(frame.CodeQuota, "%s: quota of user %s (%s) exceeded while receiving; the copy was discarded",
			c.shown, c.user, Size(c.limit))
	}
	c.left -= from
	q.reserved -= from
	q.used += n
	return nil
}

// end releases what is left of the reservation and applies delta to the
// usage: minus the replaced file on a commit, minus the partial copy on a
// discard, 0 when the partial copy is kept.
func (c *charge) end(delta int64) {
	if c == nil || c.closed {
		return
	}
	c.closed = true
	q := c.q
	q.mu.Lock()
	q.reserved -= c.left
	q.used = max(q.used+delta, 0)
	q.active--
	q.mu.Unlock()
}

// quotaWriter charges every write before it reaches the file.
type quotaWriter struct {
	w io.Writer
	c *charge
}

func (w *quotaWriter) Write(p []byte) (int, error) {
	if err := w.c.write(int64(len(p))); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// regularSize is the size of name under root if it is a regular file, else 0.
func regularSize(root xfer.FS, name string) int64 {
	fi, err := root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	return fi.Size()
}
