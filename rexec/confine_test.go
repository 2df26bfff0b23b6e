package rexec_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// TestPathEscapeCorpus throws escape attempts at every file operation:
// dot-dot in every position, absolute paths, symlinks out and chains of
// them, a sibling that shares the served directory's prefix, Windows
// separators and drive letters, NUL bytes and overlong names. Each is
// refused with a one-line error that does not reveal the server's layout,
// and nothing outside the served directory is read or written.
func TestPathEscapeCorpus(t *testing.T) {
	base := t.TempDir()
	served := filepath.Join(base, "alice")
	sibling := filepath.Join(base, "alice_old")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{served, sibling, outside, filepath.Join(served, "dir")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for _, d := range []string{sibling, outside} {
		require.NoError(t, os.WriteFile(filepath.Join(d, "secret.txt"), []byte("secret of "+filepath.Base(d)), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(served, "ok.txt"), []byte("fine"), 0o644))
	links := map[string]string{
		"link-out":  "../outside",
		"abs-link":  outside,
		"chain1":    "chain2",
		"chain2":    "chain3",
		"chain3":    "../alice_old",
		"file-link": "../outside/secret.txt",
		"prefix":    "../alice_old/secret.txt",
		"dir/up":    "../../outside",
	}
	for l, target := range links {
		require.NoError(t, os.Symlink(target, filepath.Join(served, l)))
	}
	before := map[string]map[string]string{"sibling": treeOf(t, sibling), "outside": treeOf(t, outside)}
	baseEntries, err := os.ReadDir(base)
	require.NoError(t, err)

	d := execdtest.Start(t, &execd.Server{Dir: served, KillGrace: 500 * time.Millisecond}, false)
	c := dial(t, d)
	ctx := t.Context()
	fsx, err := c.OpenFS(ctx, "")
	require.NoError(t, err)
	local := t.TempDir()
	payload := filepath.Join(local, "payload.txt")
	require.NoError(t, os.WriteFile(payload, []byte("overwritten!"), 0o644))

	get := func(p string) func() error {
		return func() error {
			_, err := c.Get(ctx, p, filepath.Join(local, "got"), &rexec.TransferOptions{Recursive: true})
			return err
		}
	}
	put := func(p string) func() error {
		return func() error {
			_, err := c.Put(ctx, []string{payload}, p, nil)
			return err
		}
	}
	op := func(f func(context.Context) error) func() error { return func() error { return f(ctx) } }
	long := strings.Repeat("a/", 2100) + "x"
	cases := []struct {
		name string
		try  func() error
	}{
		{"get ../", get("../outside/secret.txt")},
		{"get dir/../../", get("dir/../../outside/secret.txt")},
		{"get ./../sibling", get("./../alice_old/secret.txt")},
		{"get ~/../", get("~/../outside/secret.txt")},
		{"get ..", get("..")},
		{"get trailing ..", get("dir/../..")},
		{"get /etc/passwd", get("/etc/passwd")},
		{"get absolute real path", get(filepath.Join(outside, "secret.txt"))},
		{"get through dir symlink", get("link-out/secret.txt")},
		{"get through absolute symlink", get("abs-link/secret.txt")},
		{"get through symlink chain", get("chain1/secret.txt")},
		{"get file symlink out", get("file-link")},
		{"get prefix sibling via link", get("prefix")},
		{"get nested dir symlink", get("dir/up/secret.txt")},
		{"get backslash dot-dot", get(`..\outside\secret.txt`)},
		{"get backslash mixed", get(`dir\..\..\outside\secret.txt`)},
		{"get drive letter", get("C:/Windows/win.ini")},
		{"get NUL byte", get("ok.txt\x00/../../outside/secret.txt")},
		{"get very long path", get(long)},
		{"get overlong element", get(strings.Repeat("n", 300))},
		{"put ../", put("../outside/new.txt")},
		{"put over sibling file", put("dir/../../alice_old/secret.txt")},
		{"put through dir symlink", put("link-out/secret.txt")},
		{"put through absolute symlink", put("abs-link/new.txt")},
		{"put through chain", put("chain1/new.txt")},
		{"put absolute", put(filepath.Join(outside, "new.txt"))},
		{"mkdir ../", op(func(ctx context.Context) error { return fsx.Mkdir(ctx, "../escape", 0o755) })},
		{"mkdir through symlink", op(func(ctx context.Context) error { return fsx.Mkdir(ctx, "link-out/sub", 0o755) })},
		{"mkdir -p through chain", op(func(ctx context.Context) error { return fsx.MkdirAll(ctx, "chain1/a/b", 0o755) })},
		{"rm ../", op(func(ctx context.Context) error { return fsx.Remove(ctx, "../outside/secret.txt") })},
		{"rm through symlink", op(func(ctx context.Context) error { return fsx.Remove(ctx, "link-out/secret.txt") })},
		{"rm -r through symlink", op(func(ctx context.Context) error { return fsx.RemoveAll(ctx, "abs-link/secret.txt") })},
		{"rm -r the home itself", op(func(ctx context.Context) error { return fsx.RemoveAll(ctx, "~") })},
		{"mv out by ../", op(func(ctx context.Context) error { return fsx.Rename(ctx, "ok.txt", "../outside/moved.txt") })},
		{"mv out by symlink", op(func(ctx context.Context) error { return fsx.Rename(ctx, "ok.txt", "link-out/moved.txt") })},
		{"mv in from outside", op(func(ctx context.Context) error { return fsx.Rename(ctx, "chain1/secret.txt", "stolen.txt") })},
		{"cd ..", op(func(ctx context.Context) error { _, err := fsx.Chdir(ctx, ".."); return err })},
		{"cd symlink out", op(func(ctx context.Context) error { _, err := fsx.Chdir(ctx, "link-out"); return err })},
		{"ls symlink out", op(func(ctx context.Context) error { _, err := fsx.ReadDir(ctx, "link-out"); return err })},
		{"ls sibling", op(func(ctx context.Context) error { _, err := fsx.ReadDir(ctx, "../alice_old"); return err })},
		{"stat through chain", op(func(ctx context.Context) error { _, err := fsx.Stat(ctx, "chain1/secret.txt"); return err })},
		{"sum file symlink out", op(func(ctx context.Context) error { _, _, err := fsx.Checksum(ctx, "file-link"); return err })},
		{"chmod through symlink", op(func(ctx context.Context) error { return fsx.Chmod(ctx, "file-link", 0o777) })},
		{"chtimes through symlink", op(func(ctx context.Context) error { return fsx.Chtimes(ctx, "link-out", time.Unix(1, 0)) })},
		{"make link out (relative)", op(func(ctx context.Context) error { return fsx.Symlink(ctx, "../outside", "evil") })},
		{"make link out (absolute)", op(func(ctx context.Context) error { return fsx.Symlink(ctx, "/etc", "evil2") })},
		{"make link out (deep)", op(func(ctx context.Context) error { return fsx.Symlink(ctx, "../../x", "dir/evil3") })},
	}
	require.GreaterOrEqual(t, len(cases), 25)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.try()
			require.Error(t, err)
			msg := err.Error()
			assert.NotContains(t, msg, "\n", "one line")
			if !strings.Contains(tc.name, "absolute") {
				assert.NotContains(t, msg, base, "the server's layout stays private")
			}
			var re *rexec.RemoteError
			if strings.Contains(tc.name, "NUL") || strings.Contains(tc.name, "very long") {
				assert.ErrorIs(t, err, frame.ErrInvalid) // refused before it is sent
				return
			}
			if !assert.ErrorAs(t, err, &re, "%v", err) {
				return
			}
			assert.Contains(t, []frame.Code{frame.CodePathEscape, frame.CodeBadPath, frame.CodePermission}, re.Code, "%s", msg)
		})
	}
	assert.Equal(t, "~", fsx.Getwd(), "cwd unchanged")
	for name, dir := range map[string]string{"sibling": sibling, "outside": outside} {
		assert.Equal(t, before[name], treeOf(t, dir), "%s untouched", name)
	}
	after, err := os.ReadDir(base)
	require.NoError(t, err)
	assert.Equal(t, len(baseEntries), len(after), "nothing created beside the served directory")
	_, err = os.Stat(filepath.Join(local, "got"))
	assert.True(t, os.IsNotExist(err), "nothing fetched")
}
