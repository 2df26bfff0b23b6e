//go:build unix

package naive_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/cmd/internal/naive"
)

// TestStickyPackets runs the lesson: with one recv(16) per answer, the
// rest of a long output arrives as the answer to the next command.
func TestStickyPackets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &naive.Server{Dir: t.TempDir(), KillGrace: 200 * time.Millisecond}
	served := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	c := &naive.Client{Conn: conn, RecvBuffer: 16, AnswerWait: 5 * time.Second}

	var out bytes.Buffer
	n, err := c.Ask("echo 0123456789abcdefXYZ", &out)
	require.NoError(t, err)
	assert.Equal(t, 16, n)
	assert.Equal(t, "0123456789abcdef", out.String(), "one recv holds 16 bytes")
	// The rest of the first answer comes before the second answer, glued
	// to it: read on until the second answer has come whole.
	var all bytes.Buffer
	all.Write(out.Bytes())
	out.Reset()
	_, err = c.Ask("echo second", &out)
	require.NoError(t, err)
	all.Write(out.Bytes())
	buf := make([]byte, 64)
	for !strings.HasSuffix(all.String(), "second\n") {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := conn.Read(buf)
		require.NoError(t, err, "so far %q", all.String())
		all.Write(buf[:n])
	}
	assert.Equal(t, "0123456789abcdefXYZ\nsecond\n", all.String(), "the two answers ran into each other")

	c.AnswerWait = 300 * time.Millisecond
	out.Reset()
	_, err = c.Ask("true", &out)
	assert.ErrorIs(t, err, naive.ErrNoAnswer, "an empty answer looks like a slow one")
}
