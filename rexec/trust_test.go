//go:build unix

package rexec_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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

// Item 9: a process that escaped its group with the output pipe holds the
// exit back no longer than the documented bound (KillGrace plus a second).
func TestEscapedProcessDoesNotHoldExit(t *testing.T) {
	t.Parallel()
	_, c := start(t) // KillGrace 500ms
	s, err := c.NewSession()
	require.NoError(t, err)
	var out bytes.Buffer
	s.Stdout = &out
	began := time.Now()
	require.NoError(t, s.StartShell(t.Context(), "setsid sleep 25 & echo $!; sleep 0.5"))
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("exit held back by an escaped process")
	}
	require.NoError(t, err)
	assert.Less(t, time.Since(began), 3*time.Second)
	if pid, err := strconv.Atoi(strings.TrimSpace(out.String())); assert.NoError(t, err) {
		_ = syscall.Kill(pid, syscall.SIGKILL) // the escaped sleep was started for this test
	}
}

// Item 4: a finished connection is not kept in memory until the idle
// timeout (the timer was re-armed after the close). Not parallel: it
// measures the heap.
func TestFinishedConnectionsAreFreed(t *testing.T) {
	d := daemontest.Start(t, &execd.Server{IdleTimeout: time.Hour}, false)
	cfg := &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey()}
	oneShot := func() {
		c, err := rexec.Dial(t.Context(), d.Addr, cfg)
		require.NoError(t, err)
		s, err := c.NewSession()
		require.NoError(t, err)
		require.NoError(t, s.Run(t.Context(), "true"))
		require.NoError(t, c.Close())
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	oneShot()
	before := heap()
	for range 200 {
		oneShot()
	}
	require.Eventually(t, func() bool { return d.Server.NumConns() == 0 }, 5*time.Second, 10*time.Millisecond)
	grew := int64(heap()) - int64(before)
	t.Logf("heap in use after 200 one-shot connections: %+d KiB", grew>>10)
	assert.Less(t, grew, int64(4<<20), "finished connections are still referenced")
}
