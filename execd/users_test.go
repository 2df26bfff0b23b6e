package execd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"0", 0, false}, {"1024", 1024, false}, {"2GiB", 2 << 30, false}, {"2G", 2 << 30, false},
		{"500MiB", 500 << 20, false}, {"10GB", 10e9, false}, {"1.5KiB", 1536, false}, {" 3 MiB ", 3 << 20, false},
		{"1TiB", 1 << 40, false}, {"", 0, true}, {"-1", 0, true}, {"lots", 0, true}, {"5 parsecs", 0, true},
		{"9999999TiB", 0, true}, {"1e3", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			back, err := ParseSize(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, back, "String reads back")
		})
	}
}

func TestUsersFileValidation(t *testing.T) {
	good := "[users.alice]\nhome = \"/home/alice\"\nallow = [\"exec\"]\nquota = \"2GiB\"\ncommand_timeout = \"1h\"\n"
	for _, tc := range []struct {
		name, file, want string
	}{
		{"good", good, ""},
		{"relative home", "[users.alice]\nhome = \"alice\"\nallow = []\n", "absolute path"},
		{"unknown permission", "[users.alice]\nhome = \"/h\"\nallow = [\"root\"]\n", `unknown permission "root"`},
		{"bad name", "[users.\"../x\"]\nhome = \"/h\"\nallow = []\n", "user name"},
		{"unknown setting", "[users.alice]\nhome = \"/h\"\nallow = []\nadmin = true\n", `unknown setting "users.alice.admin"`},
		{"bad key", "[users.alice]\nhome = \"/h\"\nallow = []\nkeys = [\"ssh-rsa nope\"]\n", "key 1"},
		{"bad hash", "[users.alice]\nhome = \"/h\"\nallow = []\npassword = \"plaintext!\"\n", "argon2id"},
		{"bad quota", "[users.alice]\nhome = \"/h\"\nallow = []\nquota = \"much\"\n", "bad size"},
		{"not toml", "users = [", "users.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), UsersFile)
			require.NoError(t, os.WriteFile(path, []byte(tc.file), 0o600))
			db, err := OpenUsers(path)
			if tc.want == "" {
				require.NoError(t, err)
				u, ok := db.Lookup("alice")
				require.True(t, ok)
				assert.Equal(t, Size(2<<30), u.Quota)
				assert.Equal(t, Duration(time.Hour), u.CommandTimeout)
				assert.True(t, u.Can(PermExec))
				assert.False(t, u.Can(PermPut))
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// A running daemon reads the file again when it changes, and keeps the
// last good users when an edit breaks it.
func TestUsersReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), UsersFile)
	db, err := OpenUsers(path)
	require.NoError(t, err)
	assert.False(t, db.Exists())
	require.NoError(t, db.Update(func(m map[string]*User) error {
		m["alice"] = &User{Home: "/h", Allow: AllPerms()}
		return nil
	}))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	other, err := OpenUsers(path) // as "execd user" in another process
	require.NoError(t, err)
	require.NoError(t, other.Update(func(m map[string]*User) error {
		m["bob"] = &User{Home: "/b", Allow: []string{PermGet}}
		return nil
	}))
	_, ok := db.Lookup("bob")
	assert.True(t, ok, "the change is seen without a restart")
	require.NoError(t, os.WriteFile(path, []byte("broken ["), 0o600))
	_, ok = db.Lookup("bob")
	assert.True(t, ok, "a broken file keeps the last good users")
	_, err = db.List()
	assert.Error(t, err, "and says it is broken")
	assert.Error(t, db.Err())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "secret")
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
	assert.NotContains(t, h, "correct horse")
	h2, err := HashPassword("correct horse")
	require.NoError(t, err)
	assert.NotEqual(t, h, h2, "a fresh salt each time")
	hs := newHasher(1)
	ctx := context.Background()
	for _, tc := range []struct {
		hash, pw string
		ok       bool
	}{
		{h, "correct horse", true}, {h2, "correct horse", true}, {h, "correct horsE", false},
		{h, "", false}, {"", "", false}, {"", "anything", false}, {"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "x", false},
	} {
		ok, _ := hs.check(ctx, tc.hash, tc.pw)
		assert.Equal(t, tc.ok, ok, "%q %q", tc.hash, tc.pw)
	}
	_, err = HashPassword("")
	assert.Error(t, err)
	_, err = HashPassword(strings.Repeat("x", 1025))
	assert.Error(t, err)
}

// fakeClock is a throttle's clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) pass(d time.Duration) { c.t = c.t.Add(d) }
func testThrottle(stack bool) (*throttle, *fakeClock) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	th := newThrottle(20*time.Millisecond, 50*time.Millisecond, stack)
	th.now = c.now
	return th, c
}

func TestThrottle(t *testing.T) {
	th, clock := testThrottle(true)
	for i := 0; i < throttleFree; i++ {
		th.failed("addr:1", "user:a")
	}
	assert.Zero(t, th.delay("addr:1"), "the first failures are free")
	th.failed("addr:1", "user:a")
	assert.Equal(t, 20*time.Millisecond, th.delay("addr:1"), "then one base delay")
	for i := 0; i < 4; i++ {
		th.failed("addr:1", "user:a")
	}
	// stacked: 20+40+50+50+50 ms, each step capped at 50 ms
	assert.Equal(t, 210*time.Millisecond, th.delay("addr:1"))
	clock.pass(200 * time.Millisecond)
	assert.Equal(t, 10*time.Millisecond, th.delay("addr:1", "addr:3"), "the longest of the keys")
	th.failed("addr:2", "user:a")
	assert.Equal(t, 60*time.Millisecond, th.delay("user:a"), "per user, from any address: its sixth failure stacks 50 ms more")
	assert.Zero(t, th.delay("addr:3", "user:b"), "others are not slowed")
	th.succeeded("addr:1", "user:a")
	assert.Zero(t, th.delay("addr:1", "user:a"))
	for range 1000 {
		th.failed("addr:8")
	}
	assert.Equal(t, 10*th.max, th.delay("addr:8"), "stacking is bounded at ten full delays")

	// wait sleeps the delay, and ends with its context
	th.now = time.Now
	th.succeeded("addr:8")
	require.NoError(t, th.wait(t.Context(), "addr:8"), "no delay, no wait")
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	for i := 0; i < 10; i++ {
		th.failed("addr:9")
	}
	assert.Error(t, th.wait(cctx, "addr:9"))
	start := time.Now()
	th.succeeded("addr:9")
	for i := 0; i <= throttleFree; i++ {
		th.failed("addr:9")
	}
	require.NoError(t, th.wait(t.Context(), "addr:9"))
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond, "no shortcut past the delay")
}

// Without stacking (the per-user throttle), many failures at once delay
// the next attempt by one step at most, never by their sum.
func TestThrottleNoStack(t *testing.T) {
	th, clock := testThrottle(false)
	for range 100 {
		th.failed("alice")
	}
	assert.Equal(t, 50*time.Millisecond, th.delay("alice"))
	clock.pass(50 * time.Millisecond)
	assert.Zero(t, th.delay("alice"))
}

// serial holds a key for one attempt at a time.
func TestThrottleSerial(t *testing.T) {
	th := newThrottle(time.Millisecond, time.Millisecond, true)
	release, err := th.serial(t.Context(), "addr:1")
	require.NoError(t, err)
	other, err := th.serial(t.Context(), "addr:2")
	require.NoError(t, err, "another key is free")
	other()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = th.serial(ctx, "addr:1")
	require.Error(t, err, "held")
	got := make(chan func(), 1)
	go func() {
		r, err := th.serial(t.Context(), "addr:1")
		if err == nil {
			got <- r
		}
	}()
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(5 * time.Second):
		t.Fatal("a released key was not handed on")
	}
}

// FuzzUsersFile feeds arbitrary bytes as the users database: an error or
// users that pass validation, never a panic.
func FuzzUsersFile(f *testing.F) {
	f.Add([]byte("[users.alice]\nhome = \"/home/alice\"\nallow = [\"exec\", \"get\"]\nquota = \"2GiB\"\n"))
	f.Add([]byte("[users.bob]\nhome = \"/b\"\nallow = []\nkeys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\"]\n"))
	f.Add([]byte("[users.c]\nhome = \"/\"\nallow = [\"put\"]\npassword = \"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5\"\ncommand_timeout = \"5s\"\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, UsersFile)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		users, _, err := readUsers(path)
		if err != nil {
			return
		}
		for name, u := range users {
			if u.Name != name || u.Validate() != nil {
				t.Fatalf("user %q accepted but invalid", name)
			}
		}
	})
}

// Edits at the same moment (two "execd user add" runs) both land.
func TestUsersConcurrentUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), UsersFile)
	done := make(chan error, 2)
	for w := 0; w < 2; w++ {
		go func() {
			db, err := OpenUsers(path) // each as its own process would
			if err != nil {
				done <- err
				return
			}
			for i := 0; i < 20; i++ {
				name := fmt.Sprintf("u%d_%d", w, i)
				if err := db.Update(func(m map[string]*User) error {
					m[name] = &User{Home: "/h/" + name, Allow: AllPerms()}
					return nil
				}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	require.NoError(t, <-done)
	require.NoError(t, <-done)
	db, err := OpenUsers(path)
	require.NoError(t, err)
	users, err := db.List()
	require.NoError(t, err)
	assert.Len(t, users, 40)
}
