//go:build !linux

package proc

// PendingOutput is how many bytes of the command's output wait unread:
// not known here (0).
func (p *Process) PendingOutput() int { return 0 }
