//go:build unix

package xfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// openNonblock is added to every open of a file a peer names: a named
// pipe then opens at once (and is refused as not a regular file) instead
// of blocking the daemon until a writer comes.
const openNonblock = unix.O_NONBLOCK

// renameOpen: a partial copy is renamed into place while still open, so
// that its lock is held until the name is gone.
const renameOpen = true

// tryLockFile takes an exclusive advisory lock (flock) on f without
// waiting: false when another process, or another open of the same file
// here, holds it. flock works across daemons on one machine and, as POSIX
// locks, across NFS clients.
func tryLockFile(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		return false, err
	}
	if lerr == unix.EWOULDBLOCK {
		return false, nil
	}
	return lerr == nil, lerr
}
