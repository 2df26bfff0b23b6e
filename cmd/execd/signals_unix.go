//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// isStatusSignal reports whether sig asks a running daemon to log its
// status: USR1.
func isStatusSignal(sig os.Signal) bool { return sig == syscall.SIGUSR1 }

// notifySignals routes the daemon's signals to sigs: INT and TERM stop
// it; HUP is taken, not left to Go's default (death), as a closing
// terminal or a log rotator sends it; USR1 logs the status. PIPE is
// ignored: a log reader that went away makes writes fail, not the daemon
// die.
func notifySignals(sigs chan<- os.Signal) {
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	signal.Ignore(syscall.SIGPIPE)
}
