//go:build !unix

package main

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// Connection sharing needs unix sockets with peer checks and flock: off
// here, and every rexec connects directly.

var errNoSharing = errors.New("connection sharing is not supported on this system")

func detachedProcess() *syscall.SysProcAttr { return nil }

func checkPrivateDir(string) error { return errNoSharing }

type fileLock struct{ f *os.File }

func takeLock(string) (*fileLock, bool, error) { return nil, false, errNoSharing }

func (l *fileLock) release() {}

func locked(string) bool { return false }

var samePeerUser func(net.Conn) error

// keepInheritedFromChildren: Windows children inherit only the handles
// they are given.
func keepInheritedFromChildren() {}
