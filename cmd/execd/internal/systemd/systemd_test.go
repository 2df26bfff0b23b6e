package systemd_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/cmd/execd/internal/systemd"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNotify(t *testing.T) {
	ok, err := systemd.Notify(env(nil), "READY=1")
	require.NoError(t, err)
	assert.False(t, ok, "no service manager: nothing sent")

	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	defer c.Close()
	ok, err = systemd.Notify(env(map[string]string{"NOTIFY_SOCKET": path}), "READY=1\nSTATUS=serving")
	require.NoError(t, err)
	assert.True(t, ok)
	buf := make([]byte, 256)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := c.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "READY=1\nSTATUS=serving", string(buf[:n]))

	_, err = systemd.Notify(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "gone")}), "READY=1")
	assert.Error(t, err, "a socket that is not there is an error")
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	tests := []struct {
		env  map[string]string
		want time.Duration
		err  bool
	}{
		{nil, 0, false},
		{map[string]string{"WATCHDOG_USEC": "30000000"}, 30 * time.Second, false},
		{map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": me}, 500 * time.Millisecond, false},
		{map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, 0, false},
		{map[string]string{"WATCHDOG_USEC": "x"}, 0, true},
	}
	for _, tc := range tests {
		got, err := systemd.WatchdogInterval(env(tc.env))
		assert.Equal(t, tc.err, err != nil, "%v", tc.env)
		assert.Equal(t, tc.want, got, "%v", tc.env)
	}
}

func TestListenersNotActivated(t *testing.T) {
	lns, err := systemd.Listeners(env(nil))
	require.NoError(t, err)
	assert.Empty(t, lns)
	_, err = systemd.Listeners(env(map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}))
	assert.ErrorIs(t, err, systemd.ErrNotForUs)
	_, err = systemd.Listeners(env(map[string]string{"LISTEN_FDS": "zero", "LISTEN_PID": strconv.Itoa(os.Getpid())}))
	assert.Error(t, err)
}
