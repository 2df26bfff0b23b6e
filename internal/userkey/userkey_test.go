package userkey

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateLoad(t *testing.T) {
	dir := t.TempDir()
	getenv := func(k string) string { return map[string]string{"XDG_CONFIG_HOME": dir}[k] }
	path, err := DefaultPath(getenv)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "rexec", FileName), path)
	key, err := Generate(path, "alice@lab", false)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	back, err := Load(path)
	require.NoError(t, err)
	assert.True(t, key.Equal(back))
	line, err := LoadPublic(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "ssh-ed25519 AAAA"), line)
	assert.True(t, strings.HasSuffix(line, " alice@lab"), line)
	pub, err := ParseAuthorized(line)
	require.NoError(t, err)
	assert.True(t, pub.Equal(key.Public().(ed25519.PublicKey)))
	assert.True(t, strings.HasPrefix(Fingerprint(pub), "SHA256:"))

	_, err = Generate(path, "", false)
	require.Error(t, err, "never replaces a key unasked")
	assert.Contains(t, err.Error(), "--force")
	again, err := Generate(path, "", true)
	require.NoError(t, err)
	assert.False(t, again.Equal(key))
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "none"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	_, err = Load(bad)
	assert.Error(t, err)
	for _, line := range []string{"", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC x", "ssh-ed25519 !!!", "hello"} {
		_, err := ParseAuthorized(line)
		assert.Error(t, err, line)
	}
}

func FuzzParseAuthorized(f *testing.F) {
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@lab")
	f.Add("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC x")
	f.Fuzz(func(t *testing.T, line string) {
		pub, err := ParseAuthorized(line)
		if err == nil && len(pub) != ed25519.PublicKeySize {
			t.Fatalf("accepted a key of %d bytes", len(pub))
		}
	})
}
