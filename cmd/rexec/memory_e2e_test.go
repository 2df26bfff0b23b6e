//go:build linux

package main_test

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// Issue 27 item 8: a client of the user's master that grants a GiB of
// credit and never reads leaves the master's RSS within its bound (it
// grew from 11 to 798 MB before), and the next rexec goes on.
func TestE2EControlMasterMemoryBounded(t *testing.T) {
	c := newSharingClient(t)
	require.Equal(t, 0, c.runIn("", c.host, "true").code)
	pid := c.master()
	require.NotZero(t, pid)
	socks, _ := filepath.Glob(filepath.Join(c.run, "rexec", "c-*[0-9a-f]"))
	require.Len(t, socks, 1)
	before := rssKiB(t, pid)
	nc, err := net.Dial("unix", socks[0])
	require.NoError(t, err)
	defer func() { _ = nc.Close() }()
	mc := mux.NewConn(nc, nil, 0, 0)
	require.NoError(t, mc.SendJSON(frame.Hello, 0, &frame.HelloMsg{Software: "raw", MaxPayload: frame.DefaultMaxPayload}))
	require.NoError(t, mc.SendJSON(frame.Open, 1, &frame.OpenMsg{Kind: frame.KindExec, Window: frame.MaxWindow, Argv: []string{"head", "-c", "500000000", "/dev/zero"}}))
	last, still := int64(-1), 0
	require.Eventually(t, func() bool { // it reads nothing: the master's RSS stops growing
		n := rssKiB(t, pid)
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
		return still >= 10
	}, 60*time.Second, 100*time.Millisecond)
	t.Logf("master RSS %d KiB, with a client that reads nothing of a command's 500 MB at a GiB of credit: %d KiB", before, last)
	assert.Less(t, last-before, int64(64<<10), "the master holds its bound, not the client's credit")
	r := c.runIn("", c.host, "echo", "still")
	assert.Equal(t, result{"still\n", "", 0}, r)
}
