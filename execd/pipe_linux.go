package execd

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is asked of the kernel for output pipes: fewer, larger reads
// and fewer context switches between the command and the daemon.
const pipeSize = 1 << 20

// growPipe enlarges a pipe's buffer; the default size stays on failure.
func growPipe(f *os.File) {
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize) // best effort: capped by fs.pipe-max-size
}
