package execd

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckUsers(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k"
	for _, tc := range []struct {
		name string
		text string
		mode os.FileMode
		want []string // "LINE: message"
	}{
		{name: "good", text: "[users.alice]\nhome = \"/home/alice\"\nallow = [\"exec\"]\nkeys = [\"" + key + "\"]\n", mode: 0o600},
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
			ps, err := CheckUsers(path)
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
	ps, err := CheckUsers(path)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	assert.Contains(t, ps[0].String(), "chmod 600")

	ps, err = CheckUsers(filepath.Join(t.TempDir(), "none.toml"))
	assert.NoError(t, err)
	assert.Empty(t, ps, "no file: no users yet, no problem")
}
