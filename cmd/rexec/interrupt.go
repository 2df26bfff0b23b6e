package main

import (
	"context"
	"sync"

	"github.com/execd-project/execd/rexec"
)

// signalStatus is the exit status of a command ended by a signal rexec
// stops on: 128+N, as a shell reports it (130 for INT, 143 for TERM,
// 129 for HUP).
func signalStatus(name string) int {
	return 128 + rexec.SignalNumber(rexec.Signal(name))
}

// interruptible returns a context that the first INT, TERM or HUP
// cancels, and stop, which ends the watch and names the signal that
// cancelled it ("" when none did). A transfer run under it stops at once
// and keeps its partial copies for a resume.
func interruptible(ctx context.Context, e env) (context.Context, func() string) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := ""
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case sig := <-e.signals:
				switch name := signalName(sig); name {
				case "INT", "TERM", "HUP":
					mu.Lock()
					if got == "" {
						got = name
					}
					mu.Unlock()
					cancel()
				}
			}
		}
	}()
	return ctx, func() string {
		close(done)
		wg.Wait()
		cancel()
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// interrupted prints what an interrupted transfer left and returns the
// exit status for the signal.
func interrupted(sig string) error {
	return fail(signalStatus(sig), "interrupted by SIG%s: partial copies are kept; the same command resumes them", sig)
}
