package execd_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
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
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/userkey"
	"github.com/execd-project/execd/rexec"
)

// revocable is a daemon whose users the test edits while they are logged
// in: "ann" has two keys and a password, jobs kept under JobDir.
type revocable struct {
	srv        *execd.Server
	d          *execdtest.Server
	db         *execd.UserDB
	keyA, keyB ed25519.PrivateKey
	home, jobs string
}

const annPassword = "correct horse"

func newKey(t *testing.T) (ed25519.PrivateKey, string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	line, err := userkey.AuthorizedLine(pub, "test")
	require.NoError(t, err)
	return priv, line
}

func startRevocable(t *testing.T) *revocable {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the commands here are POSIX shell")
	}
	r := &revocable{home: t.TempDir(), jobs: t.TempDir()}
	var lineA, lineB string
	r.keyA, lineA = newKey(t)
	r.keyB, lineB = newKey(t)
	db, err := execd.OpenUsers(filepath.Join(t.TempDir(), execd.UsersFile))
	require.NoError(t, err)
	hash, err := execd.HashPassword(annPassword)
	require.NoError(t, err)
	self := execdtest.Self(t)
	require.NoError(t, db.Update(func(m map[string]*execd.User) error {
		m["ann"] = &execd.User{Home: r.home, Keys: []string{lineA, lineB}, Password: hash, Allow: execd.AllPerms(), RunAs: self}
		return nil
	}))
	r.db = db
	r.srv = &execd.Server{Users: db, KillGrace: 500 * time.Millisecond, JobDir: r.jobs}
	r.d = execdtest.Start(t, r.srv, false)
	return r
}

func (r *revocable) dial(t *testing.T, auth rexec.AuthMethod) *rexec.Client {
	t.Helper()
	c, err := rexec.Dial(t.Context(), r.d.Addr, &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), User: "ann", Auth: []rexec.AuthMethod{auth}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// edit changes ann (or removes her: fn returns nil) and reloads, as
// SIGHUP does.
func (r *revocable) edit(t *testing.T, fn func(u *execd.User) *execd.User) {
	t.Helper()
	require.NoError(t, r.db.Update(func(m map[string]*execd.User) error {
		if u := fn(m["ann"]); u != nil {
			m["ann"] = u
		} else {
			delete(m, "ann")
		}
		return nil
	}))
	require.NoError(t, r.srv.ReloadUsers())
}

// started runs cmdline on c and returns once its first line is out, with
// the session still running.
func started(t *testing.T, c *rexec.Client, cmdline string) *rexec.Session {
	t.Helper()
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.StartShell(t.Context(), cmdline))
	buf := make([]byte, 64)
	n, err := out.Read(buf)
	require.NoError(t, err)
	require.NotZero(t, n)
	go func() { _, _ = out.Read(make([]byte, 1<<16)) }() // drain the rest
	return s
}

// waitErr waits, bounded, for a session's end.
func waitErr(t *testing.T, s *rexec.Session) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the session did not end after the revocation")
		return nil
	}
}

// code is the error code err carries, or "".
func code(err error) frame.Code {
	var re *rexec.RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return ""
}

// TestRevokePermissionOnOpenConnection: removing exec reaches a
// connection already logged in: its running command ends saying why, a
// new command is refused, a file session's writes are refused once put
// goes, and what the user still may do goes on working on the same
// connection.
func TestRevokePermissionOnOpenConnection(t *testing.T) {
	r := startRevocable(t)
	c := r.dial(t, rexec.PublicKey(r.keyA))
	s := started(t, c, "echo up; exec sleep 60")
	fs, err := c.OpenFS(t.Context(), "")
	require.NoError(t, err)
	defer fs.Close()
	require.NoError(t, fs.Mkdir(t.Context(), "before", 0o755))

	r.edit(t, func(u *execd.User) *execd.User {
		u.Allow = []string{execd.PermGet, execd.PermPut}
		u.Confine = ptr(false)
		return u
	})
	err = waitErr(t, s)
	require.Error(t, err)
	assert.Contains(t, s.Exit().Message, `no "exec" permission`, "the exit says why it was ended")
	_, err = output(t, c, "true")
	assert.Equal(t, frame.CodeNotPermitted, code(err), "%v", err)
	require.NoError(t, fs.Mkdir(t.Context(), "still-put", 0o755), "put is still held: the file session goes on")

	r.edit(t, func(u *execd.User) *execd.User { u.Allow = []string{execd.PermGet}; return u })
	err = fs.Mkdir(t.Context(), "after", 0o755)
	assert.Equal(t, frame.CodeNotPermitted, code(err), "%v", err)
	var got strings.Builder
	require.NoError(t, os.WriteFile(filepath.Join(r.home, "f"), []byte("kept"), 0o644))
	_, err = c.GetStream(t.Context(), "f", &got, nil)
	require.NoError(t, err, "get is still held")
	assert.Equal(t, "kept", got.String())
}

// TestRevokeRemovedUser: removing a user ends their connections with the
// reason, ends their detached jobs and deletes their output; the same
// name added again, with its own key, finds none of them.
func TestRevokeRemovedUser(t *testing.T) {
	r := startRevocable(t)
	c := r.dial(t, rexec.PublicKey(r.keyA))
	s, err := c.NewSession()
	require.NoError(t, err)
	id, err := s.DetachShell(t.Context(), "echo secret; exec sleep 60")
	require.NoError(t, err)
	jobs, err := c.Jobs(t.Context())
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	pid := jobs[0].PID
	live := started(t, c, "echo up; exec sleep 60")

	r.edit(t, func(*execd.User) *execd.User { return nil })
	err = waitErr(t, live)
	assert.Equal(t, frame.CodeRevoked, code(err), "%v", err)
	assert.Contains(t, err.Error(), "user ann was removed")
	require.Eventually(t, func() bool { return !execdtest.ProcessAlive(pid) }, 20*time.Second, 20*time.Millisecond, "the removed user's job ends")
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(r.jobs, "ann", id))
		return errors.Is(err, os.ErrNotExist)
	}, 20*time.Second, 20*time.Millisecond, "the removed user's job output is deleted")

	key, line := newKey(t)
	r.edit(t, func(*execd.User) *execd.User {
		return &execd.User{Home: r.home, Keys: []string{line}, Allow: execd.AllPerms(), RunAs: execdtest.Self(t)}
	})
	c2 := r.dial(t, rexec.PublicKey(key))
	jobs, err = c2.Jobs(t.Context())
	require.NoError(t, err)
	assert.Empty(t, jobs, "a new user of the same name sees no job of the old one")
	s2, err := c2.NewSession()
	require.NoError(t, err)
	err = s2.Attach(t.Context(), id, 0, 0)
	assert.Equal(t, frame.CodeNoSuchJob, code(err), "%v", err)
}

// TestRevokeKeyOrPassword: withdrawing one key ends the connections and
// the jobs that key started, not those of the user's other key; a new
// password ends the connections logged in with the old one.
func TestRevokeKeyOrPassword(t *testing.T) {
	r := startRevocable(t)
	ca, cb := r.dial(t, rexec.PublicKey(r.keyA)), r.dial(t, rexec.PublicKey(r.keyB))
	cp := r.dial(t, rexec.Password(annPassword))
	pids := map[*rexec.Client]int{}
	for _, c := range []*rexec.Client{ca, cb} {
		s, err := c.NewSession()
		require.NoError(t, err)
		id, err := s.Detach(t.Context(), "sleep", "60")
		require.NoError(t, err)
		jobs, err := c.Jobs(t.Context())
		require.NoError(t, err)
		i := slices.IndexFunc(jobs, func(j rexec.JobInfo) bool { return j.ID == id })
		require.GreaterOrEqual(t, i, 0)
		pids[c] = jobs[i].PID
	}
	liveA, liveP := started(t, ca, "echo up; exec sleep 60"), started(t, cp, "echo up; exec sleep 60")

	lineB, err := userkey.AuthorizedLine(r.keyB.Public().(ed25519.PublicKey), "test")
	require.NoError(t, err)
	r.edit(t, func(u *execd.User) *execd.User { u.Keys = []string{lineB}; return u })
	err = waitErr(t, liveA)
	assert.Equal(t, frame.CodeRevoked, code(err), "%v", err)
	assert.Contains(t, err.Error(), "was withdrawn")
	require.Eventually(t, func() bool { return !execdtest.ProcessAlive(pids[ca]) }, 20*time.Second, 20*time.Millisecond, "the job the withdrawn key started ends")
	assert.True(t, execdtest.ProcessAlive(pids[cb]), "the other key's job goes on")
	out, err := output(t, cb, "echo", "b")
	require.NoError(t, err, "the other key's connection goes on")
	assert.Equal(t, "b\n", string(out))

	hash, err := execd.HashPassword("another one")
	require.NoError(t, err)
	r.edit(t, func(u *execd.User) *execd.User { u.Password = hash; return u })
	err = waitErr(t, liveP)
	assert.Equal(t, frame.CodeRevoked, code(err), "%v", err)
	assert.True(t, execdtest.ProcessAlive(pids[cb]), "a new password ends no job")
}

// TestRevokeEditWithoutReload: an edit of the users file counts from the
// next channel opened, on connections already logged in, even before
// the daemon is told (SIGHUP).
func TestRevokeEditWithoutReload(t *testing.T) {
	r := startRevocable(t)
	c := r.dial(t, rexec.PublicKey(r.keyA))
	_, err := output(t, c, "true")
	require.NoError(t, err)
	require.NoError(t, r.db.Update(func(m map[string]*execd.User) error {
		m["ann"].Allow = []string{execd.PermGet}
		return nil
	}))
	_, err = output(t, c, "true")
	assert.Equal(t, frame.CodeNotPermitted, code(err), "%v", err)
}

// TestRevokeRestoredJobsOfRemovedUser: a user removed while the daemon
// was down finds no job at the next start; their records are deleted.
func TestRevokeRestoredJobsOfRemovedUser(t *testing.T) {
	r := startRevocable(t)
	c := r.dial(t, rexec.PublicKey(r.keyA))
	s, err := c.NewSession()
	require.NoError(t, err)
	id, err := s.Detach(t.Context(), "echo", "kept")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		jobs, err := c.Jobs(t.Context())
		return err == nil && len(jobs) == 1 && jobs[0].State == "exited"
	}, 20*time.Second, 20*time.Millisecond)
	_ = c.Close()
	require.NoError(t, r.srv.Close())
	require.NoError(t, r.db.Update(func(m map[string]*execd.User) error { delete(m, "ann"); return nil }))
	require.DirExists(t, filepath.Join(r.jobs, "ann", id))

	srv := &execd.Server{Users: r.db, JobDir: r.jobs}
	execdtest.Start(t, srv, false)
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(r.jobs, "ann", id))
		return errors.Is(err, os.ErrNotExist)
	}, 20*time.Second, 20*time.Millisecond, "the removed user's job is deleted at the start")
}

func ptr[T any](v T) *T { return &v }

// output runs argv in a new session of c.
func output(t *testing.T, c *rexec.Client, argv ...string) ([]byte, error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	return s.Output(t.Context(), argv...)
}
