package rexec_test

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/internal/daemontest"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/rexec"
)

// startFiles serves a fresh directory; it returns the daemon, a client and
// the served directory.
func startFiles(t *testing.T) (*daemontest.Daemon, *rexec.Client, string) {
	t.Helper()
	served := t.TempDir()
	d := daemontest.Start(t, &execd.Server{Dir: served, KillGrace: 500 * time.Millisecond}, false)
	return d, dial(t, d), served
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRoundTripSizes(t *testing.T) {
	_, c, served := startFiles(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0}},
		{"all 256 byte values", bytes.Repeat(all, 1000)},
		{"chunk-1", randomBytes(mux.DefaultChunk-1, 1)},
		{"chunk", randomBytes(mux.DefaultChunk, 2)},
		{"chunk+1", randomBytes(mux.DefaultChunk+1, 3)},
		{"window+1", randomBytes(rexec.DefaultWindow+1, 4)},
		{"5 MiB", randomBytes(5<<20+7, 5)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			local := t.TempDir()
			src := filepath.Join(local, "src.bin")
			require.NoError(t, os.WriteFile(src, tc.data, 0o640))
			mtime := time.Date(2020, 2, 29, 12, 34, 56, 789, time.UTC)
			require.NoError(t, os.Chtimes(src, mtime, mtime))

			remote := "up" + string(rune('a'+i)) + ".bin"
			st, err := c.Put(t.Context(), []string{src}, remote, nil)
			require.NoError(t, err)
			assert.Equal(t, 1, st.Files)
			assert.Equal(t, uint64(len(tc.data)), st.Bytes)
			got, err := os.ReadFile(filepath.Join(served, remote))
			require.NoError(t, err)
			assert.Equal(t, sha256.Sum256(tc.data), sha256.Sum256(got))
			fi, err := os.Stat(filepath.Join(served, remote))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
			assert.True(t, fi.ModTime().Equal(mtime), "mtime %v", fi.ModTime())

			dst := filepath.Join(local, "back.bin")
			st, err = c.Get(t.Context(), remote, dst, nil)
			require.NoError(t, err)
			assert.Equal(t, 1, st.Files)
			back, err := os.ReadFile(dst)
			require.NoError(t, err)
			assert.Equal(t, sha256.Sum256(tc.data), sha256.Sum256(back))
			fi, err = os.Stat(dst)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
			assert.True(t, fi.ModTime().Equal(mtime))
			entries, err := os.ReadDir(local)
			require.NoError(t, err)
			assert.Len(t, entries, 2, "no partial copy left behind")
		})
	}
}
