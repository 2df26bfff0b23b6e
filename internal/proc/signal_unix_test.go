//go:build unix

package proc

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"

	"github.com/execd-project/execd/frame"
)

// Every signal a client may ask for exists on this system, under the
// number the protocol's table gives (Linux numbering) on Linux.
func TestDeliverableSignalsExist(t *testing.T) {
	for _, name := range frame.SignalNames() {
		sig := unix.SignalNum("SIG" + name)
		assert.NotZero(t, sig, name)
		if runtime.GOOS == "linux" {
			assert.Equal(t, frame.SignalNumber(name), int(sig), name)
		}
	}
}
