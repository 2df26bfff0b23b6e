//go:build unix

package rexec_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/rexec"
)

// What a hostile or careless user could point a tail at: a named pipe
// (no hang), a directory, a link out of the home, a line longer than a
// record, each a clear error or handled, and the daemon serves on.
func TestTailHostileTargets(t *testing.T) {
	t.Parallel()
	_, c, served := startFiles(t)
	require.NoError(t, syscall.Mkfifo(filepath.Join(served, "pipe"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(served, "dir"), 0o755))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(served, "out")))
	for _, name := range []string{"pipe", "dir", "out"} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := c.Tail(ctx, name, rexec.TailOptions{Lines: -1, Follow: true}, io.Discard)
		cancel()
		var re *rexec.RemoteError
		assert.ErrorAs(t, err, &re, "%s: %v", name, err)
	}
	long := bytes.Repeat([]byte("z"), 3<<20) // past one record: judged as it is, not held forever
	require.NoError(t, os.WriteFile(filepath.Join(served, "long"), append(append([]byte("ERROR "), long...), '\n'), 0o644))
	var out bytes.Buffer
	_, err := c.Tail(t.Context(), "long", rexec.TailOptions{Lines: -1, Grep: "^ERROR"}, &out)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(out.Bytes(), []byte("ERROR zzz")), "the long line's start matched")
	var all bytes.Buffer
	_, err = c.Tail(t.Context(), "long", rexec.TailOptions{Lines: 1}, &all)
	require.NoError(t, err)
	assert.Equal(t, 3<<20+7, all.Len(), "without grep every byte")
}
