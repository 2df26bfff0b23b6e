// Package proc starts the commands of a daemon and ends them: a process
// group (a session with a pty) on Unix, a job object on Windows; named
// signals delivered to the whole group; a grace period between TERM and
// KILL; and the exit status as the protocol reports it.
package proc

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/execd-project/execd/frame"
)

// DefaultGrace is the usual time between TERM and KILL.
const DefaultGrace = 3 * time.Second

// Spec is the command Start starts.
type Spec struct {
	Argv  []string // run directly, without a shell; or
	Shell string   // a command line for the platform's shell (/bin/sh -c, cmd.exe /C), passed as typed
	// ShellPath is the shell that runs Shell on Unix (the account's login
	// shell); empty means /bin/sh.
	ShellPath string
	Env       []string
	Dir       string
	Pty       *frame.PtyRequest
	Cred      *Credential // nil: the daemon's own account
	// Keeper, when set, keeps the command from outliving the daemon.
	Keeper *Keeper
}

// pipes are a command's stdin, stdout and stderr: the child's ends (inR,
// outW, errW) and the daemon's.
type pipes struct {
	inR, inW, outR, outW, errR, errW *os.File
}

func newPipes() (*pipes, error) {
	var p pipes
	var errs [3]error
	p.inR, p.inW, errs[0] = os.Pipe()
	p.outR, p.outW, errs[1] = os.Pipe()
	p.errR, p.errW, errs[2] = os.Pipe()
	if err := errors.Join(errs[:]...); err != nil {
		p.closeAll()
		return nil, fmt.Errorf("pipes: %w", err)
	}
	return &p, nil
}

// closeAll closes every end, after a failed start.
func (p *pipes) closeAll() {
	for _, f := range []*os.File{p.inR, p.inW, p.outR, p.outW, p.errR, p.errW} {
		if f != nil {
			_ = f.Close() // best effort
		}
	}
}

// closeChildEnds closes the ends the started child holds its own copies of.
func (p *pipes) closeChildEnds() {
	_ = p.inR.Close()
	_ = p.outW.Close()
	_ = p.errW.Close()
}
