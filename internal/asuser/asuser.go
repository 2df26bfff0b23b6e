// Package asuser does file system work as an account of the machine, so
// that the kernel, not the daemon, decides what the account may read and
// change. On Linux each call runs on an OS thread of its own whose file
// system identity (fsuid, fsgid and supplementary groups) is the
// account's for the length of the call; the daemon's other threads, and
// so every other user's operations running at the same time, keep their
// own identity. Elsewhere a daemon cannot lend one thread another
// identity, and FS refuses (Supported reports false).
package asuser

import (
	"io/fs"
	"os"
	"time"

	"github.com/execd-project/execd/internal/xfer"
)

// Cred is an account's identity: uid, gid and supplementary groups.
type Cred struct {
	Uid, Gid uint32
	Groups   []uint32
}

// FS returns inner with every call made as cred. A nil cred returns inner
// itself: the daemon's own identity.
func FS(inner xfer.FS, cred *Cred) xfer.FS {
	if cred == nil {
		return inner
	}
	return &credFS{inner: inner, cred: *cred}
}

// OpenRoot opens dir as an *os.Root (for a confined user) as cred would:
// an account that may not enter its home is refused here.
func OpenRoot(dir string, cred *Cred) (xfer.FS, error) {
	if cred == nil {
		return os.OpenRoot(dir)
	}
	r, err := call(*cred, func() (*os.Root, error) { return os.OpenRoot(dir) })
	if err != nil {
		return nil, err
	}
	return FS(r, cred), nil
}

// Do runs f as cred (the daemon's identity when cred is nil): f must do
// its file system calls on the calling goroutine and start none.
func Do(cred *Cred, f func() error) error {
	if cred == nil {
		return f()
	}
	_, err := call(*cred, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// credFS is an FS whose calls are made as one account.
type credFS struct {
	inner xfer.FS
	cred  Cred
}

func (c *credFS) Name() string { return c.inner.Name() }
func (c *credFS) Close() error { return c.inner.Close() }

func (c *credFS) Open(name string) (*os.File, error) {
	return call(c.cred, func() (*os.File, error) { return c.inner.Open(name) })
}

func (c *credFS) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return call(c.cred, func() (*os.File, error) { return c.inner.OpenFile(name, flag, perm) })
}

func (c *credFS) Stat(name string) (fs.FileInfo, error) {
	return call(c.cred, func() (fs.FileInfo, error) { return c.inner.Stat(name) })
}

func (c *credFS) Lstat(name string) (fs.FileInfo, error) {
	return call(c.cred, func() (fs.FileInfo, error) { return c.inner.Lstat(name) })
}

func (c *credFS) Readlink(name string) (string, error) {
	return call(c.cred, func() (string, error) { return c.inner.Readlink(name) })
}

func (c *credFS) do(f func() error) error {
	_, err := call(c.cred, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

func (c *credFS) Mkdir(name string, perm fs.FileMode) error {
	return c.do(func() error { return c.inner.Mkdir(name, perm) })
}

func (c *credFS) MkdirAll(name string, perm fs.FileMode) error {
	return c.do(func() error { return c.inner.MkdirAll(name, perm) })
}

func (c *credFS) Remove(name string) error {
	return c.do(func() error { return c.inner.Remove(name) })
}

func (c *credFS) RemoveAll(name string) error {
	return c.do(func() error { return c.inner.RemoveAll(name) })
}

func (c *credFS) Rename(oldname, newname string) error {
	return c.do(func() error { return c.inner.Rename(oldname, newname) })
}

func (c *credFS) Symlink(oldname, newname string) error {
	return c.do(func() error { return c.inner.Symlink(oldname, newname) })
}

func (c *credFS) Chmod(name string, mode fs.FileMode) error {
	return c.do(func() error { return c.inner.Chmod(name, mode) })
}

func (c *credFS) Chtimes(name string, atime, mtime time.Time) error {
	return c.do(func() error { return c.inner.Chtimes(name, atime, mtime) })
}

func (c *credFS) Lchown(name string, uid, gid int) error {
	return c.do(func() error { return c.inner.Lchown(name, uid, gid) })
}
