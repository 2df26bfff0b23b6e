package main

import (
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/execd-project/execd/cmd/execd/internal/systemd"
)

// activatedListener is the listening socket systemd passed (execd.socket),
// or nil when execd was not socket-activated. The activation's variables
// are cleared, so that no command takes the sockets for its own.
func activatedListener(log *slog.Logger) (net.Listener, error) {
	lns, err := systemd.Listeners(os.Getenv)
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		_ = os.Unsetenv(k) // best effort: only our children would see them
	}
	if err != nil || len(lns) == 0 {
		return nil, err
	}
	for _, extra := range lns[1:] {
		log.Warn("more than one socket passed by systemd; serving the first", "ignored", extra.Addr().String())
		_ = extra.Close()
	}
	log.Info("listening on the socket systemd passed", "addr", lns[0].Addr().String())
	return lns[0], nil
}

// isLoopbackAddr reports whether a listener's address is a loopback one.
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// notify tells systemd (Type=notify) a state change; a no-op elsewhere.
func notify(log *slog.Logger, state string) {
	if _, err := systemd.Notify(os.Getenv, state); err != nil {
		log.Warn("could not notify systemd", "err", err)
	}
}

// watchdog answers systemd's watchdog (WatchdogSec=) at half its
// interval until accepting is closed: a daemon whose accept loop has
// ended stops answering, and systemd restarts it. The returned stop
// ends it.
func watchdog(log *slog.Logger, accepting <-chan struct{}) (stop func()) {
	iv, err := systemd.WatchdogInterval(os.Getenv)
	if err != nil {
		log.Warn("watchdog not answered", "err", err)
	}
	if iv <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-accepting:
				return
			case <-t.C:
				notify(log, "WATCHDOG=1")
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
