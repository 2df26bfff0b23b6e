//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// notifySignals routes the signals rexec forwards to ch.
func notifySignals(ch chan<- os.Signal) {
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH)
}

// signalName names a local signal as the protocol does; "WINCH" for a
// window size change, "" for one rexec does not forward.
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGWINCH:
		return "WINCH"
	}
	return ""
}
