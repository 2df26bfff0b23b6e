package rexec_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/internal/daemontest"
	"github.com/execd-project/execd/rexec"
)

// A connection reset in the middle of output ends Wait at once with
// ErrConnectionLost: nothing waits on a stream of a dead connection.
func TestResetMidOutputEndsWait(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, &execd.Server{KillGrace: 500 * time.Millisecond}, false)
	p := daemontest.StartProxy(t, d.Addr)
	p.ResetNext(true, 64<<10)
	c := dial(t, &daemontest.Daemon{Addr: p.Addr, Fingerprint: d.Fingerprint})
	s, err := c.NewSession()
	require.NoError(t, err)
	s.Stdout, s.Stderr = io.Discard, io.Discard
	require.NoError(t, s.StartShell(t.Context(), "for i in $(seq 0 29); do seq 1 20000; sleep 0.1; done"))
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, rexec.ErrConnectionLost)
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after a connection reset")
	}
	assert.False(t, errors.Is(c.Wait(), nil))
}
