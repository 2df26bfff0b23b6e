package execd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/asuser"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/xfer"
)

// tailPoll is how often a followed file is looked at for new data, a
// rotation or a truncation.
const tailPoll = 100 * time.Millisecond

// tailHead is how many bytes at a file's start are kept to notice that
// it was truncated and written again past where we were.
const tailHead = 64

// tailChan follows one file (KindTail): records of which file and which
// offset, then its bytes (or, with grep, its matching lines).
type tailChan struct {
	fileBase
	out  *mux.Outbound
	req  *frame.TailRequest
	re   *regexp.Regexp
	root xfer.FS
	path string
	rec  []byte // records not yet written

	cur   *tailed
	carry []byte // with grep: a line not yet ended, starting at offset at
	at    uint64
}

// tailed is the file being read.
type tailed struct {
	f        *os.File
	dev, ino uint64
	off      uint64
	head     []byte // its first bytes, as read
	last     []byte // the bytes before off, up to tailHead of them
}

func (t *tailChan) run() {
	stop := context.AfterFunc(t.ctx, func() { t.out.Abort(context.Cause(t.ctx)) })
	defer stop()
	t.req = t.m.Tail
	if t.req.Grep != "" {
		t.re = regexp.MustCompile(t.req.Grep) // checked by Validate
	}
	root, err := t.openRoot()
	if err != nil {
		t.fail(err)
		return
	}
	defer root.Close()
	t.root = root
	if t.path, err = t.resolve(t.c.account().startDir(), t.m.Path); err != nil {
		t.fail(err)
		return
	}
	t.m.Path = t.path
	cur, err := t.open()
	if err != nil && !(t.req.Follow && errors.Is(err, fs.ErrNotExist)) {
		t.fail(err)
		return
	}
	if !t.accept(&frame.OpenOKMsg{Window: 1}) {
		return
	}
	t.audit(frame.KindTail, t.path, "", nil, "", nil)
	defer func() {
		if t.cur != nil {
			_ = t.cur.f.Close()
		}
	}()
	if cur != nil {
		if err := t.begin(cur); err != nil {
			t.end(err)
			return
		}
	} else if t.req.Since == nil {
		// Said, as tail -F says it, rather than a silence the user
		// cannot tell from a quiet file (once: not again at a resume).
		t.rec = frame.AppendTailRecord(t.rec, &frame.TailRecord{File: &frame.TailFile{Reason: tailMissing}})
		if err := t.flush(); err != nil {
			t.end(err)
			return
		}
	} else if _, err := t.resumeRotated(t.req.Since); err != nil {
		t.end(err)
		return
	}
	t.end(t.follow())
}

// tailMissing is the reason a followed file that does not exist yet is
// announced with.
const tailMissing = "no such file or directory (yet): following it from when it appears"

// open opens the file at the path, a regular file.
func (t *tailChan) open() (*tailed, error) {
	f, fi, err := t.c.account().openRead(t.root, t.path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, xfer.Errorf(frame.CodeNotSupported, "%s: not a regular file", xfer.Display(t.path))
	}
	dev, ino := fileID(fi)
	return &tailed{f: f, dev: dev, ino: ino}, nil
}

// begin starts with the first file: where the request says, or where a
// previous tail stopped, reading the rest of a file rotated away meanwhile
// first.
func (t *tailChan) begin(cur *tailed) error {
	size, err := fileSize(cur.f)
	if err != nil {
		return err
	}
	since := t.req.Since
	if since != nil && since.Dev == 0 && since.Ino == 0 {
		// An offset alone (rexec tail --since): of this file.
		since = &frame.TailPos{Dev: cur.dev, Ino: cur.ino, Offset: since.Offset}
	}
	switch {
	case since == nil && t.req.SinceNS != 0:
		off, err := firstLineSince(cur.f, size, time.Unix(0, t.req.SinceNS))
		if err != nil {
			return err
		}
		return t.switchTo(cur, off, "start")
	case since == nil:
		off, err := lastLines(cur.f, size, t.req.Lines)
		if err != nil {
			return err
		}
		return t.switchTo(cur, off, "start")
	case since.Dev == cur.dev && since.Ino == cur.ino && since.Offset <= uint64(size) && endsWith(cur.f, since.Offset, since.Last):
		return t.switchTo(cur, since.Offset, "resumed")
	case since.Dev == cur.dev && since.Ino == cur.ino:
		// Truncated (and perhaps written again) meanwhile: the rest may be
		// in the copy a copytruncate made.
		if cp := t.findCopy(since.Offset, nil, since.Last); cp != nil {
			if err := t.sendRest(cp, since.Offset); err != nil {
				return err
			}
		}
		return t.switchTo(cur, 0, "truncated")
	}
	switch found, err := t.resumeRotated(since); {
	case err != nil:
		return err
	case found:
		return t.switchTo(cur, 0, "rotated")
	}
	return t.switchTo(cur, 0, "rotated while away: the rest of the old file is gone")
}

// resumeRotated reads the rest of the file a previous tail read, when a
// rotation renamed it away (the path holds a new file, or none yet,
// between the rename and the creation); found says whether it was there.
func (t *tailChan) resumeRotated(since *frame.TailPos) (found bool, err error) {
	old := t.findRotated(since)
	if old == nil {
		return false, nil
	}
	if err := t.switchTo(old, since.Offset, "resumed in the file rotated away meanwhile"); err != nil {
		return true, err
	}
	return true, t.drain()
}

// siblings lists the directory of the followed file (a rotated file or a
// copy is beside it): its path and its entries, none when unreadable.
func (t *tailChan) siblings() (string, []fs.DirEntry) {
	dir := path.Dir(t.path)
	d, err := t.root.Open(dir)
	if err != nil {
		return dir, nil
	}
	defer d.Close()
	ents, _ := d.ReadDir(-1) // what could be read
	return dir, ents
}

// findRotated looks in the file's directory for the file a previous tail
// read (a rotation renames it beside the new one).
func (t *tailChan) findRotated(p *frame.TailPos) *tailed {
	if p.Dev == 0 && p.Ino == 0 {
		return nil
	}
	dir, ents := t.siblings()
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if dev, ino := fileID(fi); dev == p.Dev && ino == p.Ino {
			f, fi, err := t.c.account().openRead(t.root, path.Join(dir, e.Name()))
			if err != nil {
				return nil
			}
			if dev2, ino2 := fileID(fi); dev2 != p.Dev || ino2 != p.Ino || uint64(fi.Size()) < p.Offset || !endsWith(f, p.Offset, p.Last) {
				_ = f.Close()
				return nil
			}
			return &tailed{f: f, dev: dev, ino: ino}
		}
	}
	return nil
}

// switchTo makes f the current file from off, and says so to the client.
func (t *tailChan) switchTo(f *tailed, off uint64, reason string) error {
	if err := t.flushCarry(); err != nil {
		return err
	}
	if t.cur != nil && t.cur != f {
		_ = t.cur.f.Close()
	}
	f.off = off
	f.head = readRange(f.f, 0, min(tailHead, off))
	f.last = readRange(f.f, off-min(tailHead, off), off)
	t.cur = f
	t.rec = frame.AppendTailRecord(t.rec, &frame.TailRecord{File: &frame.TailFile{
		TailPos: frame.TailPos{Dev: f.dev, Ino: f.ino, Offset: off}, Reason: reason}})
	return t.flush()
}

// follow reads on to the end and, when following, watches the path.
func (t *tailChan) follow() error {
	buf := make([]byte, 64<<10)
	var watch *dirWatch
	if t.req.Follow {
		// Watched as the account: a directory it may not read is not
		// watched (the follow then polls, and its reads are refused).
		dir := filepath.Join(t.root.Name(), filepath.FromSlash(path.Dir(t.path)))
		_ = asuser.Do(t.c.account().cred, func() error { watch = watchDir(dir); return nil })
		defer watch.close()
	}
	for {
		if t.cur != nil {
			if err := t.readOn(buf); err != nil {
				return err
			}
		}
		if !t.req.Follow {
			return t.flushCarry()
		}
		select {
		case <-t.ctx.Done():
			return context.Cause(t.ctx)
		case <-watch.events():
		case <-time.After(tailPoll):
		}
		if err := t.check(); err != nil {
			return err
		}
	}
}

// readOn sends what the current file has past its offset.
func (t *tailChan) readOn(buf []byte) error { return t.readFile(t.cur, buf) }

// readFile sends what cur has past its offset.
func (t *tailChan) readFile(cur *tailed, buf []byte) error {
	for {
		n, err := cur.f.ReadAt(buf, int64(cur.off))
		if n > 0 {
			if err := t.send(cur.off, buf[:n]); err != nil {
				return err
			}
			cur.off += uint64(n)
			cur.last = append(cur.last, buf[max(0, n-tailHead):n]...)
			cur.last = cur.last[max(0, len(cur.last)-tailHead):]
			if len(cur.head) < tailHead {
				cur.head = readRange(cur.f, 0, min(tailHead, cur.off))
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return t.flush()
		}
		if err != nil {
			return err
		}
	}
}

// drain sends the rest of the current file.
func (t *tailChan) drain() error { return t.readOn(make([]byte, 64<<10)) }

// check looks at the path: a new file there (rotated) is read from its
// start once the old one is drained; the same file shorter than where we
// are, or with other first bytes, was truncated.
func (t *tailChan) check() error {
	fi, err := t.root.Stat(t.path)
	if err != nil {
		return nil // gone for now (between a rename and a create): the old file is read on
	}
	dev, ino := fileID(fi)
	if t.cur == nil || dev != t.cur.dev || ino != t.cur.ino || (dev == 0 && ino == 0 && uint64(fi.Size()) < t.cur.off) {
		next, err := t.open()
		if err != nil {
			return nil // not ready yet: next time
		}
		reason := "appeared"
		if t.cur != nil {
			if err := t.drain(); err != nil {
				return err
			}
			reason = "rotated"
		}
		if next.dev == 0 && next.ino == 0 && t.cur != nil {
			reason = "truncated"
		}
		return t.switchTo(next, 0, reason)
	}
	size, err := fileSize(t.cur.f)
	if err != nil {
		return err
	}
	if uint64(size) < t.cur.off || !t.sameHead() {
		// copytruncate: what was written after our last read and before
		// the truncation is in the copy, beside the file.
		if cp := t.findCopy(t.cur.off, t.cur.head, t.cur.last); cp != nil {
			if err := t.sendRest(cp, t.cur.off); err != nil {
				return err
			}
		}
		return t.switchTo(t.cur, 0, "truncated")
	}
	return nil
}

// findCopy looks beside the file for a copy of what was read of it up to
// off: a regular file (not the one followed) that starts with head (when
// known) and has last just before off.
func (t *tailChan) findCopy(off uint64, head, last []byte) *tailed {
	if len(last) == 0 || off < uint64(len(last)) {
		return nil
	}
	dir, ents := t.siblings()
	for _, e := range ents {
		name := path.Join(dir, e.Name())
		if name == t.path {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || uint64(fi.Size()) < off {
			continue
		}
		f, fi, err := t.c.account().openRead(t.root, name)
		if err != nil {
			continue
		}
		got := make([]byte, len(head))
		_, err1 := f.ReadAt(got, 0)
		if (len(head) == 0 || (err1 == nil && bytes.Equal(got, head))) && endsWith(f, off, last) {
			dev, ino := fileID(fi)
			return &tailed{f: f, dev: dev, ino: ino}
		}
		_ = f.Close()
	}
	return nil
}

// sendRest sends f from off to its end, as its own file, then closes it;
// the current file stays.
func (t *tailChan) sendRest(f *tailed, off uint64) error {
	defer f.f.Close()
	if err := t.flushCarry(); err != nil {
		return err
	}
	f.off = off
	t.rec = frame.AppendTailRecord(t.rec, &frame.TailRecord{File: &frame.TailFile{
		TailPos: frame.TailPos{Dev: f.dev, Ino: f.ino, Offset: off}, Reason: "the rest, from the copy made before the truncation"}})
	if err := t.readFile(f, make([]byte, 64<<10)); err != nil {
		return err
	}
	return t.flushCarry()
}

// sameHead reports whether the file still starts with the bytes read.
func (t *tailChan) sameHead() bool {
	head := t.cur.head
	if len(head) == 0 {
		return true
	}
	now := make([]byte, len(head))
	n, _ := t.cur.f.ReadAt(now, 0)
	return n < len(head) || bytes.Equal(now, head) // shorter: the size check's case
}

// send queues the file's bytes at off: all of them, or with grep the
// matching lines (a line not yet ended waits in carry).
func (t *tailChan) send(off uint64, p []byte) error {
	if t.re == nil {
		for len(p) > 0 {
			n := min(len(p), frame.MaxTailData)
			t.rec = frame.AppendTailRecord(t.rec, &frame.TailRecord{Offset: off, Data: p[:n]})
			off += uint64(n)
			p = p[n:]
			if len(t.rec) >= 64<<10 {
				if err := t.flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if len(t.carry) == 0 {
		t.at = off
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end = i + 1
		}
		if room := frame.MaxTailData - len(t.carry); end > room {
			// A line longer than a record: judged a record's worth at a time.
			t.carry = append(t.carry, p[:room]...)
			if err := t.flushCarry(); err != nil {
				return err
			}
			p = p[room:]
			continue
		}
		if i < 0 {
			t.carry = append(t.carry, p...)
			return nil
		}
		line := p[:i+1]
		if len(t.carry) > 0 {
			line = append(t.carry, line...)
		}
		if t.re.Match(line) {
			t.rec = frame.AppendTailRecord(t.rec, &frame.TailRecord{Offset: t.at, Data: line})
		}
		t.at += uint64(len(line))
		t.carry = t.carry[:0]
		p = p[i+1:]
	}
	if len(t.rec) >= 64<<10 {
		return t.flush()
	}
	return nil
}

// flushCarry sends a line not yet ended when it matches (at a switch of
// file, or the end).
func (t *tailChan) flushCarry() error {
	if len(t.carry) > 0 && t.re != nil && t.re.Match(t.carry) {
		t.rec = frame.AppendTailRecord(t.rec, &frame.TailRecord{Offset: t.at, Data: t.carry})
	}
	t.at += uint64(len(t.carry))
	t.carry = t.carry[:0]
	return t.flush()
}

// flush writes the queued records (waiting for the client's credit).
func (t *tailChan) flush() error {
	if len(t.rec) == 0 {
		return nil
	}
	_, err := t.out.Write(t.rec)
	t.rec = t.rec[:0]
	return err
}

// end finishes the channel: the end of the stream after the whole file
// without follow, the error otherwise (an interruption is the client's: nothing to say).
func (t *tailChan) end(err error) {
	if err == nil {
		_ = t.out.Close() // the end of the stream is the end of the file; best effort
		return
	}
	if t.out.Failed() || t.ctx.Err() != nil {
		t.c.log.Info("tail ended", "channel", t.id, "path", t.path, "cause", context.Cause(t.ctx))
		return
	}
	t.fail(err)
}

// lastLines is the offset of the start of the last n lines of f (tail
// -n): a final newline ends the last line, it does not start another.
// n < 0 is the start of the file; 0 its end.
func lastLines(f *os.File, size int64, n int64) (uint64, error) {
	if n < 0 || size == 0 {
		return 0, nil
	}
	if n == 0 {
		return uint64(size), nil
	}
	end := size
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		end--
	}
	buf := make([]byte, 64<<10)
	for pos := end; pos > 0; {
		chunk := min(int64(len(buf)), pos)
		if _, err := f.ReadAt(buf[:chunk], pos-chunk); err != nil {
			return 0, err
		}
		for i := chunk - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				if n--; n == 0 {
					return uint64(pos - chunk + i + 1), nil
				}
			}
		}
		pos -= chunk
	}
	return 0, nil
}

// readRange reads f's bytes [from, to), fewer if f is shorter now.
func readRange(f *os.File, from, to uint64) []byte {
	if to <= from {
		return nil
	}
	b := make([]byte, to-from)
	n, _ := f.ReadAt(b, int64(from))
	return b[:n]
}

// endsWith reports whether the bytes of f just before off are last (true
// when last is empty: nothing to check).
func endsWith(f *os.File, off uint64, last []byte) bool {
	if len(last) == 0 {
		return true
	}
	if off < uint64(len(last)) {
		return false
	}
	got := make([]byte, len(last))
	n, _ := f.ReadAt(got, int64(off)-int64(len(last)))
	return n == len(last) && bytes.Equal(got, last)
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
