package main

import (
	"os"
	"os/signal"
	"syscall"
)

// isStatusSignal is false: Windows has no USR1.
func isStatusSignal(os.Signal) bool { return false }

// notifySignals routes Ctrl+C and Ctrl+Break (INT) and the console's
// close (TERM) to sigs.
func notifySignals(sigs chan<- os.Signal) {
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
}
