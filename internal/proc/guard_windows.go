package proc

import (
	"errors"
	"io"
)

// guard: on Windows a command's job object ends with the daemon.
type guard struct{}

func startGuard(argv []string, cg *cgroupRoot, stderr io.Writer) (*guard, error) {
	return nil, errors.New("not needed on Windows: job objects end with the daemon")
}

func (g *guard) pid() int         { return 0 }
func (g *guard) send(line string) {}
func (g *guard) close() error     { return nil }

// RunGuard has nothing to do on Windows.
func RunGuard(in io.Reader, stderr io.Writer) error {
	return errors.New("execd guard: not used on Windows")
}
