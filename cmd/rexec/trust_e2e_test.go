package main_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/internal/daemontest"
)

// runBounded runs rexec with stdin from /dev/null and fails the test if it
// has not exited within limit (it is then killed by its pid).
func (c *client) runBounded(limit time.Duration, args ...string) (result, time.Duration) {
	c.t.Helper()
	cmd := c.command(args...)
	null, err := os.Open(os.DevNull)
	require.NoError(c.t, err)
	defer func() { _ = null.Close() }()
	cmd.Stdin = null
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(c.t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("rexec %s did not exit within %s; stderr: %s", strings.Join(args, " "), limit, errb.String())
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}, time.Since(start)
}

// Item 13: a reset in the middle of output ends rexec at once with 255
// and one line.
func TestE2EResetMidOutputExits(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir())
	c := newClient(t)
	r := c.run("", d.addr, "true")
	require.Equal(t, 0, r.code, r.stderr)
	p := daemontest.StartProxy(t, d.addr)
	p.ResetNext(true, 200<<10)
	r, took := c.runBounded(10*time.Second, p.Addr, "--", "sh", "-c", "for i in $(seq 0 29); do seq 1 20000; sleep 0.1; done")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "connection lost")
	assert.Less(t, took, 3*time.Second)

	p.ResetNext(true, 200<<10)
	r, took = c.runBounded(10*time.Second, "-H", p.Addr, "--", "sh", "-c", "for i in $(seq 0 29); do seq 1 20000; sleep 0.1; done")
	assert.Equal(t, 255, r.code, "fan-out: a lost host is 255")
	assert.Contains(t, r.stderr, "connection lost")
	assert.Less(t, took, 3*time.Second)
}
