package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// samePeerUser refuses a connection to a control master from any other
// user than the master's own (the directory's mode already keeps them
// out; this holds even if it did not).
func samePeerUser(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("not a unix socket: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return credErr
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("connection from uid %d, not %d", cred.Uid, os.Getuid())
	}
	return nil
}

// closeRangeOnExec marks every descriptor above stderr close-on-exec in
// one call (Linux 5.11 and later).
func closeRangeOnExec() bool {
	return unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) == nil
}
