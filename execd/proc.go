package execd

import "github.com/execd-project/execd/frame"

// procSpec is what startProcess needs.
type procSpec struct {
	argv  []string // run directly, without a shell; or
	shell string   // a command line for the platform's shell (/bin/sh -c, cmd.exe /C), passed as typed
	env   []string
	dir   string
	pty   *frame.PtyRequest
	cred  *credential // nil: the daemon's own account
}
