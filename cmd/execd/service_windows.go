package main

import (
	"context"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/windows/svc"
)

// runService runs execd under the Windows service manager when that is
// what started it ("sc create execd binPath= ..."): Stop and Shutdown
// become a graceful stop, as SIGTERM does elsewhere. It reports false when
// execd was started any other way.
func runService() (bool, int) {
	args, forced := withoutFlag(os.Args[1:], "--service")
	is, err := svc.IsWindowsService()
	if !forced && (err != nil || !is) {
		return false, 0
	}
	s := &service{args: args}
	if err := svc.Run("execd", s); err != nil {
		return true, 1
	}
	return true, s.code
}

type service struct {
	args []string
	code int
}

// Execute implements svc.Handler.
func (s *service) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	sigs := make(chan os.Signal, 2)
	done := make(chan int, 1)
	go func() {
		// A service has no console: --log-file keeps the log.
		done <- run(context.Background(), s.args, strings.NewReader(""), io.Discard, io.Discard, sigs)
	}()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				sigs <- os.Interrupt
			}
		case code := <-done:
			s.code = code
			return false, uint32(code)
		}
	}
}

// withoutFlag removes flag from args and reports whether it was there:
// "--service" in a service's binPath says so when detection cannot.
func withoutFlag(args []string, flag string) ([]string, bool) {
	out := make([]string, 0, len(args))
	found := false
	for _, a := range args {
		if a == flag {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}
