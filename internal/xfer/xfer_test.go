package xfer_test

import (
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/xfer"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		cwd, p string
		want   string
		code   frame.Code
	}{
		{".", "a/b", "a/b", ""},
		{".", "~", ".", ""},
		{"x/y", "~", ".", ""},
		{"x/y", "~/z", "z", ""},
		{"x/y", "..", "x", ""},
		{"x/y", "../..", ".", ""},
		{"x/y", "../../..", "", frame.CodePathEscape},
		{".", "a/../b/./c/", "b/c", ""},
		{".", "a//b", "a/b", ""},
		{".", "..", "", frame.CodePathEscape},
		{".", "a/../../b", "", frame.CodePathEscape},
		{".", "~/..", "", frame.CodePathEscape},
		{".", "~user/x", "~user/x", ""}, // a file named ~user, not someone's home
		{".", "/etc/passwd", "", frame.CodeBadPath},
		{".", `a\..\..\b`, "", frame.CodeBadPath},
		{".", "C:/x", "", frame.CodeBadPath},
		{".", "c:", "", frame.CodeBadPath},
		{".", "", "", frame.CodeBadPath},
		{".", "a\x00b", "", frame.CodeBadPath},
		{".", strings.Repeat("n", 256), "", frame.CodeBadPath},
		{".", strings.Repeat("n", 255), strings.Repeat("n", 255), ""},
		{".", "-rf", "-rf", ""},
		{".", "中文 名字.txt", "中文 名字.txt", ""},
	}
	for _, tc := range tests {
		t.Run(tc.cwd+"|"+tc.p, func(t *testing.T) {
			got, err := xfer.Resolve(tc.cwd, tc.p)
			if tc.code == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tc.code, xfer.CodeOf(err))
		})
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"a/b", "..", "~/../x", "/etc", `a\b`, "a/./../..", "~", "x/~/.."} {
		f.Add(".", s)
		f.Add("a/b", s)
	}
	f.Fuzz(func(t *testing.T, cwd, p string) {
		c, err := xfer.Resolve(".", cwd)
		if err != nil {
			return
		}
		got, err := xfer.Resolve(c, p)
		if err != nil {
			return
		}
		if got == ".." || strings.HasPrefix(got, "../") || strings.HasPrefix(got, "/") || strings.ContainsRune(got, 0) {
			t.Fatalf("Resolve(%q, %q) = %q leaves the root", c, p, got)
		}
		if got != filepath.ToSlash(filepath.Clean(got)) {
			t.Fatalf("Resolve(%q, %q) = %q is not clean", c, p, got)
		}
		if runtime.GOOS == "windows" {
			return // accounts see the host's paths on Unix only; Resolve takes \ there
		}
		// The same path for a user who acts as an account: absolute and
		// clean, the home and cwd given absolute.
		abs, err := xfer.ResolveHost(path.Join("/home/u", c), "/home/u", p)
		if err != nil {
			t.Fatalf("ResolveHost refuses %q, which Resolve takes: %v", p, err)
		}
		if !strings.HasPrefix(abs, "/") || abs != path.Clean(abs) || strings.ContainsRune(abs, 0) {
			t.Fatalf("ResolveHost(%q) = %q is not a clean absolute path", p, abs)
		}
		if want := path.Join("/home/u", got); abs != want {
			t.Fatalf("ResolveHost(%q) = %q, want %q as Resolve has it under the home", p, abs, want)
		}
	})
}

func TestResolveHost(t *testing.T) {
	for _, tc := range []struct{ cwd, p, want string }{
		{"/home/u", "/var/log/syslog", "/var/log/syslog"},
		{"/home/u", "~", "/home/u"},
		{"/tmp", "~/a/../b", "/home/u/b"},
		{"/tmp", "x/../../etc", "/etc"},
		{"/", "../..", "/"},
		{"/home/u", `a\b`, `/home/u/a\b`},
	} {
		got, err := xfer.ResolveHost(tc.cwd, "/home/u", tc.p)
		require.NoError(t, err, tc.p)
		assert.Equal(t, tc.want, got, "%s from %s", tc.p, tc.cwd)
	}
	for _, p := range []string{"", "a\x00b", strings.Repeat("a", 5000)} {
		_, err := xfer.ResolveHost("/", "/home/u", p)
		assert.Error(t, err, "%q", p)
	}
}

func TestSafeLink(t *testing.T) {
	tests := []struct {
		link, target string
		safe         bool
	}{
		{"l", "a", true},
		{"l", "./a/b", true},
		{"d/l", "../a", true},
		{"d/e/l", "../../a", true},
		{"l", "../a", false},
		{"d/l", "../../a", false},
		{"d/l", "x/../../../a", false},
		{"l", "/etc", false},
		{"l", `..\x`, false},
		{"l", "C:/x", false},
		{"l", "", false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.safe, xfer.SafeLink(tc.link, tc.target), "%s -> %s", tc.link, tc.target)
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"a", "中文", "-x", ".hidden", "a b"} {
		assert.True(t, xfer.ValidName(n), n)
	}
	for _, n := range []string{"", ".", "..", "a/b", `a\b`, "a\x00", strings.Repeat("n", 256)} {
		assert.False(t, xfer.ValidName(n), n)
	}
}

// TestEscapeErrorText pins the os.Root message IsEscape matches, so that a
// Go release changing it fails here rather than in the field.
func TestEscapeErrorText(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "root"), 0o755))
	require.NoError(t, os.Symlink("..", filepath.Join(dir, "root", "up")))
	root, err := os.OpenRoot(filepath.Join(dir, "root"))
	require.NoError(t, err)
	defer root.Close()
	_, err = root.Open("up/x")
	require.Error(t, err)
	assert.True(t, xfer.IsEscape(err), "%v", err)
	assert.Equal(t, frame.CodePathEscape, xfer.CodeOf(err))
	_, err = root.Open("missing")
	assert.Equal(t, frame.CodeNotFound, xfer.CodeOf(err))
	em := xfer.ErrorFor("a/b", err)
	assert.Equal(t, "~/a/b: no such file or directory", em.Message)
}

func TestSinkCommitAndResume(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer root.Close()
	var locks xfer.Locks
	s, err := xfer.OpenSink(root, "f", "", true, &locks)
	require.NoError(t, err)
	assert.Equal(t, uint64(0), s.Offset())
	_, err = s.Write([]byte("hello "))
	require.NoError(t, err)
	s.Close() // interrupted: kept

	s, err = xfer.OpenSink(root, "f", "", true, &locks)
	require.NoError(t, err)
	assert.Equal(t, uint64(6), s.Offset())
	_, err = s.Write([]byte("world"))
	require.NoError(t, err)
	sum := s.Sum()
	require.Error(t, s.Commit(11, strings.Repeat("0", 64), 0o600, time.Time{}), "a wrong hash is refused")
	_, err = os.Stat(filepath.Join(dir, "f"))
	assert.True(t, os.IsNotExist(err))
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "the bad copy is not kept")

	s, err = xfer.OpenSink(root, "f", "", true, &locks)
	require.NoError(t, err)
	_, err = s.Write([]byte("hello world"))
	require.NoError(t, err)
	require.Equal(t, sum, s.Sum())
	require.NoError(t, s.Commit(11, sum, 0o600, time.Time{}))
	b, err := os.ReadFile(filepath.Join(dir, "f"))
	require.NoError(t, err)
	assert.Equal(t, "hello world", string(b))
}

// linkTree is a home with links that make names lie about depth:
// b -> ".", d/ a directory, d/up -> "..".
func linkTree(t testing.TB) (string, *os.Root) {
	dir := t.TempDir()
	require.NoError(t, os.Symlink(".", filepath.Join(dir, "b")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	require.NoError(t, os.Symlink("..", filepath.Join(dir, "d", "up")))
	root, err := os.OpenRoot(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = root.Close() })
	return dir, root
}

func TestSafeLinkIn(t *testing.T) {
	_, root := linkTree(t)
	tests := []struct {
		link, target string
		safe         bool
	}{
		{"l", "d", true},
		{"d/l", "../x", true},
		{"l", "b/b/b/../../..", false}, // the chain of the red team
		{"l", "b/..", false},
		{"b/b/l", "../x", false}, // b/b is the top: .. leaves the home
		{"b/d/l", "../x", true},  // b/d is d
		{"b/d/l", "../../x", false},
		{"d/up/d/l", "../x", true},
		{"d/up/l", "../x", false}, // d/up is the top
		{"l", "d/up/..", false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.safe, xfer.SafeLinkIn(root, tc.link, tc.target), "%s -> %s", tc.link, tc.target)
	}
}

// FuzzSafeLinkIn: a link SafeLinkIn accepts, once created, never resolves
// outside the tree, whatever links the tree holds.
func FuzzSafeLinkIn(f *testing.F) {
	for _, s := range [][2]string{{"l", "b/b/b/../../.."}, {"d/l", "../d/up/b"}, {"b/d/l", "../.."}, {"l", "d/up"}} {
		f.Add(s[0], s[1])
	}
	dir, root := linkTree(f)
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, link, target string) {
		p, err := xfer.Resolve(".", link)
		if err != nil || p == "." || strings.Contains(target, "\x00") || !xfer.SafeLinkIn(root, p, target) {
			return
		}
		if err := root.Symlink(target, p); err != nil {
			return // a missing directory, a name taken
		}
		defer func() { _ = root.Remove(p) }()
		full := filepath.Join(dir, filepath.FromSlash(p))
		for _, probe := range []string{full, filepath.Join(full, "b"), filepath.Join(full, "d", "up")} {
			got, err := filepath.EvalSymlinks(probe)
			if err != nil {
				continue // dangling or not a directory: nothing to reach
			}
			if got != real && !strings.HasPrefix(got, real+string(filepath.Separator)) {
				t.Fatalf("%s -> %s resolves to %s, outside %s", p, target, got, real)
			}
		}
	})
}
