package xfer

import (
	"io/fs"
	"os"
	"time"
)

// FS is the file system a transfer works in: the methods of *os.Root,
// which is the confined one. Paths are clean and use "/": relative to
// the root for an *os.Root, absolute for a host file system (Host). An
// FS may do its work as another account (see internal/asuser).
type FS interface {
	Name() string
	Open(name string) (*os.File, error)
	OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error)
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	Readlink(name string) (string, error)
	Mkdir(name string, perm fs.FileMode) error
	MkdirAll(name string, perm fs.FileMode) error
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	Symlink(oldname, newname string) error
	Chmod(name string, mode fs.FileMode) error
	Chtimes(name string, atime, mtime time.Time) error
	Lchown(name string, uid, gid int) error
	Close() error
}

var _ FS = (*os.Root)(nil)

// Host is the whole file system, as the daemon's process sees it: names
// are absolute, symlinks lead anywhere. What a user may do there is up to
// the kernel, given the account the calls are made as.
type Host struct{}

var _ FS = Host{}

func (Host) Name() string                       { return "/" }
func (Host) Open(name string) (*os.File, error) { return os.Open(name) }
func (Host) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
func (Host) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }
func (Host) Lstat(name string) (fs.FileInfo, error)       { return os.Lstat(name) }
func (Host) Readlink(name string) (string, error)         { return os.Readlink(name) }
func (Host) Mkdir(name string, perm fs.FileMode) error    { return os.Mkdir(name, perm) }
func (Host) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }
func (Host) Remove(name string) error                     { return os.Remove(name) }
func (Host) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (Host) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (Host) Symlink(oldname, newname string) error        { return os.Symlink(oldname, newname) }
func (Host) Chmod(name string, mode fs.FileMode) error    { return os.Chmod(name, mode) }
func (Host) Chtimes(name string, atime, mtime time.Time) error {
	return os.Chtimes(name, atime, mtime)
}
func (Host) Lchown(name string, uid, gid int) error { return os.Lchown(name, uid, gid) }
func (Host) Close() error                           { return nil }
