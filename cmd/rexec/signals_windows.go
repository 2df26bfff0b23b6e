//go:build windows

package main

import (
	"os"
	"os/signal"
)

// notifySignals routes the signals rexec forwards to ch: Ctrl-C only.
func notifySignals(ch chan<- os.Signal) { signal.Notify(ch, os.Interrupt) }

// signalName names a local signal as the protocol does.
func signalName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "INT"
	}
	return ""
}
