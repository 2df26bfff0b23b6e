//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// detachedProcess makes a control master a session of its own: no
// terminal, no signal meant for its starter's process group.
func detachedProcess() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// checkPrivateDir refuses a control directory that another user could
// have prepared: a symlink, not the user's, or open to group or others.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s is not owned by this user", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s has mode %#o, not 0700", dir, fi.Mode().Perm())
	}
	return nil
}

// fileLock is a master's lock, held for its life.
type fileLock struct {
	f    *os.File
	path string
}

// takeLock takes the lock at path without waiting; ok is false when
// another process holds it. A lock file removed by a rexec that found
// its master hung is not taken: the one at the path is.
func takeLock(path string) (*fileLock, bool, error) {
	for range 3 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, false, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			_ = f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, false, nil
			}
			return nil, false, err
		}
		held, err1 := f.Stat()
		there, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, there) {
			return &fileLock{f: f, path: path}, true, nil
		}
		_ = f.Close() // removed meanwhile: try the new one
	}
	return nil, false, fmt.Errorf("the lock %s keeps changing", path)
}

// release removes the lock file while it is still this lock's, then
// lets it go; a second call does nothing.
func (l *fileLock) release() {
	if held, err := l.f.Stat(); err == nil {
		if there, err := os.Stat(l.path); err == nil && os.SameFile(held, there) {
			_ = os.Remove(l.path)
		}
	}
	_ = l.f.Close()
}

// locked reports whether a live process holds the lock at path.
func locked(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// keepInheritedFromChildren marks every descriptor above stderr
// close-on-exec, so that a child started now gets only what it is given
// (Go's own are so already; those this process inherited are not).
func keepInheritedFromChildren() {
	if closeRangeOnExec() {
		return
	}
	entries, err := os.ReadDir("/dev/fd") // one by one where close_range cannot
	if err != nil {
		return
	}
	for _, e := range entries {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
