//go:build linux

package testmain_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/internal/testmain"
)

func TestMain(m *testing.M) { testmain.Main(m, testmain.Options{Goroutines: true}) }

// A process started with the mark is found while it runs, with its
// command line, and not once it is gone; another mark does not find it.
func TestLeftoversFindsMarkedProcesses(t *testing.T) {
	mark := t.Name() + "-" + time.Now().Format("150405.000000000")
	cmd := exec.Command("sleep", "30")
	cmd.Env = append(os.Environ(), testmain.MarkEnv+"="+mark)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// the environment is the child's once it has exec'd
	var left []testmain.Process
	require.Eventually(t, func() bool {
		left = testmain.Leftovers(mark, 0)
		return len(left) == 1
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, cmd.Process.Pid, left[0].Pid)
	assert.Equal(t, "sleep 30", left[0].Cmdline)
	assert.Empty(t, testmain.Leftovers(mark+"x", 0), "a whole value, not a prefix")
	assert.NotEmpty(t, testmain.Leftovers("", 0), "any mark")

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	assert.Empty(t, testmain.Leftovers(mark, 5*time.Second))
}

// The package's tests run with a home of their own.
func TestHomeIsNotTheRealOne(t *testing.T) {
	home := os.Getenv("HOME")
	assert.Contains(t, home, "execd-test-home")
	assert.Equal(t, home+"/.config", os.Getenv("XDG_CONFIG_HOME"))
	assert.NotEmpty(t, os.Getenv("GOCACHE"), "the go command keeps its real cache")
}
