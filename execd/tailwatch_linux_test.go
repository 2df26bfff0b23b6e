package execd

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A follower is woken by a write, a rename and a creation in its file's
// directory, not only at its next look.
func TestWatchDir(t *testing.T) {
	dir := t.TempDir()
	w := watchDir(dir)
	require.NotNil(t, w)
	defer w.close()
	wait := func(what string) {
		t.Helper()
		select {
		case <-w.events():
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %s", what)
		}
	}
	log := filepath.Join(dir, "app.log")
	require.NoError(t, os.WriteFile(log, []byte("one\n"), 0o600))
	wait("a new file")
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond) // the events so far are one wake-up
	select {
	case <-w.events():
	default:
	}
	_, err = f.WriteString("two\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	wait("an append")
	require.NoError(t, os.Rename(log, log+".1"))
	wait("a rotation")
	var nilWatch *dirWatch
	require.Nil(t, nilWatch.events(), "no watch: no events, the looks alone")
	nilWatch.close()
}
