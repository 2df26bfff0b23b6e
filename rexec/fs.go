package rexec

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/execd-project/execd/frame"
)

// FileInfo describes a remote file.
type FileInfo struct {
	Name    string
	Type    string // frame.FileRegular, FileDir, FileSymlink or FileOther
	Size    uint64
	Mode    fs.FileMode // permission bits, with setuid, setgid and sticky
	ModTime time.Time
	Target  string // a symlink's target
}

// IsDir reports whether the file is a directory.
func (fi *FileInfo) IsDir() bool { return fi.Type == frame.FileDir }

// IsRegular reports whether the file is a regular file.
func (fi *FileInfo) IsRegular() bool { return fi.Type == frame.FileRegular }

func infoOf(m *frame.FileInfo) FileInfo {
	mode := fs.FileMode(m.Mode & 0o777)
	if m.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return FileInfo{Name: m.Name, Type: m.Type, Size: m.Size, Mode: mode, ModTime: time.Unix(0, m.MtimeNS), Target: m.Target}
}

// FS is a file session on the daemon: operations on the served directory
// (the user's home), relative to a current directory of its own. Paths
// use "/" and are relative; "~" is the served directory. Safe for
// concurrent use; requests are answered in order.
type FS struct {
	fc     *fileChan
	mu     sync.Mutex
	nextID uint32
	cwd    string
}

// OpenFS opens a file session starting in dir ("" for the home).
func (c *Client) OpenFS(ctx context.Context, dir string) (*FS, error) {
	fc, err := c.openFile(ctx, &frame.OpenMsg{Kind: frame.KindFS, Dir: dir})
	if err != nil {
		return nil, err
	}
	return &FS{fc: fc, cwd: fc.ok.Cwd}, nil
}

// Close ends the session.
func (f *FS) Close() error {
	f.fc.close()
	return nil
}

// Getwd returns the current directory as "~" or "~/a/b".
func (f *FS) Getwd() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cwd
}

// do sends one request and collects its replies (several for a listing).
func (f *FS) do(ctx context.Context, req *frame.FileRequest) ([]*frame.FileReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	req.ID = f.nextID
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("rexec: %w", err)
	}
	if err := f.fc.ch.SendJSON(frame.Request, req); err != nil {
		return nil, fmt.Errorf("rexec: %s: %w", req.Op, err)
	}
	var out []*frame.FileReply
	for {
		f.fc.mu.Lock()
		for len(f.fc.replies) > 0 {
			r := f.fc.replies[0]
			f.fc.replies = f.fc.replies[1:]
			if r.ID != req.ID {
				continue // the answer to a request that was given up on
			}
			if r.Error != nil {
				f.fc.mu.Unlock()
				if r.More || len(out) > 0 {
					return nil, fmt.Errorf("%w: error in the middle of a listing", frame.ErrInvalid)
				}
				return nil, &RemoteError{Code: r.Error.Code, Message: r.Error.Message}
			}
			out = append(out, r)
			if !r.More {
				f.fc.mu.Unlock()
				return out, nil
			}
		}
		f.fc.mu.Unlock()
		select {
		case <-f.fc.replyCh:
		case <-f.fc.ch.Done():
			_, err := f.fc.wait(ctx)
			if err == nil {
				err = errClosed
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *FS) one(ctx context.Context, req *frame.FileRequest) (*frame.FileReply, error) {
	r, err := f.do(ctx, req)
	if err != nil {
		return nil, err
	}
	return r[0], nil
}

// Stat describes the file at p, following a final symlink that stays
// inside the served directory.
func (f *FS) Stat(ctx context.Context, p string) (*FileInfo, error) {
	return f.stat(ctx, frame.OpStat, p)
}

// Lstat describes the file at p itself.
func (f *FS) Lstat(ctx context.Context, p string) (*FileInfo, error) {
	return f.stat(ctx, frame.OpLstat, p)
}

func (f *FS) stat(ctx context.Context, op, p string) (*FileInfo, error) {
	r, err := f.one(ctx, &frame.FileRequest{Op: op, Path: p})
	if err != nil {
		return nil, err
	}
	if r.Info == nil {
		return nil, fmt.Errorf("%w: %s reply without info", frame.ErrInvalid, op)
	}
	fi := infoOf(r.Info)
	return &fi, nil
}

// ReadDir lists the directory p, sorted by name; symlinks are described,
// not followed. For a file, it returns that file alone.
func (f *FS) ReadDir(ctx context.Context, p string) ([]FileInfo, error) {
	rs, err := f.do(ctx, &frame.FileRequest{Op: frame.OpList, Path: p})
	if err != nil {
		return nil, err
	}
	var out []FileInfo
	for _, r := range rs {
		for i := range r.Entries {
			out = append(out, infoOf(&r.Entries[i]))
		}
	}
	return out, nil
}

// Mkdir creates the directory p with permission bits perm.
func (f *FS) Mkdir(ctx context.Context, p string, perm fs.FileMode) error {
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpMkdir, Path: p, Mode: uint32(perm.Perm()), HasMode: true})
	return err
}

// MkdirAll creates p and any missing parents.
func (f *FS) MkdirAll(ctx context.Context, p string, perm fs.FileMode) error {
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpMkdir, Path: p, Mode: uint32(perm.Perm()), HasMode: true, Parents: true})
	return err
}

// Remove removes a file or an empty directory.
func (f *FS) Remove(ctx context.Context, p string) error {
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpRemove, Path: p})
	return err
}

// RemoveAll removes p and everything under it.
func (f *FS) RemoveAll(ctx context.Context, p string) error {
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpRemove, Path: p, Recursive: true})
	return err
}

// Rename renames from to to, replacing a file at to.
func (f *FS) Rename(ctx context.Context, from, to string) error {
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpRename, Path: from, To: to})
	return err
}

// Chdir changes the session's current directory and returns it.
func (f *FS) Chdir(ctx context.Context, p string) (string, error) {
	r, err := f.one(ctx, &frame.FileRequest{Op: frame.OpChdir, Path: p})
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	f.cwd = r.Cwd
	f.mu.Unlock()
	return r.Cwd, nil
}

// Checksum returns the SHA-256 (hex) of the remote file p, computed by the daemon.
func (f *FS) Checksum(ctx context.Context, p string) (string, *FileInfo, error) {
	r, err := f.one(ctx, &frame.FileRequest{Op: frame.OpChecksum, Path: p})
	if err != nil {
		return "", nil, err
	}
	if r.Info == nil || r.Hash == "" {
		return "", nil, fmt.Errorf("%w: checksum reply without hash", frame.ErrInvalid)
	}
	fi := infoOf(r.Info)
	return r.Hash, &fi, nil
}

// Chmod sets the permission bits of p.
func (f *FS) Chmod(ctx context.Context, p string, perm fs.FileMode) error {
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpSetattr, Path: p, Mode: uint32(perm.Perm()), HasMode: true})
	return err
}

// Chtimes sets the modification time of p.
func (f *FS) Chtimes(ctx context.Context, p string, mtime time.Time) error {
	ns := mtime.UnixNano()
	if ns == 0 {
		ns = 1 // 0 means "leave as is" on the wire
	}
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpSetattr, Path: p, MtimeNS: ns})
	return err
}

// Symlink creates the symlink p pointing to target, which must be relative
// and stay inside the served directory.
func (f *FS) Symlink(ctx context.Context, target, p string) error {
	_, err := f.one(ctx, &frame.FileRequest{Op: frame.OpSymlink, Path: p, Target: target})
	return err
}
