package proc

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is asked of the kernel for output pipes: fewer, larger reads
// and fewer context switches between the command and the daemon.
const pipeSize = 1 << 20

// growPipe enlarges a pipe's buffer; the default size stays on failure.
// It goes through SyscallConn, not Fd: Fd would put the pipe in blocking
// mode, after which closing it no longer interrupts a pending read (and
// a process that escaped with the pipe would hold the exit back).
func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) // best effort: capped by fs.pipe-max-size
	})
}
