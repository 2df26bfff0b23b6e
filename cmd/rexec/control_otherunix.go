//go:build unix && !linux

package main

import "net"

// samePeerUser: the control directory's mode 0700 keeps other users out.
var samePeerUser func(net.Conn) error
