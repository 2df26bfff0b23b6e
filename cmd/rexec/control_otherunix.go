//go:build unix && !linux

package main

import "net"

// samePeerUser: the control directory's mode 0700 keeps other users out.
var samePeerUser func(net.Conn) error

// closeRangeOnExec: no close_range here; the caller goes one by one.
func closeRangeOnExec() bool { return false }
