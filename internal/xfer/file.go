package xfer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/blake3"

	"github.com/execd-project/execd/frame"
)

// NewHash returns the hash a transfer named (frame.HashSHA256 when empty)
// and its name for people.
func NewHash(name string) (hash.Hash, string, error) {
	switch name {
	case "", frame.HashSHA256:
		return sha256.New(), "SHA-256", nil
	case frame.HashBLAKE3:
		return blake3.New(), "BLAKE3", nil
	}
	return nil, "", Errorf(frame.CodeNotSupported, "unknown hash %q", name)
}

// PartSuffix ends the name of a partial copy kept for resuming.
const PartSuffix = ".rexec-part"

// PartName is the partial copy of name: a hidden file beside it, so that
// renaming it into place never crosses a file system.
func PartName(name string) string {
	dir, base := path.Split(name)
	return dir + "." + base + PartSuffix
}

// IsPart reports whether a directory entry is a partial copy.
func IsPart(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.HasSuffix(name, PartSuffix) || strings.Contains(name, PartSuffix+"-"))
}

// Locks keeps two transfers from writing the same partial copy: the
// second one waits a little (the first may be an attempt whose connection
// just dropped, about to let go), then writes a private temporary name
// instead and cannot resume. The zero value is ready; one per daemon or
// client.
type Locks struct {
	mu   sync.Mutex
	busy map[string]bool
}

// lockWait bounds how long a transfer waits for a partial copy in use.
const lockWait = 2 * time.Second

func (l *Locks) tryLock(key string) bool {
	deadline := time.Now().Add(lockWait)
	for {
		l.mu.Lock()
		if !l.busy[key] {
			if l.busy == nil {
				l.busy = map[string]bool{}
			}
			l.busy[key] = true
			l.mu.Unlock()
			return true
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *Locks) unlock(key string) {
	l.mu.Lock()
	delete(l.busy, key)
	l.mu.Unlock()
}

// Sink receives one file into a root: the bytes go to a partial copy,
// hashed as they are written, and only Commit puts the file in place, after
// the hash of the whole has been checked. Until then the destination (if
// any) is untouched.
type Sink struct {
	root   FS
	name   string // destination, relative to root
	part   string // where bytes are written
	f      *os.File
	h      hash.Hash
	hname  string
	ah     *asyncHash
	n      uint64
	prefix string // hash of what was kept at open
	locks  *Locks
	lockID string
	shared bool // part is the resumable name (kept on failure)
}

// OpenSink prepares to receive name under root, hashed with hashName (see
// NewHash). With resume, a partial copy left by an earlier attempt is kept:
// Offset and PrefixSum describe it. Without resume it is truncated. The
// directory of name must exist.
func OpenSink(root FS, name, hashName string, resume bool, locks *Locks) (*Sink, error) {
	h, hname, err := NewHash(hashName)
	if err != nil {
		return nil, err
	}
	if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
		return nil, Errorf(frame.CodeIsDir, "%s: is a directory", Display(name))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, ErrorFor(name, err)
	}
	s := &Sink{root: root, name: name, h: h, hname: hname, locks: locks}
	s.lockID = root.Name() + "\x00" + PartName(name)
	var f *os.File
	if locks == nil || locks.tryLock(s.lockID) {
		f, err = openLockedPart(root, PartName(name), time.Now().Add(lockWait))
		if f == nil && locks != nil {
			locks.unlock(s.lockID) // failed, or another daemon writes the resumable name
		}
		if err != nil {
			return nil, ErrorFor(name, err)
		}
		if f != nil {
			s.part, s.shared = PartName(name), true
			if !resume {
				err = f.Truncate(0)
			}
		}
	}
	if f == nil {
		var rnd [6]byte
		_, _ = rand.Read(rnd[:]) // never fails (crypto/rand)
		s.part = PartName(name) + "-" + hex.EncodeToString(rnd[:])
		resume = false
		f, err = root.OpenFile(s.part, os.O_RDWR|os.O_CREATE|os.O_EXCL|openNonblock, 0o600)
	}
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		s.unlock()
		return nil, ErrorFor(name, err)
	}
	s.f = f
	if resume {
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("partial copy is not a regular file")
		}
		if err == nil {
			_, err = HashPrefix(f, s.h, uint64(fi.Size()))
		}
		if err != nil {
			s.Close()
			return nil, ErrorFor(name, err)
		}
		s.n = uint64(fi.Size())
		if s.n > 0 {
			s.prefix = hex.EncodeToString(s.h.Sum(nil))
		}
	}
	return s, nil
}

// Offset is the length of the partial copy kept at open (0 without one).
func (s *Sink) Offset() uint64 { return s.n }

// PrefixSum is the hex hash of the kept bytes ("" when none).
func (s *Sink) PrefixSum() string { return s.prefix }

// Written is the number of bytes in the partial copy.
func (s *Sink) Written() uint64 { return s.n }

// Truncate keeps the first n bytes of the partial copy (n at most Written)
// and rehashes them; 0 starts over.
func (s *Sink) Truncate(n uint64) error {
	if n > s.n {
		return fmt.Errorf("truncate beyond the partial copy")
	}
	s.stopHash()
	if err := s.f.Truncate(int64(n)); err != nil {
		return ErrorFor(s.name, err)
	}
	s.h.Reset()
	if _, err := HashPrefix(s.f, s.h, n); err != nil {
		return ErrorFor(s.name, err)
	}
	s.n = n
	return nil
}

// Write appends to the partial copy. The bytes are hashed while they are
// written. After a failed write the hash no longer matters: the copy is
// either discarded or rehashed from disk when it is resumed.
func (s *Sink) Write(p []byte) (int, error) {
	if s.ah == nil {
		s.ah = newAsyncHash(s.h)
	}
	s.ah.start(p)
	n, err := s.f.Write(p)
	s.ah.wait()
	s.n += uint64(n)
	if err != nil {
		return n, ErrorFor(s.name, err)
	}
	return n, nil
}

// Sum is the hex hash of everything written so far.
func (s *Sink) Sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

// Commit checks the size and hash of the partial copy against what the
// sender announced; on a match it sets mode (permission bits) and mtime
// (when not zero) and renames it over the destination. On a mismatch the
// partial copy is removed and an integrity error returned.
func (s *Sink) Commit(size uint64, sum string, mode fs.FileMode, mtime time.Time) error {
	defer s.unlock()
	s.stopHash()
	if s.n != size || s.Sum() != sum {
		s.discard()
		if s.n != size {
			return Errorf(frame.CodeIntegrity, "%s: received %d bytes, sender announced %d; the copy was discarded", Display(s.name), s.n, size)
		}
		return Errorf(frame.CodeIntegrity, "%s: %s mismatch (sent %.12s…, received %.12s…); the copy was discarded", Display(s.name), s.hname, sum, s.Sum())
	}
	if err := s.f.Chmod(mode.Perm()); err != nil {
		s.discard()
		return ErrorFor(s.name, err)
	}
	if !renameOpen {
		if err := s.f.Close(); err != nil {
			s.f = nil
			s.discard()
			return ErrorFor(s.name, err)
		}
		s.f = nil
	}
	if !mtime.IsZero() {
		if err := s.root.Chtimes(s.part, mtime, mtime); err != nil {
			s.discard()
			return ErrorFor(s.name, err)
		}
	}
	if err := s.root.Rename(s.part, s.name); err != nil {
		s.discard()
		return ErrorFor(s.name, err)
	}
	if s.f != nil {
		err := s.f.Close() // releases the lock once the name is gone
		s.f = nil
		if err != nil {
			return ErrorFor(s.name, err)
		}
	}
	return nil
}

// Discard removes the partial copy: nothing of this transfer remains.
func (s *Sink) Discard() {
	defer s.unlock()
	s.discard()
}

func (s *Sink) discard() {
	s.stopHash()
	if s.f != nil {
		_ = s.f.Close() // best effort: removed next
		s.f = nil
	}
	_ = s.root.Remove(s.part) // best effort: may already be gone
}

// Close stops receiving and keeps the partial copy for a later resume,
// unless it was a private temporary, which is removed.
func (s *Sink) Close() {
	defer s.unlock()
	s.stopHash()
	if !s.shared || s.n == 0 {
		s.discard()
		return
	}
	if s.f != nil {
		_ = s.f.Close() // best effort: the bytes are already written
		s.f = nil
	}
}

func (s *Sink) stopHash() {
	if s.ah != nil {
		s.ah.close()
		s.ah = nil
	}
}

func (s *Sink) unlock() {
	if s.locks != nil && s.shared && s.lockID != "" {
		s.locks.unlock(s.lockID)
		s.lockID = ""
	}
}

// openLockedPart opens (creating) the partial copy part and locks it
// against other processes writing the same name, such as another daemon
// serving the same home. It returns nil, nil when the lock stays held by
// another until deadline. The lock is taken on the file the name still
// leads to: one renamed into place meanwhile is let go and the name
// opened again.
func openLockedPart(root FS, part string, deadline time.Time) (*os.File, error) {
	for {
		f, err := root.OpenFile(part, os.O_RDWR|os.O_CREATE|openNonblock, 0o600)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("partial copy %s is not a regular file", Display(part))
		}
		var locked bool
		if err == nil {
			locked, err = tryLockFile(f)
		}
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		if locked {
			if now, err := root.Lstat(part); err == nil && os.SameFile(fi, now) {
				return f, nil
			}
			_ = f.Close() // committed by the holder meanwhile: open the name again
			continue
		}
		_ = f.Close()
		if time.Now().After(deadline) {
			return nil, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// OpenRead opens name under root for reading without ever blocking on it:
// a named pipe opens at once (and is then told apart by its mode) instead
// of waiting for a writer. It returns the file and what it is.
func OpenRead(root FS, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// CtxReader reads from R until Ctx ends, then fails with its cause: a
// long read of a file stops when its connection or the daemon does.
type CtxReader struct {
	Ctx context.Context
	R   io.Reader
}

func (r CtxReader) Read(p []byte) (int, error) {
	if err := r.Ctx.Err(); err != nil {
		return 0, context.Cause(r.Ctx)
	}
	return r.R.Read(p)
}

// HashPrefix feeds the first n bytes of f into h, reading from the start
// and leaving the offset at n. It fails if f is shorter than n.
func HashPrefix(f *os.File, h hash.Hash, n uint64) (uint64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	got, err := io.CopyN(h, f, int64(n))
	if err == io.EOF {
		err = fmt.Errorf("file shorter than %d bytes", n)
	}
	return uint64(got), err
}

// Source reads n bytes of a file from an offset, hashing them after the
// prefix that was hashed before. It reports a file that shrank while being
// read. The bytes a Read returns are hashed on another goroutine while the
// caller sends them: the caller must not change them before its next Read,
// Sum or Close (a sender that only reads its buffer, like
// mux.Outbound.ReadFrom, is fine). Close releases that goroutine.
type Source struct {
	f         *os.File
	ah        *asyncHash
	remaining uint64
	name      string
}

// NewSource reads f from off to size; h holds the hash of [0, off).
func NewSource(f *os.File, name string, h hash.Hash, off, size uint64) (*Source, error) {
	if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
		return nil, err
	}
	return &Source{f: f, ah: newAsyncHash(h), remaining: size - off, name: name}, nil
}

// Close stops hashing; Sum is still valid afterwards.
func (s *Source) Close() { s.ah.close() }

// Read implements io.Reader.
func (s *Source) Read(p []byte) (int, error) {
	s.ah.wait() // p may be the buffer still being hashed
	if s.remaining == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > s.remaining {
		p = p[:s.remaining]
	}
	n, err := s.f.Read(p)
	if n > 0 {
		s.ah.start(p[:n])
	}
	s.remaining -= uint64(n)
	if err == io.EOF && s.remaining > 0 {
		return n, Errorf(frame.CodeFileChanged, "%s: file shrank while it was being sent", s.name)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// Sum is the hex hash of everything read so far.
func (s *Source) Sum() string {
	s.ah.wait()
	return hex.EncodeToString(s.ah.h.Sum(nil))
}

// asyncHashMin is the smallest write worth hashing on another goroutine.
const asyncHashMin = 32 << 10

// asyncHash feeds a hash on its own goroutine, so that hashing a buffer
// overlaps reading, writing or encrypting it on two cores. One buffer at a
// time: start, then wait before the buffer is changed.
type asyncHash struct {
	h      hash.Hash
	in     chan []byte
	done   chan struct{}
	busy   bool
	closed bool
}

func newAsyncHash(h hash.Hash) *asyncHash {
	a := &asyncHash{h: h, in: make(chan []byte), done: make(chan struct{})}
	go func() {
		for p := range a.in {
			a.h.Write(p)
			a.done <- struct{}{}
		}
	}()
	return a
}

func (a *asyncHash) start(p []byte) {
	a.wait()
	if len(p) < asyncHashMin || a.closed {
		a.h.Write(p)
		return
	}
	a.in <- p
	a.busy = true
}

func (a *asyncHash) wait() {
	if a.busy {
		<-a.done
		a.busy = false
	}
}

func (a *asyncHash) close() {
	a.wait()
	if !a.closed {
		close(a.in)
		a.closed = true
	}
}

// Info describes a file for the wire; target is a symlink's target.
func Info(name string, fi fs.FileInfo, target string) frame.FileInfo {
	t := frame.FileOther
	switch m := fi.Mode(); {
	case m.IsRegular():
		t = frame.FileRegular
	case m.IsDir():
		t = frame.FileDir
	case m&fs.ModeSymlink != 0:
		t = frame.FileSymlink
	}
	size := fi.Size()
	if size < 0 {
		size = 0
	}
	return frame.FileInfo{
		Name:    name,
		Type:    t,
		Size:    uint64(size),
		Mode:    UnixMode(fi.Mode()),
		MtimeNS: fi.ModTime().UnixNano(),
		Target:  target,
	}
}

// UnixMode maps a Go file mode to the 07777 bits of the wire.
func UnixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}
