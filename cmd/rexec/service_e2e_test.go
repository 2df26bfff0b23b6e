//go:build unix

package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fileHas reports whether the file at path contains s.
func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// A rotated log and audit log (renamed, as logrotate does) go on in fresh
// files after SIGHUP, while a command keeps running; SIGUSR1 logs what
// the daemon serves.
func TestE2EHangupReopensLogsAndUSR1Status(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "execd.log")
	audit := filepath.Join(state, "audit.log")
	d := startDaemon(t, state, "--log-file", logPath)
	c := newClient(t)
	cmd, stdin, sc, _ := c.startHeld(d.addr, "echo started; read x; echo finished")
	require.Equal(t, 0, c.run("", d.addr, "echo", "before-rotation").code)
	require.Eventually(t, func() bool { return fileHas(audit, "before-rotation") }, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, os.Rename(logPath, logPath+".1"))
	require.NoError(t, os.Rename(audit, audit+".1"))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return fileHas(logPath, "hangup: log files reopened") }, 10*time.Second, 10*time.Millisecond,
		"a fresh log file after the hangup")
	require.Equal(t, 0, c.run("", d.addr, "echo", "after-rotation").code)
	require.Eventually(t, func() bool { return fileHas(audit, "after-rotation") }, 10*time.Second, 10*time.Millisecond,
		"a fresh audit log after the hangup")
	assert.False(t, fileHas(audit, "before-rotation"), "the rotated events stay in the old file")
	assert.True(t, fileHas(audit+".1", "before-rotation"))
	assert.False(t, fileHas(audit+".1", "after-rotation"))
	assert.True(t, fileHas(logPath+".1", "connection established"), "the old log kept what came before")

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGUSR1))
	require.Eventually(t, func() bool { return fileHas(logPath, "msg=status") }, 10*time.Second, 10*time.Millisecond)
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	line := string(b)[strings.Index(string(b), "msg=status"):]
	line = line[:strings.IndexByte(line, '\n')]
	assert.Contains(t, line, "connections=1", "the held command's connection: %s", line)
	assert.Contains(t, line, "channels=map[exec:1]", line)
	assert.Contains(t, line, "version=", line)

	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	require.True(t, sc.Scan())
	assert.Equal(t, "finished", sc.Text(), "the command ran through the hangup and the status")
	require.NoError(t, cmd.Wait())
	assert.True(t, d.cmd.ProcessState == nil, "the daemon is still running")
}
