package rexec_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// fakeDaemon speaks just enough of the protocol (plaintext) to answer a
// recursive get of "tree" with a listing a hostile server would send.
func fakeDaemon(t *testing.T, entries []frame.FileInfo) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r, w := frame.NewReader(nc, 0), frame.NewWriter(nc, 0)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			switch f.Type {
			case frame.Hello:
				_ = w.WriteJSON(frame.Hello, 0, &frame.HelloMsg{Software: "hostile", MaxPayload: frame.DefaultMaxPayload})
			case frame.Open:
				_ = w.WriteJSON(frame.OpenOK, f.Channel, &frame.OpenOKMsg{Window: 1, Cwd: "~"})
			case frame.Request:
				var req frame.FileRequest
				require.NoError(t, frame.Unmarshal(f.Payload, &req))
				reply := &frame.FileReply{ID: req.ID}
				if req.Op == frame.OpList {
					reply.Entries = entries
				} else {
					reply.Info = &frame.FileInfo{Name: "tree", Type: frame.FileDir, Mode: 0o755}
				}
				_ = w.WriteJSON(frame.Reply, f.Channel, reply)
			}
		}
	}()
	return ln.Addr().String()
}

// TestHostileListing: names a daemon lists are checked before anything is
// created, and every write stays inside the local target (os.Root).
func TestHostileListing(t *testing.T) {
	addr := fakeDaemon(t, []frame.FileInfo{
		{Name: "../escaped", Type: frame.FileRegular, Size: 1},
		{Name: "a/b", Type: frame.FileDir},
		{Name: "..", Type: frame.FileDir},
		{Name: "up", Type: frame.FileSymlink, Target: "../../etc"},
		{Name: "abs", Type: frame.FileSymlink, Target: "/etc/passwd"},
	})
	c, err := rexec.Dial(t.Context(), addr, &rexec.Config{Plaintext: true})
	require.NoError(t, err)
	defer c.Close()
	base := t.TempDir()
	target := filepath.Join(base, "target")
	st, err := c.Get(t.Context(), "tree", target, &rexec.TransferOptions{Recursive: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `invalid entry name "../escaped"`)
	assert.Contains(t, err.Error(), `invalid entry name "a/b"`)
	assert.Contains(t, err.Error(), `invalid entry name ".."`)
	assert.Contains(t, err.Error(), "up -> ../../etc: points outside the copied tree")
	assert.Contains(t, err.Error(), "abs -> /etc/passwd: points outside the copied tree")
	assert.Equal(t, 5, st.Skipped)
	entries, err := os.ReadDir(base)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing beside the target")
	inside, err := os.ReadDir(target)
	require.NoError(t, err)
	assert.Empty(t, inside, "nothing created from the hostile names")
}

// Item 18: a chain of links that each read as inside (b -> ., then a
// climbing through b) is refused, and nothing outside the target changes.
func TestHostileLinkChain(t *testing.T) {
	addr := fakeDaemon(t, []frame.FileInfo{
		{Name: "b", Type: frame.FileSymlink, Target: "."},
		{Name: "a", Type: frame.FileSymlink, Target: "b/b/b/../../.."},
		{Name: "c", Type: frame.FileSymlink, Target: "b/../x"},
	})
	c, err := rexec.Dial(t.Context(), addr, &rexec.Config{Plaintext: true})
	require.NoError(t, err)
	defer c.Close()
	target := filepath.Join(t.TempDir(), "target")
	st, err := c.Get(t.Context(), "tree", target, &rexec.TransferOptions{Recursive: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a -> b/b/b/../../..: points outside the copied tree")
	assert.Contains(t, err.Error(), "c -> b/../x: points outside the copied tree")
	assert.Equal(t, 2, st.Skipped)
	_, err = os.Lstat(filepath.Join(target, "a"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	got, err := os.Readlink(filepath.Join(target, "b"))
	require.NoError(t, err)
	assert.Equal(t, ".", got, "a link that stays inside is kept")
}
