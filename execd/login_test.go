package execd_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/internal/userkey"
	"github.com/execd-project/execd/rexec"
)

// kinds is a daemon with one user of each kind, both acting as the
// test's own account: "acct" sees the machine, "jail" is confined.
type kinds struct {
	d    *execdtest.Server
	key  ed25519.PrivateKey
	home string
}

func startKinds(t *testing.T, tune func(*execd.Server)) *kinds {
	t.Helper()
	k := &kinds{home: t.TempDir()}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	k.key = priv
	line, err := userkey.AuthorizedLine(pub, "test")
	require.NoError(t, err)
	db, err := execd.OpenUsers(filepath.Join(t.TempDir(), execd.UsersFile))
	require.NoError(t, err)
	confined, self := true, execdtest.Self(t)
	require.NoError(t, db.Update(func(m map[string]*execd.User) error {
		m["acct"] = &execd.User{Home: k.home, Keys: []string{line}, Allow: execd.AllPerms(), RunAs: self}
		m["jail"] = &execd.User{Home: k.home, Keys: []string{line}, Allow: execd.AllPerms(), RunAs: self, Confine: &confined}
		return nil
	}))
	srv := &execd.Server{Users: db, KillGrace: 500 * time.Millisecond}
	if tune != nil {
		tune(srv)
	}
	k.d = execdtest.Start(t, srv, false)
	return k
}

func (k *kinds) dial(t *testing.T, user string) *rexec.Client {
	c, err := rexec.Dial(t.Context(), k.d.Addr, &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), User: user, Auth: []rexec.AuthMethod{rexec.PublicKey(k.key)}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func envOf(t *testing.T, c *rexec.Client, set ...string) map[string]string {
	s, err := c.NewSession()
	require.NoError(t, err)
	for _, kv := range set {
		k, v, _ := strings.Cut(kv, "=")
		require.NoError(t, s.Setenv(k, v))
	}
	out, err := s.Output(t.Context(), "/usr/bin/env")
	require.NoError(t, err)
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	return env
}

func names(env map[string]string) []string {
	var out []string
	for k := range env {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestCommandEnvironment: a command's environment is the exact set sshd
// would give, whatever the daemon was started with; a client sets what
// AcceptEnv lets it, never the account's own variables.
func TestCommandEnvironment(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows commands get the service account's profile")
	}
	t.Setenv("EXECD_TEST_LEAK", "daemon's") // the daemon's own environment
	k := startKinds(t, func(s *execd.Server) {
		s.AcceptEnv = []string{"LANG", "LC_*"}
		s.Env = []string{"SITE=lab"}
	})
	c := k.dial(t, "acct")
	env := envOf(t, c, "LANG=C.UTF-8", "LC_TIME=C", "HOME=/tmp", "FOO=bar")
	assert.Equal(t, []string{"HOME", "LANG", "LC_TIME", "LOGNAME", "MAIL", "PATH", "REXEC_CONNECTION", "REXEC_USER", "SHELL", "SITE", "USER"}, names(env))
	self := execdtest.Self(t)
	assert.Equal(t, k.home, env["HOME"], "HOME is the account's, not the client's")
	assert.Equal(t, self, env["USER"])
	assert.Equal(t, self, env["LOGNAME"])
	assert.Equal(t, "acct", env["REXEC_USER"])
	assert.Equal(t, "/var/mail/"+self, env["MAIL"])
	assert.Equal(t, "C.UTF-8", env["LANG"])
	assert.True(t, strings.HasPrefix(env["SHELL"], "/"), env["SHELL"])
	if os.Geteuid() == 0 {
		assert.Equal(t, execd.DefaultRootPath, env["PATH"])
	} else {
		assert.Equal(t, execd.DefaultPath, env["PATH"])
	}
}

// TestKindsOfUsers: the same home, two kinds: the account user reaches
// an absolute path and starts anywhere (-C), the confined one is refused
// both with one line naming the rule.
func TestKindsOfUsers(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("every Windows user is confined")
	}
	k := startKinds(t, nil)
	outside := filepath.Join(t.TempDir(), "outside.txt")
	require.NoError(t, os.WriteFile(outside, []byte("outside"), 0o644))

	acct := k.dial(t, "acct")
	var got strings.Builder
	_, err := acct.GetStream(t.Context(), outside, &got, nil)
	require.NoError(t, err)
	assert.Equal(t, "outside", got.String())
	s, err := acct.NewSession()
	require.NoError(t, err)
	s.Dir = filepath.Dir(outside)
	out, err := s.Output(t.Context(), "pwd")
	require.NoError(t, err)
	assert.Equal(t, filepath.Dir(outside)+"\n", string(out))

	jail := k.dial(t, "jail")
	_, err = jail.GetStream(t.Context(), outside, &got, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "absolute paths are not served to a confined user")
	s, err = jail.NewSession()
	require.NoError(t, err)
	s.Dir = filepath.Dir(outside)
	_, err = s.Output(t.Context(), "pwd")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "working directory")
	fsys, err := jail.OpenFS(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, "~", fsys.Getwd())
	fsys, err = acct.OpenFS(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, "~", fsys.Getwd(), "an account user's home is ~ too")
}

// Issue 27 item 7: a hard link planted in a confined user's home (by
// someone who can run commands there) does not serve them a file from
// elsewhere; the user's own files are served.
func TestConfinedUserRefusedHardLinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("hard links are not looked at on Windows")
	}
	k := startKinds(t, nil)
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("another's"), 0o600))
	require.NoError(t, os.Link(secret, filepath.Join(k.home, "planted")))
	require.NoError(t, os.WriteFile(filepath.Join(k.home, "own"), []byte("mine"), 0o600))

	jail := k.dial(t, "jail")
	var got strings.Builder
	_, err := jail.GetStream(t.Context(), "planted", &got, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "~/planted: has 2 hard links, and a confined user is not served a file that may be another's")
	assert.Empty(t, got.String())
	fsys, err := jail.OpenFS(t.Context(), "")
	require.NoError(t, err)
	_, _, err = fsys.Checksum(t.Context(), "planted")
	assert.ErrorContains(t, err, "hard links")
	_, err = jail.GetStream(t.Context(), "own", &got, nil)
	require.NoError(t, err)
	assert.Equal(t, "mine", got.String())

	// One who acts as an account has its rights, links or not.
	got.Reset()
	_, err = k.dial(t, "acct").GetStream(t.Context(), filepath.Join(k.home, "planted"), &got, nil)
	require.NoError(t, err)
	assert.Equal(t, "another's", got.String())
}
