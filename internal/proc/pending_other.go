//go:build !linux

package proc

// Pending is how many bytes wait in the kernel to be read from x: not
// known here (0).
func Pending(any) int { return 0 }

// PendingOutput is how many bytes of the command's output wait unread:
// not known here (0).
func (p *Process) PendingOutput() int { return 0 }
