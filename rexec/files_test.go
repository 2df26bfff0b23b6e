package rexec_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/rexec"
)

// startFiles serves a fresh directory; it returns the daemon, a client and
// the served directory.
func startFiles(t *testing.T) (*execdtest.Server, *rexec.Client, string) {
	t.Helper()
	served := t.TempDir()
	d := execdtest.Start(t, &execd.Server{Dir: served, KillGrace: 500 * time.Millisecond}, false)
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

// startPlainFiles serves a fresh directory in plaintext (so that a proxy
// can see frames) behind a proxy.
func startProxied(t *testing.T, plaintext bool) (*execdtest.Proxy, string, func() *rexec.Client, *execd.Server) {
	t.Helper()
	served := t.TempDir()
	d := execdtest.Start(t, &execd.Server{Dir: served, KillGrace: 500 * time.Millisecond}, plaintext)
	p := execdtest.StartProxy(t, d.Addr)
	connect := func() *rexec.Client {
		proxied := *d
		proxied.Addr = p.Addr
		return dial(t, &proxied)
	}
	return p, served, connect, d.Server
}

func partSize(t *testing.T, dir, name string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, "."+name+".rexec-part"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestResumeAfterCut cuts the connection at random points of a get and of
// a put, then finishes the copy: the result is byte-exact and the retry
// sends only the bytes that were missing.
func TestResumeAfterCut(t *testing.T) {
	const size = 24<<20 + 12345
	data := randomBytes(size, 42)
	rng := rand.New(rand.NewPCG(7, 7))
	for _, dir := range []string{"get", "put"} {
		t.Run(dir, func(t *testing.T) {
			p, served, connect, srv := startProxied(t, false)
			local := t.TempDir()
			src := filepath.Join(local, "src.bin")
			require.NoError(t, os.WriteFile(filepath.Join(served, "src.bin"), data, 0o644))
			require.NoError(t, os.WriteFile(src, data, 0o644))
			dest, destDir, name := filepath.Join(local, "dst.bin"), local, "dst.bin"
			if dir == "put" {
				dest, destDir = filepath.Join(served, "dst.bin"), served
			}
			copyOnce := func(c *rexec.Client) (*rexec.TransferStats, error) {
				if dir == "get" {
					return c.Get(t.Context(), "src.bin", dest, &rexec.TransferOptions{})
				}
				return c.Put(t.Context(), []string{src}, "dst.bin", &rexec.TransferOptions{})
			}
			var kept int64
			for cut := 0; cut < 3; cut++ {
				// A cut point (in bytes of this connection) inside what is still missing.
				remaining := int64(size) - kept
				at := remaining/4 + rng.Int64N(remaining/2)
				p.CutNext(dir == "get", at)
				c := connect()
				_, err := copyOnce(c)
				require.Error(t, err, "cut at %d", at)
				assert.ErrorIs(t, err, rexec.ErrConnectionLost)
				_ = c.Close()
				_, statErr := os.Stat(dest)
				assert.True(t, os.IsNotExist(statErr), "nothing under the real name before the copy is complete")
				// The daemon lets go of a put's partial copy once it sees the
				// cut: its connection is gone when every channel of it has
				// ended, the put's last write and close included.
				require.Eventually(t, func() bool { return srv.NumConns() == 0 }, 10*time.Second, 5*time.Millisecond)
				kept = partSize(t, destDir, name)
				require.Positive(t, kept, "cut %d kept nothing", cut)
			}
			before := p.ToClient.Load() + p.ToServer.Load()
			st, err := copyOnce(connect())
			require.NoError(t, err)
			sent := p.ToClient.Load() + p.ToServer.Load() - before
			got, err := os.ReadFile(dest)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(data, got), "byte-exact after resuming")
			assert.Equal(t, uint64(kept), st.Resumed, "resumed from the partial copy")
			assert.Equal(t, uint64(size-kept), st.Bytes, "only the missing bytes sent")
			assert.Less(t, sent, int64(size)-kept+64<<10, "wire bytes: missing part plus framing")
			assert.Equal(t, int64(0), partSize(t, destDir, name), "partial copy renamed into place")
			t.Logf("%s: kept %d of %d bytes, retry sent %d on the wire", dir, kept, size, sent)
		})
	}
}

// TestCorruptChunkDetected flips one byte of one data frame on the wire
// (plaintext, so that TLS does not catch it first): the copy is refused,
// the existing destination is untouched and no partial copy remains.
func TestCorruptChunkDetected(t *testing.T) {
	data := randomBytes(3<<20, 9)
	old := []byte("the previous version, which must survive\n")
	for _, tc := range []struct{ dir, hash, name string }{
		{"get", frame.HashBLAKE3, "BLAKE3"}, {"put", frame.HashBLAKE3, "BLAKE3"},
		{"get", frame.HashSHA256, "SHA-256"}, {"put", frame.HashSHA256, "SHA-256"},
	} {
		dir := tc.dir
		opts := &rexec.TransferOptions{Hash: tc.hash}
		t.Run(dir+"/"+tc.hash, func(t *testing.T) {
			p, served, connect, _ := startProxied(t, true)
			local := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(served, "src.bin"), data, 0o644))
			src := filepath.Join(local, "src.bin")
			require.NoError(t, os.WriteFile(src, data, 0o644))
			destDir := local
			if dir == "put" {
				destDir = served
			}
			dest := filepath.Join(destDir, "dst.bin")
			require.NoError(t, os.WriteFile(dest, old, 0o644))
			var n int
			p.Tamper(func(toClient bool, f *frame.Frame) {
				if f.Type == frame.Data && toClient == (dir == "get") && len(f.Payload) > 100 {
					if n++; n == 5 {
						f.Payload[77] ^= 0x20
					}
				}
			})
			c := connect()
			var err error
			if dir == "get" {
				_, err = c.Get(t.Context(), "src.bin", dest, opts)
			} else {
				_, err = c.Put(t.Context(), []string{src}, "dst.bin", opts)
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.name+" mismatch")
			got, rerr := os.ReadFile(dest)
			require.NoError(t, rerr)
			assert.Equal(t, old, got, "destination untouched")
			assert.Equal(t, int64(0), partSize(t, destDir, "dst.bin"), "bad copy not kept")
			// The connection survives the refused file.
			_, err = c.Get(t.Context(), "src.bin", filepath.Join(local, "again.bin"), opts)
			require.NoError(t, err)
		})
	}
}

// makeTree builds a tree with nested and empty directories, odd names,
// modes, times and symlinks (one inside the tree, two pointing out).
func makeTree(t *testing.T, root string) {
	t.Helper()
	mt := func(p string, sec int64) {
		tm := time.Unix(sec, 0)
		require.NoError(t, os.Chtimes(p, tm, tm))
	}
	files := map[string]string{
		"a.txt":                    "alpha\n",
		"empty":                    "",
		"with space.txt":           "space\n",
		`quote's "double".txt`:     "quotes\n",
		"中文目录/数据 1.csv":            "一,二,三\n",
		"-leading-dash":            "dash\n",
		"sub/deeper/deepest/z.bin": string(randomBytes(300<<10, 3)),
		"sub/x.sh":                 "#!/bin/sh\necho x\n",
	}
	for p, content := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	require.NoError(t, os.Chmod(filepath.Join(root, "sub/x.sh"), 0o750))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "empty dir"), 0o700))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "sub/empty"), 0o755))
	require.NoError(t, os.Symlink("deeper/deepest/z.bin", filepath.Join(root, "sub/link-in")))
	require.NoError(t, os.Symlink("../../etc/passwd", filepath.Join(root, "sub/link-out")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(root, "abs-link")))
	var i int64
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.Type()&os.ModeSymlink == 0 {
			i++
			mt(p, 1500000000+i*3600)
		}
		return nil
	}))
}

// treeOf describes a tree: type, mode, mtime, content hash, link target.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fi.IsDir():
			if rel != "." {
				out[rel] = fmt.Sprintf("dir %v %d", fi.Mode().Perm(), fi.ModTime().Unix())
			}
		default:
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			out[rel] = fmt.Sprintf("file %v %d %x", fi.Mode().Perm(), fi.ModTime().Unix(), sha256.Sum256(b))
		}
		return nil
	}))
	return out
}

func TestRecursiveTree(t *testing.T) {
	_, c, served := startFiles(t)
	local := t.TempDir()
	src := filepath.Join(local, "tree")
	require.NoError(t, os.Mkdir(src, 0o755))
	makeTree(t, src)
	want := treeOf(t, src)
	delete(want, "sub/link-out") // unsafe links are skipped, with a warning
	delete(want, "abs-link")

	st, err := c.Put(t.Context(), []string{src}, "~", &rexec.TransferOptions{Recursive: true})
	require.Error(t, err, "the skipped links are reported")
	assert.Contains(t, err.Error(), "link-out -> ../../etc/passwd: points outside the copied tree")
	assert.Contains(t, err.Error(), "abs-link -> /etc")
	assert.Equal(t, 2, st.Skipped)
	assert.Equal(t, 8, st.Files)
	assert.Equal(t, 1, st.Links)
	assert.Equal(t, want, treeOf(t, filepath.Join(served, "tree")), "put -r")

	// and back, into an existing directory (scp: into it)
	back := filepath.Join(local, "back")
	require.NoError(t, os.Mkdir(back, 0o755))
	st, err = c.Get(t.Context(), "tree", back, &rexec.TransferOptions{Recursive: true})
	require.NoError(t, err)
	assert.Equal(t, 8, st.Files)
	assert.Equal(t, want, treeOf(t, filepath.Join(back, "tree")), "get -r")

	// a directory without -r is refused clearly
	_, err = c.Get(t.Context(), "tree", back, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is a directory (use -r)")
}

// TestConcurrentPutsSameName races two puts of different content to one
// name: the result is one of them, whole, and no partial copy remains.
func TestConcurrentPutsSameName(t *testing.T) {
	d, _, served := startFiles(t)
	local := t.TempDir()
	var srcs [2]string
	var datas [2][]byte
	for i := range srcs {
		datas[i] = randomBytes(6<<20, uint64(100+i))
		srcs[i] = filepath.Join(local, fmt.Sprint("v", i))
		require.NoError(t, os.WriteFile(srcs[i], datas[i], 0o644))
	}
	for round := 0; round < 3; round++ {
		errs := make(chan error, 2)
		for i := range srcs {
			go func() {
				c := dial(t, d)
				_, err := c.Put(t.Context(), []string{srcs[i]}, "same.bin", nil)
				errs <- err
			}()
		}
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
		got, err := os.ReadFile(filepath.Join(served, "same.bin"))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(got, datas[0]) || bytes.Equal(got, datas[1]), "one whole version, never a mix")
		entries, err := os.ReadDir(served)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "no partial copies left: %v", entries)
	}
}

// TestLargeSparseFile copies a file beyond 4 GiB both ways: sizes and
// offsets are 64-bit everywhere.
func TestLargeSparseFile(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 9 GiB through loopback; runs in the full suite")
	}
	_, c, served := startFiles(t)
	const size = 4<<30 + 5<<20 + 3
	src := filepath.Join(served, "sparse.img")
	f, err := os.Create(src)
	require.NoError(t, err)
	for _, off := range []int64{0, 1 << 31, 1<<32 - 2, 1<<32 + 17, size - 5} {
		_, err := f.WriteAt([]byte("mark!"), off)
		require.NoError(t, err)
	}
	require.NoError(t, f.Truncate(size))
	require.NoError(t, f.Close())
	want := fileSum(t, src)

	local := t.TempDir()
	st, err := c.Get(t.Context(), "sparse.img", local, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(size), st.Bytes)
	assert.Equal(t, want, fileSum(t, filepath.Join(local, "sparse.img")))
	require.NoError(t, os.Remove(src))

	st, err = c.Put(t.Context(), []string{filepath.Join(local, "sparse.img")}, "back.img", nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(size), st.Bytes)
	assert.Equal(t, want, fileSum(t, filepath.Join(served, "back.img")))
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestConcurrentOpens opens many channels at once from one client: ids
// must reach the daemon in increasing order however the goroutines race.
func TestConcurrentOpens(t *testing.T) {
	_, c, served := startFiles(t)
	require.NoError(t, os.WriteFile(filepath.Join(served, "f"), []byte("x"), 0o644))
	errs := make(chan error, 48) // under the daemon's 64 channels per connection
	for i := 0; i < cap(errs); i++ {
		go func() {
			if i%2 == 0 {
				s, err := c.NewSession()
				if err == nil {
					_, err = s.Output(t.Context(), "true")
				}
				errs <- err
				return
			}
			fsx, err := c.OpenFS(t.Context(), "")
			if err == nil {
				_, err = fsx.Stat(t.Context(), "f")
				_ = fsx.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < cap(errs); i++ {
		assert.NoError(t, <-errs)
	}
}
