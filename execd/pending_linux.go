package execd

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// pendingBytes is how many bytes wait in the kernel to be read from nc
// (0 when it cannot tell).
func pendingBytes(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n
}
