package proc

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// PendingOutput is how many bytes of the command's output wait, unread,
// in its pipes or pty (0 when it cannot tell): a drain that waits on
// them is not waiting on a silent pipe.
func (p *Process) PendingOutput() int {
	n := 0
	for _, r := range []any{p.Stdout, p.Stderr} {
		sc, ok := r.(syscall.Conn)
		if !ok {
			continue
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			if k, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil {
				n += k
			}
		})
	}
	return n
}
