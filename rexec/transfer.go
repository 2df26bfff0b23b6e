package rexec

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/xfer"
)

// DefaultParallel is how many files of a recursive copy move at once.
const DefaultParallel = 4

// Observer watches the files of a transfer; the rexec command draws its
// progress bars with one. Its methods may be called concurrently.
type Observer interface {
	// File is called as a file starts: its name, its size and the bytes
	// already in place from an earlier attempt (resumed, not sent again).
	File(name string, size, resumed uint64) FileTracker
}

// FileTracker follows one file of a transfer.
type FileTracker interface {
	// Add reports n more bytes sent or received.
	Add(n int)
	// Done reports the end of the file: nil when it arrived verified.
	Done(err error)
}

// TransferOptions controls Get and Put.
type TransferOptions struct {
	// Recursive copies directories with everything in them.
	Recursive bool
	// Restart ignores partial copies left by an interrupted transfer and
	// sends every byte again. By default a transfer resumes, after checking
	// by hash that the partial copy matches the source.
	Restart bool
	// Parallel is how many files move at once; 0 means DefaultParallel.
	Parallel int
	// Observer, when set, watches every file.
	Observer Observer
	// Hash is the end-to-end hash: frame.HashSHA256 or frame.HashBLAKE3.
	// Empty means BLAKE3 when the daemon offers it (it is faster), SHA-256
	// otherwise.
	Hash string
}

// TransferStats counts what a transfer did.
type TransferStats struct {
	Files   int    // files that arrived verified
	Dirs    int    // directories created or updated
	Links   int    // symlinks recreated
	Bytes   uint64 // file bytes that crossed the connection
	Resumed uint64 // bytes of partial copies kept instead of sent again
	Skipped int    // entries left out (unsafe symlinks, devices), each reported in the error
	Hash    string // the hash that verified the files: "SHA-256" or "BLAKE3"
}

// transfer is one Get or Put in progress.
type transfer struct {
	c    *Client
	fsx  *FS
	opts TransferOptions
	g    errgroup.Group

	mu    sync.Mutex
	stats TransferStats
	errs  []error
}

func (c *Client) newTransfer(ctx context.Context, opts *TransferOptions) (*transfer, error) {
	t := &transfer{c: c}
	if opts != nil {
		t.opts = *opts
	}
	n := t.opts.Parallel
	if n <= 0 {
		n = DefaultParallel
	}
	if t.opts.Hash == "" {
		t.opts.Hash = frame.HashSHA256
		if slices.Contains(c.hello.Features, frame.FeatureBLAKE3) {
			t.opts.Hash = frame.HashBLAKE3
		}
	}
	_, hname, err := xfer.NewHash(t.opts.Hash)
	if err != nil {
		return nil, err
	}
	t.stats.Hash = hname
	t.g.SetLimit(n)
	fsx, err := c.OpenFS(ctx, "")
	if err != nil {
		return nil, err
	}
	t.fsx = fsx
	return t, nil
}

// fail records a one-line error about one item; the transfer goes on.
func (t *transfer) fail(err error) {
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
}

func (t *transfer) skip(format string, args ...any) {
	t.mu.Lock()
	t.stats.Skipped++
	t.errs = append(t.errs, fmt.Errorf("skipped "+format, args...))
	t.mu.Unlock()
}

func (t *transfer) count(f func(s *TransferStats)) {
	t.mu.Lock()
	f(&t.stats)
	t.mu.Unlock()
}

func (t *transfer) finish() (*TransferStats, error) {
	_ = t.g.Wait() // workers record their errors; they return none
	_ = t.fsx.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	return &st, errors.Join(t.errs...)
}

func (t *transfer) track(name string, size, resumed uint64) FileTracker {
	if t.opts.Observer == nil {
		return nopTracker{}
	}
	return t.opts.Observer.File(name, size, resumed)
}

type nopTracker struct{}

func (nopTracker) Add(int)    {}
func (nopTracker) Done(error) {}

// isInterruption reports an error after which a partial copy is worth
// keeping for a resume.
func isInterruption(err error) bool {
	return errors.Is(err, ErrConnectionLost) || errors.Is(err, mux.ErrLost) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errClosed)
}

// Get copies the remote path (relative to the served directory, "~" for
// it) to the local path, as scp does: into local when it is an existing
// directory, as local otherwise. A directory needs opts.Recursive. Every
// file is verified by SHA-256 before it is renamed into place; on error
// the returned error has one line per failed file, and the others are
// still copied.
func (c *Client) Get(ctx context.Context, remote, local string, opts *TransferOptions) (*TransferStats, error) {
	t, err := c.newTransfer(ctx, opts)
	if err != nil {
		return nil, err
	}
	t.get(ctx, remote, local)
	return t.finish()
}

func (t *transfer) get(ctx context.Context, remote, local string) {
	info, err := t.fsx.Stat(ctx, remote)
	if err != nil {
		t.fail(err)
		return
	}
	lfi, lerr := os.Stat(local)
	localDir := lerr == nil && lfi.IsDir()
	if !info.IsDir() {
		dir, name := filepath.Dir(local), filepath.Base(local)
		if localDir {
			dir, name = local, info.Name
		}
		if !xfer.ValidName(name) {
			t.fail(fmt.Errorf("%s: cannot name a local file %q", remote, name))
			return
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.fail(fmt.Errorf("%s: %w", local, errors.Unwrap(err)))
			return
		}
		defer root.Close()
		t.getFile(ctx, remote, root, name, filepath.Join(dir, name))
		return
	}
	if !t.opts.Recursive {
		t.fail(fmt.Errorf("%s: is a directory (use -r)", remote))
		return
	}
	target := local
	if localDir && xfer.ValidName(info.Name) {
		target = filepath.Join(local, info.Name)
	}
	if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		t.fail(fmt.Errorf("%s: %w", target, errors.Unwrap(err)))
		return
	}
	root, err := os.OpenRoot(target)
	if err != nil {
		t.fail(fmt.Errorf("%s: %w", target, errors.Unwrap(err)))
		return
	}
	defer root.Close()
	var dirs []dirAttr
	t.getTree(ctx, strings.TrimSuffix(remote, "/"), root, ".", target, &dirs)
	t.count(func(s *TransferStats) { s.Dirs++ })
	dirs = append(dirs, dirAttr{rel: ".", mode: info.Mode, mtime: info.ModTime})
	_ = t.g.Wait() // the files are written before their directories' times are set
	for _, d := range dirs {
		if err := root.Chmod(d.rel, d.mode.Perm()); err != nil {
			t.fail(fmt.Errorf("%s: %w", filepath.Join(target, d.rel), errors.Unwrap(err)))
		}
		if err := root.Chtimes(d.rel, d.mtime, d.mtime); err != nil {
			t.fail(fmt.Errorf("%s: %w", filepath.Join(target, d.rel), errors.Unwrap(err)))
		}
	}
}

// dirAttr is a directory's mode and time, set after its content is written.
type dirAttr struct {
	rel   string
	mode  fs.FileMode
	mtime time.Time
}

// getTree copies the remote directory rdir into rel under root. Names
// from the daemon are checked before anything is created, and root keeps
// every write inside the local target.
func (t *transfer) getTree(ctx context.Context, rdir string, root *os.Root, rel, shown string, dirs *[]dirAttr) {
	entries, err := t.fsx.ReadDir(ctx, rdir)
	if err != nil {
		t.fail(err)
		return
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			t.fail(ctx.Err())
			return
		}
		if !xfer.ValidName(e.Name) {
			t.skip("%s: the daemon sent an invalid entry name %q", rdir, e.Name)
			continue
		}
		if xfer.IsPart(e.Name) {
			continue // an unfinished upload, not a file
		}
		rpath, lrel := rdir+"/"+e.Name, path.Join(rel, e.Name)
		lshown := filepath.Join(shown, e.Name)
		switch e.Type {
		case frame.FileDir:
			if err := root.Mkdir(lrel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				t.fail(fmt.Errorf("%s: %w", lshown, errors.Unwrap(err)))
				continue
			}
			t.getTree(ctx, rpath, root, lrel, lshown, dirs)
			*dirs = append(*dirs, dirAttr{rel: lrel, mode: e.Mode, mtime: e.ModTime})
			t.count(func(s *TransferStats) { s.Dirs++ })
		case frame.FileRegular:
			t.g.Go(func() error {
				t.getFile(ctx, rpath, root, lrel, lshown)
				return nil
			})
		case frame.FileSymlink:
			if !xfer.SafeLinkIn(root, lrel, e.Target) {
				t.skip("symlink %s -> %s: points outside the copied tree", rpath, e.Target)
				continue
			}
			_ = root.Remove(lrel) // best effort: replaced if it exists
			if err := root.Symlink(e.Target, lrel); err != nil {
				t.fail(fmt.Errorf("%s: %w", lshown, errors.Unwrap(err)))
				continue
			}
			t.count(func(s *TransferStats) { s.Links++ })
		default:
			t.skip("%s: not a regular file, directory or symlink", rpath)
		}
	}
}

// getFile copies one remote file to name under root, resuming a partial
// copy when its hash matches the start of the remote file.
func (t *transfer) getFile(ctx context.Context, remote string, root *os.Root, name, shown string) {
	err := t.getOne(ctx, remote, root, name, shown)
	if err != nil {
		t.fail(fmt.Errorf("%s: %w", remote, err))
	}
}

func (t *transfer) getOne(ctx context.Context, remote string, root *os.Root, name, shown string) error {
	sink, err := xfer.OpenSink(root, name, t.opts.Hash, !t.opts.Restart, &t.c.locks)
	if err != nil {
		return localErr(shown, err)
	}
	fc, err := t.c.openFile(ctx, &frame.OpenMsg{Kind: frame.KindGet, Path: remote, Hash: t.opts.Hash, Offset: sink.Offset(), PrefixHash: sink.PrefixSum()})
	if err != nil {
		sink.Close()
		return err
	}
	info := fc.ok.Info
	if info == nil || fc.ok.Offset > sink.Offset() {
		fc.close()
		sink.Discard()
		return fmt.Errorf("%w: bad open_ok for a get", frame.ErrInvalid)
	}
	if fc.ok.Offset < sink.Offset() {
		if err := sink.Truncate(fc.ok.Offset); err != nil {
			fc.close()
			sink.Close()
			return localErr(shown, err)
		}
	}
	tr := t.track(remote, info.Size, fc.ok.Offset)
	defer fc.endWith(ctx)()
	_, d, err := t.receive(ctx, fc, trackWriter{sink, tr})
	if err != nil {
		fc.close()
		if isInterruption(err) {
			sink.Close() // kept: the next get resumes from it
		} else {
			sink.Discard()
		}
		tr.Done(err)
		return err
	}
	if d.Size != info.Size {
		sink.Discard()
		err := fmt.Errorf("%w: done announces %d bytes, open announced %d", frame.ErrInvalid, d.Size, info.Size)
		tr.Done(err)
		return err
	}
	mode := fs.FileMode(info.Mode & 0o777)
	if err := sink.Commit(d.Size, d.Hash, mode, time.Unix(0, info.MtimeNS)); err != nil {
		tr.Done(err)
		return err
	}
	tr.Done(nil)
	t.count(func(s *TransferStats) { s.Files++; s.Resumed += fc.ok.Offset })
	return nil
}

// localErr words a local file system error without repeating the path.
func localErr(shown string, err error) error {
	var em *frame.ErrorMsg
	if errors.As(err, &em) {
		return fmt.Errorf("local %s: %s", shown, strings.TrimPrefix(em.Message, "~/"))
	}
	return fmt.Errorf("local %s: %w", shown, err)
}

type trackWriter struct {
	w  io.Writer
	tr FileTracker
}

func (w trackWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.tr.Add(n)
	return n, err
}

// readErr remembers the error its reader failed with.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

type trackReader struct {
	r  io.Reader
	tr FileTracker
}

func (r trackReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.tr.Add(n)
	return n, err
}

// Put copies local files and directories to the remote path, as scp does:
// into it when it is an existing directory (required for several
// sources), as it otherwise. Errors are reported as for Get.
func (c *Client) Put(ctx context.Context, locals []string, remote string, opts *TransferOptions) (*TransferStats, error) {
	t, err := c.newTransfer(ctx, opts)
	if err != nil {
		return nil, err
	}
	rinfo, rerr := t.fsx.Stat(ctx, remote)
	switch {
	case rerr != nil && !IsNotExist(rerr):
		t.fail(rerr)
	case len(locals) > 1 && (rerr != nil || !rinfo.IsDir()):
		t.fail(fmt.Errorf("%s: not a directory (several sources need a directory to go into)", remote))
	default:
		intoDir := rerr == nil && rinfo.IsDir()
		for _, l := range locals {
			t.put(ctx, l, remote, intoDir)
		}
	}
	return t.finish()
}

func (t *transfer) put(ctx context.Context, local, remote string, intoDir bool) {
	fi, err := os.Stat(local)
	if err != nil {
		t.fail(fmt.Errorf("local %s: %w", local, errors.Unwrap(err)))
		return
	}
	target := remote
	if intoDir {
		target = strings.TrimSuffix(remote, "/") + "/" + filepath.Base(filepath.Clean(local))
	}
	switch {
	case fi.Mode().IsRegular():
		t.putFile(ctx, local, target)
	case fi.IsDir():
		if !t.opts.Recursive {
			t.fail(fmt.Errorf("local %s: is a directory (use -r)", local))
			return
		}
		if err := t.fsx.Mkdir(ctx, target, 0o700); err != nil && !codeIs(err, frame.CodeExists) {
			t.fail(err)
			return
		}
		var dirs []dirAttr
		t.putTree(ctx, local, ".", target, &dirs)
		dirs = append(dirs, dirAttr{rel: target, mode: fi.Mode(), mtime: fi.ModTime()})
		t.count(func(s *TransferStats) { s.Dirs++ })
		_ = t.g.Wait()
		for _, d := range dirs {
			if err := t.fsx.Chmod(ctx, d.rel, d.mode); err != nil {
				t.fail(err)
			}
			if err := t.fsx.Chtimes(ctx, d.rel, d.mtime); err != nil {
				t.fail(err)
			}
		}
	default:
		t.skip("local %s: not a regular file or directory", local)
	}
}

// putTree copies the local directory dir (rel inside the copied tree) to
// the remote directory rdir, which exists.
func (t *transfer) putTree(ctx context.Context, dir, rel, rdir string, dirs *[]dirAttr) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.fail(fmt.Errorf("local %s: %w", dir, errors.Unwrap(err)))
		return
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		if ctx.Err() != nil {
			t.fail(ctx.Err())
			return
		}
		lpath, lrel, rpath := filepath.Join(dir, e.Name()), path.Join(rel, e.Name()), rdir+"/"+e.Name()
		if xfer.IsPart(e.Name()) {
			continue // an unfinished download, not a file
		}
		fi, err := e.Info()
		if err != nil {
			t.fail(fmt.Errorf("local %s: %w", lpath, errors.Unwrap(err)))
			continue
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			if err := t.fsx.Mkdir(ctx, rpath, 0o700); err != nil && !codeIs(err, frame.CodeExists) {
				t.fail(err)
				continue
			}
			t.putTree(ctx, lpath, lrel, rpath, dirs)
			*dirs = append(*dirs, dirAttr{rel: rpath, mode: m, mtime: fi.ModTime()})
			t.count(func(s *TransferStats) { s.Dirs++ })
		case m.IsRegular():
			t.g.Go(func() error {
				t.putFile(ctx, lpath, rpath)
				return nil
			})
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(lpath)
			if err != nil {
				t.fail(fmt.Errorf("local %s: %w", lpath, errors.Unwrap(err)))
				continue
			}
			if !xfer.SafeLink(lrel, filepath.ToSlash(target)) {
				t.skip("symlink %s -> %s: points outside the copied tree", lpath, target)
				continue
			}
			_ = t.fsx.Remove(ctx, rpath) // best effort: replaced if it exists
			if err := t.fsx.Symlink(ctx, filepath.ToSlash(target), rpath); err != nil {
				t.fail(err)
				continue
			}
			t.count(func(s *TransferStats) { s.Links++ })
		default:
			t.skip("local %s: not a regular file, directory or symlink", lpath)
		}
	}
}

func (t *transfer) putFile(ctx context.Context, local, remote string) {
	if err := t.putOne(ctx, local, remote); err != nil {
		t.fail(fmt.Errorf("%s: %w", local, err))
	}
}

func (t *transfer) putOne(ctx context.Context, local, remote string) error {
	f, err := os.Open(local)
	if err != nil {
		return errors.Unwrap(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := uint64(fi.Size())
	mtime := fi.ModTime().UnixNano()
	if mtime == 0 {
		mtime = 1
	}
	resume := !t.opts.Restart
	for {
		fc, err := t.c.openFile(ctx, &frame.OpenMsg{Kind: frame.KindPut, Path: remote, Size: size, Hash: t.opts.Hash,
			Mode: xfer.UnixMode(fi.Mode()) & 0o777, MtimeNS: mtime, Resume: resume})
		if err != nil {
			return err
		}
		off := fc.ok.Offset
		h, _, err := xfer.NewHash(t.opts.Hash)
		if err != nil {
			fc.close()
			return err
		}
		if off > 0 {
			got, herr := xfer.HashPrefix(f, h, min(off, size))
			if herr != nil || got != off || hex.EncodeToString(h.Sum(nil)) != fc.ok.PrefixHash {
				// The daemon's partial copy is not a prefix of this file.
				fc.close()
				resume = false
				continue
			}
		}
		src, err := xfer.NewSource(f, local, h, off, size)
		if err != nil {
			fc.close()
			return err
		}
		defer src.Close()
		tr := t.track(remote, size, off)
		err = t.send(ctx, fc, trackReader{src, tr}, func(uint64) uint64 { return size }, src.Sum)
		tr.Done(err)
		if err == nil {
			t.count(func(s *TransferStats) { s.Files++; s.Resumed += off })
		}
		return err
	}
}

// send streams r on a put channel, then the done frame with the size and
// hash of the whole file (size is told how many bytes r gave), and waits
// for the daemon to confirm the same.
func (t *transfer) send(ctx context.Context, fc *fileChan, r io.Reader, size func(sent uint64) uint64, sum func() string) error {
	defer fc.endWith(ctx)()
	n, err := fc.out.ReadFrom(r)
	t.count(func(s *TransferStats) { s.Bytes += uint64(n) })
	if err == nil {
		err = fc.out.Close()
	}
	total, hash := size(uint64(n)), sum()
	if err == nil {
		err = fc.ch.SendJSON(frame.Done, &frame.DoneMsg{Size: total, Hash: hash})
	}
	var d *frame.DoneMsg
	if err == nil {
		d, err = fc.wait(ctx)
	}
	if err == nil && (d.Hash != hash || d.Size != total) {
		err = fmt.Errorf("%w: the daemon confirmed a different file", frame.ErrInvalid)
	}
	if err != nil {
		fc.close()
		if t.c.sess.Err() != nil && !errors.Is(err, ErrConnectionLost) {
			err = fmt.Errorf("%w: %w", ErrConnectionLost, err)
		}
	}
	return err
}

// PutStream copies everything r gives, up to its end, into the remote file
// (mode 0644), as "cmd | rexec put - HOST:FILE" does: the size need not be
// known in advance. The file is verified and replaced whole like any put;
// a stream cannot be resumed.
func (c *Client) PutStream(ctx context.Context, r io.Reader, remote string, opts *TransferOptions) (*TransferStats, error) {
	t, err := c.newTransfer(ctx, opts)
	if err != nil {
		return nil, err
	}
	fc, err := c.openFile(ctx, &frame.OpenMsg{Kind: frame.KindPut, Path: remote, Hash: t.opts.Hash, Mode: 0o644, Stream: true})
	if err != nil {
		t.fail(err)
		return t.finish()
	}
	h, _, err := xfer.NewHash(t.opts.Hash)
	if err != nil {
		fc.close()
		t.fail(err)
		return t.finish()
	}
	tr := t.track(remote, 0, 0)
	in := &readErr{r: r}
	err = t.send(ctx, fc, trackReader{io.TeeReader(in, h), tr}, func(n uint64) uint64 { return n },
		func() string { return hex.EncodeToString(h.Sum(nil)) })
	tr.Done(err)
	switch {
	case in.err != nil && errors.Is(err, in.err):
		// The local side failed: say so, not as if the remote file had.
		t.fail(fmt.Errorf("local input: %w (nothing was written to %s)", in.err, remote))
	case err != nil:
		t.fail(fmt.Errorf("%s: %w", remote, err))
	default:
		t.count(func(s *TransferStats) { s.Files++ })
	}
	return t.finish()
}

// GetStream copies the remote file into w, as "rexec get HOST:FILE -"
// does: nothing is written locally but w, so the copy cannot be resumed.
// The bytes are hashed as they pass and checked against the daemon's
// hash at the end; a mismatch (or a cut) is the returned error, after w
// has had what arrived.
func (c *Client) GetStream(ctx context.Context, remote string, w io.Writer, opts *TransferOptions) (*TransferStats, error) {
	t, err := c.newTransfer(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := t.getStream(ctx, remote, w); err != nil {
		if re := (*RemoteError)(nil); !errors.As(err, &re) {
			err = fmt.Errorf("%s: %w", remote, err) // the daemon's errors name the path already
		}
		t.fail(err)
	}
	return t.finish()
}

// receive copies a get channel's data into w, then waits for the
// daemon's done.
func (t *transfer) receive(ctx context.Context, fc *fileChan, w io.Writer) (int64, *frame.DoneMsg, error) {
	n, err := io.Copy(w, fc.in)
	if errors.Is(err, mux.ErrLost) && !errors.Is(err, ErrConnectionLost) {
		err = t.c.lost()
	}
	t.count(func(s *TransferStats) { s.Bytes += uint64(n) })
	var d *frame.DoneMsg
	if err == nil {
		d, err = fc.wait(ctx)
	}
	return n, d, err
}

func (t *transfer) getStream(ctx context.Context, remote string, w io.Writer) error {
	h, _, err := xfer.NewHash(t.opts.Hash)
	if err != nil {
		return err
	}
	fc, err := t.c.openFile(ctx, &frame.OpenMsg{Kind: frame.KindGet, Path: remote, Hash: t.opts.Hash})
	if err != nil {
		return err
	}
	info := fc.ok.Info
	if info == nil || fc.ok.Offset != 0 {
		fc.close()
		return fmt.Errorf("%w: bad open_ok for a get", frame.ErrInvalid)
	}
	tr := t.track(remote, info.Size, 0)
	defer fc.endWith(ctx)()
	n, d, err := t.receive(ctx, fc, trackWriter{io.MultiWriter(w, h), tr})
	switch {
	case err != nil:
		fc.close()
	case d.Size != uint64(n):
		err = fmt.Errorf("%w: done announces %d bytes, %d arrived", frame.ErrInvalid, d.Size, n)
	case d.Hash != hex.EncodeToString(h.Sum(nil)):
		err = fmt.Errorf("%w: the bytes written do not match the daemon's hash", frame.ErrInvalid)
	}
	tr.Done(err)
	if err == nil {
		t.count(func(s *TransferStats) { s.Files++ })
	}
	return err
}
