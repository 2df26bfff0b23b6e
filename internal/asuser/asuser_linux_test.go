package asuser

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/internal/xfer"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lending a thread another identity needs root (CI runs as root)")
	}
}

// tempDir is a test directory other accounts may pass through (the
// testing package makes its parent 0700).
func tempDir(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	return dir
}

// TestIdentityDoesNotLeak runs two accounts' operations at once, many
// times over, while the daemon's own goroutines read both accounts'
// files: each account reads its own 0600 file and is refused the other's,
// what each creates is its own, and the daemon's identity never changes.
func TestIdentityDoesNotLeak(t *testing.T) {
	needRoot(t)
	dir := tempDir(t)
	require.NoError(t, os.Chmod(dir, 0o777))
	accounts := []Cred{{Uid: 64101, Gid: 64101}, {Uid: 64102, Gid: 64102, Groups: []uint32{64102, 64199}}}
	for _, a := range accounts {
		p := filepath.Join(dir, fmt.Sprint(a.Uid))
		require.NoError(t, os.WriteFile(p, []byte("secret of "+fmt.Sprint(a.Uid)), 0o600))
		require.NoError(t, os.Chown(p, int(a.Uid), int(a.Gid)))
	}
	// A file only group 64199 may read: the second account's extra group.
	grp := filepath.Join(dir, "group")
	require.NoError(t, os.WriteFile(grp, []byte("group"), 0o640))
	require.NoError(t, os.Chown(grp, 0, 64199))

	const rounds = 200
	var wg sync.WaitGroup
	var (
		mu   sync.Mutex
		errs []error
	)
	report := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, err)
		}
	}
	for i, a := range accounts {
		other := accounts[1-i]
		fsys := FS(xfer.Host{}, &a)
		wg.Go(func() {
			for r := range rounds {
				if _, err := fsys.Open(filepath.Join(dir, fmt.Sprint(a.Uid))); err != nil {
					report(fmt.Errorf("%d reads its own file: %v", a.Uid, err))
				}
				if f, err := fsys.Open(filepath.Join(dir, fmt.Sprint(other.Uid))); !errors.Is(err, fs.ErrPermission) {
					if f != nil {
						_ = f.Close()
					}
					report(fmt.Errorf("%d reads %d's file: %v", a.Uid, other.Uid, err))
				}
				f, gerr := fsys.Open(grp)
				if f != nil {
					_ = f.Close()
				}
				if inGroup := len(a.Groups) > 1; (gerr == nil) != inGroup {
					report(fmt.Errorf("%d opens a file of group 64199: %v", a.Uid, gerr))
				}
				made := filepath.Join(dir, fmt.Sprintf("made-%d-%d", a.Uid, r))
				wf, err := fsys.OpenFile(made, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
				if err != nil {
					report(err)
					continue
				}
				_ = wf.Close()
				st, err := os.Stat(made)
				if err != nil {
					report(err)
					continue
				}
				if sys := st.Sys().(*syscall.Stat_t); sys.Uid != a.Uid || sys.Gid != a.Gid {
					report(fmt.Errorf("%s belongs to %d:%d", made, sys.Uid, sys.Gid))
				}
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			for _, a := range accounts {
				if _, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(a.Uid))); err != nil {
					report(fmt.Errorf("the daemon lost its own identity: %v", err))
				}
			}
		}
	})
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
}

// TestOpenRootAsAccount: a confined user's home is opened as the
// account, so a home it may not enter is refused, not opened by root.
func TestOpenRootAsAccount(t *testing.T) {
	needRoot(t)
	home := filepath.Join(tempDir(t), "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	cred := &Cred{Uid: 64101, Gid: 64101}
	_, err := OpenRoot(home, cred)
	require.ErrorIs(t, err, fs.ErrPermission)
	require.NoError(t, os.Chown(home, 64101, 64101))
	r, err := OpenRoot(home, cred)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.Mkdir("sub", 0o755))
	st, err := os.Stat(filepath.Join(home, "sub"))
	require.NoError(t, err)
	require.Equal(t, uint32(64101), st.Sys().(*syscall.Stat_t).Uid)
}

// BenchmarkStat prices a call made as an account against the daemon's
// own: the thread's identity is set and put back around each call.
func BenchmarkStat(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	dir := b.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		cred *Cred
	}{{"daemon", nil}, {"account", &Cred{Uid: 64101, Gid: 64101}}} {
		fsys := FS(xfer.Host{}, bc.cred)
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := fsys.Stat(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
