package execd

import (
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckUsers(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k"
	home, self := filepath.ToSlash(t.TempDir()), currentName(t)
	for _, tc := range []struct {
		name string
		text string
		mode os.FileMode
		want []string // "LINE: message"
	}{
		{name: "good", text: "[users.alice]\nhome = \"" + home + "\"\nrun_as = \"" + self + "\"\nallow = [\"exec\"]\nkeys = [\"" + key + "\"]\n", mode: 0o600},
		{name: "every problem with its line", mode: 0o600, text: `[users.alice]
home = "/home/alice"
allow = ["exec", "fly"]

[users.bob]
home = "relative"
keys = ["` + key + `"]

[users.carol]
home = "/home/carol"
colour = "red"

[users."d.e"]
home = "/home/d"
keys = ["not a key"]
`, want: []string{
			`1: user alice: unknown permission "fly" (want exec, get or put)`,
			`5: user bob: home "relative" must be an absolute path`,
			`9: user carol can never log in: no key and no password (add one with "execd user set carol --add-key" or "execd user passwd carol")`,
			`11: unknown setting "users.carol.colour"`,
			`13: user d.e: key 1: `,
		}},
		{name: "syntax", text: "[users.alice]\nhome = = 1\n", mode: 0o600, want: []string{"2: expected value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), UsersFile)
			require.NoError(t, os.WriteFile(path, []byte(tc.text), tc.mode))
			ps, err := CheckUsers(path, "")
			require.NoError(t, err)
			require.Len(t, ps, len(tc.want), "%v", ps)
			for i, p := range ps {
				got := p.String()[len(path)+1:]
				assert.True(t, strings.HasPrefix(got, tc.want[i]), "got %q, want %q...", got, tc.want[i])
			}
		})
	}
}

func TestCheckUsersReadableHashes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are Unix's")
	}
	path := filepath.Join(t.TempDir(), UsersFile)
	hash, err := HashPassword("a password")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte("[users.alice]\nhome = \"/h\"\npassword = \""+hash+"\"\n"), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	ps, err := CheckUsers(path, "")
	require.NoError(t, err)
	require.Len(t, ps, 1)
	assert.Contains(t, ps[0].String(), "chmod 600")

	ps, err = CheckUsers(filepath.Join(t.TempDir(), "none.toml"), "")
	assert.NoError(t, err)
	assert.Empty(t, ps, "no file: no users yet, no problem")
}

func currentName(t *testing.T) string {
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}

// TestCheckUsersAccounts: as root, a user who may run commands but has no
// account to act as, one who would act as root without saying so, and
// one whose account cannot enter the home are each a finding.
func TestCheckUsersAccounts(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() != 0 {
		t.Skip("accounts are switched by a daemon running as root (CI runs as root)")
	}
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k"
	closed := filepath.Join(t.TempDir(), "closed")
	require.NoError(t, os.Mkdir(closed, 0o700)) // root's: nobody may enter
	text := `[users.nouser-xq]
allow = ["exec"]
keys = ["` + key + `"]

[users.root]
allow = ["exec"]
keys = ["` + key + `"]

[users.nobody]
home = "` + closed + `"
allow = ["exec"]
keys = ["` + key + `"]

[users.ftp]
home = "` + closed + `"
allow = ["get"]
keys = ["` + key + `"]
`
	path := filepath.Join(t.TempDir(), UsersFile)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	ps, err := CheckUsers(path, "")
	require.NoError(t, err)
	var got []string
	for _, p := range ps {
		got = append(got, p.String()[len(path)+1:])
	}
	require.Len(t, got, 3, "%q", got)
	assert.Contains(t, got[0], `user nouser-xq: user nouser-xq has no run_as and this machine has no account nouser-xq`)
	assert.Contains(t, got[1], `user root: user root would act as root: say so with run_as = "root"`)
	assert.Contains(t, got[2], "user nobody: home "+closed+": nobody may not use it (permission denied)")
}

// Issue 27 item 10: a users database others may write is refused, by
// the daemon and by the check, as sshd's StrictModes refuses such a file.
func TestUsersFileOthersMayWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are Unix's")
	}
	path := filepath.Join(t.TempDir(), UsersFile)
	require.NoError(t, os.WriteFile(path, []byte("[users.alice]\nhome = \"/h\"\n"), 0o600))
	require.NoError(t, os.Chmod(path, 0o666))
	_, err := OpenUsers(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "writable by group or others (mode 0666)")
	ps, err := CheckUsers(path, "")
	require.NoError(t, err)
	require.Len(t, ps, 1)
	assert.Contains(t, ps[0].String(), "writable by group or others")
}
