package asuser

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Supported reports whether file work can be done as another account.
func Supported() bool { return true }

// errIdentity is returned when a thread could not take an account's
// identity; nothing was done.
var errIdentity = errors.New("asuser: cannot take the account's file system identity")

// call runs f on a fresh goroutine locked to its OS thread, with that
// thread's file system identity set to cred's for the call. Threads the
// runtime starts meanwhile come from its template thread, not from this
// one (the runtime's rule for locked threads), so they never inherit the
// identity. When the daemon's identity cannot be put back, the goroutine
// ends still locked and the runtime ends the thread with it: a thread
// with a borrowed identity never runs anything else.
func call[T any](cred Cred, f func() (T, error)) (T, error) {
	var (
		v    T
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		runtime.LockOSThread()
		own, gerr := unix.Getgroups()
		if gerr != nil {
			err = fmt.Errorf("%w: %v", errIdentity, gerr)
			runtime.UnlockOSThread()
			return
		}
		if err = become(cred); err != nil {
			return // the thread's identity is unknown: it ends with this goroutine
		}
		v, err = f()
		if restore(own) == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	return v, err
}

// become gives the calling thread cred's file system identity: its
// supplementary groups first (while the thread may still set them), then
// the gid and the uid. Each is checked: setfsuid and setfsgid report no
// failure of their own.
func become(cred Cred) error {
	groups := make([]int, len(cred.Groups))
	for i, g := range cred.Groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil { // this thread only (x/sys, unlike syscall)
		return fmt.Errorf("%w: setgroups: %v", errIdentity, err)
	}
	_, _ = unix.SetfsgidRetGid(int(cred.Gid))
	_, _ = unix.SetfsuidRetUid(int(cred.Uid))
	if fsgid, _ := unix.SetfsgidRetGid(-1); fsgid != int(cred.Gid) {
		return fmt.Errorf("%w: fsgid is %d, not %d", errIdentity, fsgid, cred.Gid)
	}
	if fsuid, _ := unix.SetfsuidRetUid(-1); fsuid != int(cred.Uid) {
		return fmt.Errorf("%w: fsuid is %d, not %d", errIdentity, fsuid, cred.Uid)
	}
	return nil
}

// restore gives the calling thread the process's identity back.
func restore(groups []int) error {
	uid, gid := unix.Geteuid(), unix.Getegid()
	_, _ = unix.SetfsuidRetUid(uid) // first: setting groups needs the capabilities uid 0 has
	_, _ = unix.SetfsgidRetGid(gid)
	if fsuid, _ := unix.SetfsuidRetUid(-1); fsuid != uid {
		return errIdentity
	}
	if fsgid, _ := unix.SetfsgidRetGid(-1); fsgid != gid {
		return errIdentity
	}
	return unix.Setgroups(groups)
}
