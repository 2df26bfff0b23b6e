package frame_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/execd-project/execd/frame"
)

func TestSignals(t *testing.T) {
	tests := []struct {
		name    string
		number  int
		deliver bool
	}{
		{"HUP", 1, true}, {"INT", 2, true}, {"KILL", 9, true}, {"TERM", 15, true},
		{"WINCH", 28, true}, {"SEGV", 11, false}, {"ABRT", 6, false}, {"NOPE", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.number, frame.SignalNumber(tc.name))
			assert.Equal(t, tc.deliver, (&frame.SignalMsg{Signal: tc.name}).Validate() == nil)
			assert.Equal(t, tc.deliver, slices.Contains(frame.SignalNames(), tc.name))
		})
	}
}
