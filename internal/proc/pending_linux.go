package proc

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Pending is how many bytes wait in the kernel to be read from x, a
// pipe, pty or socket (0 when it cannot tell): a reader that waits on
// them is not waiting on a silent peer.
func Pending(x any) int {
	sc, ok := x.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		// TIOCINQ, which is SIOCINQ (FIONREAD) for sockets too
		n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
	})
	return n
}

// PendingOutput is how many bytes of the command's output wait, unread,
// in its pipes or pty (0 when it cannot tell).
func (p *Process) PendingOutput() int { return Pending(p.Stdout) + Pending(p.Stderr) }
