//go:build unix

package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/internal/config"
)

// Issue 27 item 10: a configuration file others may write is refused, as
// sshd's StrictModes refuses one; a device such as /dev/null is not a
// file anyone configures.
func TestApplyRefusesUnsafeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "execd.toml")
	require.NoError(t, os.WriteFile(path, []byte("listen = \"127.0.0.1:7022\"\n"), 0o600))
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("listen", "", "")
	_, err := config.Apply(path, fs)
	require.NoError(t, err)
	for _, mode := range []os.FileMode{0o666, 0o620, 0o602} {
		require.NoError(t, os.Chmod(path, mode))
		_, err = config.Apply(path, fs)
		require.Error(t, err, "%04o", mode)
		assert.Contains(t, err.Error(), "writable by group or others")
	}
	require.NoError(t, os.Chmod(path, 0o644))
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(path, 64123, 64123))
		_, err = config.Apply(path, fs)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "owned by uid 64123, neither root nor the daemon's account")
	}
	_, err = config.Apply(os.DevNull, fs)
	assert.NoError(t, err)
}
