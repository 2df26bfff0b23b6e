package execd

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readAll is every event of the log and its rotated files, in order, by
// their Path.
func readAll(t *testing.T, path string) []string {
	t.Helper()
	files, err := AuditFiles(path)
	require.NoError(t, err)
	var got []string
	require.NoError(t, ReadAuditFiles(files, func(ev *AuditEvent) error {
		got = append(got, ev.Path)
		return nil
	}))
	return got
}

// gzipLike compresses name to name.gz as gzip does: the original goes,
// and its time of last write stays.
func gzipLike(t *testing.T, name string) {
	t.Helper()
	fi, err := os.Stat(name)
	require.NoError(t, err)
	in, err := os.Open(name)
	require.NoError(t, err)
	out, err := os.Create(name + ".gz")
	require.NoError(t, err)
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, out.Close())
	require.NoError(t, in.Close())
	require.NoError(t, os.Remove(name))
	require.NoError(t, os.Chtimes(name+".gz", fi.ModTime(), fi.ModTime()))
}

// The daemon's own rotation by size keeps Keep files, shifts compressed
// ones as they are, and the reader gives every event kept once, in order.
func TestAuditRotationBySize(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), AuditFile)
	a, err := OpenAudit(path, AuditConfig{MaxSize: 400, Keep: 3, Sync: true, OnError: func(err error) { t.Error(err) }})
	require.NoError(t, err)
	defer a.Close()
	n := 0
	logN := func(k int) {
		for range k {
			a.Log(&AuditEvent{Event: "get", User: "alice", Path: fmt.Sprintf("e%03d", n)})
			n++
		}
	}
	logN(12) // about 90 bytes each: two rotations
	assert.FileExists(t, path+".1")
	assert.FileExists(t, path+".2")
	gzipLike(t, path+".2") // as logrotate's compress would
	logN(5)                // one more rotation
	for _, name := range []string{".1", ".2", ".3.gz"} {
		assert.FileExists(t, path+name)
	}
	assert.NoFileExists(t, path+".3", "the compressed one moved as it is")
	got := readAll(t, path)
	assert.Equal(t, "e000", got[0], "nothing dropped yet")
	assert.Len(t, got, n)
	logN(20)
	assert.NoFileExists(t, path+".4")
	assert.NoFileExists(t, path+".4.gz")
	assert.NoFileExists(t, path+".3.gz", "past Keep")

	got = readAll(t, path)
	require.NotEmpty(t, got)
	first := 0
	_, err = fmt.Sscanf(got[0], "e%03d", &first)
	require.NoError(t, err)
	for i, p := range got {
		assert.Equal(t, fmt.Sprintf("e%03d", first+i), p, "every kept event once, in order")
	}
	assert.Equal(t, n-1, first+len(got)-1, "up to the last event")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Less(t, fi.Size(), int64(400))
}

// A torn line in a rotated file is reported with the file's name.
func TestReadAuditFilesNamesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), AuditFile)
	require.NoError(t, os.WriteFile(path+".1", []byte("{\"event\":\"get\"}\n{\"eve"), 0o600))
	require.NoError(t, os.WriteFile(path, []byte("{\"event\":\"put\"}\n"), 0o600))
	files, err := AuditFiles(path)
	require.NoError(t, err)
	err = ReadAuditFiles(files, func(*AuditEvent) error { return nil })
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+".1: audit log line 2")
}
