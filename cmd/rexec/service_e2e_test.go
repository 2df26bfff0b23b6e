//go:build unix

package main_test

import (
	"net"
	"os"
	"os/exec"
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

	// The connections of the commands that ended may take a moment to
	// go: ask until the status shows the held command's alone.
	var line string
	require.Eventually(t, func() bool {
		if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
		b, err := os.ReadFile(logPath)
		if err != nil {
			return false
		}
		i := strings.LastIndex(string(b), "msg=status")
		if i < 0 {
			return false
		}
		line, _, _ = strings.Cut(string(b)[i:], "\n")
		return strings.Contains(line, "connections=1 ")
	}, 10*time.Second, 10*time.Millisecond, "status: %s", line)
	assert.Contains(t, line, "channels=map[exec:1]", line)
	assert.Contains(t, line, "logged_in=1", line)
	assert.Contains(t, line, "version=", line)

	_, err := stdin.Write([]byte("go\n"))
	require.NoError(t, err)
	require.True(t, sc.Scan())
	assert.Equal(t, "finished", sc.Text(), "the command ran through the hangup and the status")
	require.NoError(t, cmd.Wait())
	assert.True(t, d.running(), "the daemon is still running")
}

// --version names the commit the toolchain stamped into a release build
// (-buildvcs), for both binaries; without a stamp it names the release.
func TestE2EVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git history to stamp: %v", err) // a source tarball, not a checkout
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-buildvcs=true", "-o", dir+"/", "./cmd/execd", "./cmd/rexec")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, name := range []string{"rexec", "execd"} {
		out, err := exec.Command(filepath.Join(dir, name), "--version").Output()
		require.NoError(t, err)
		assert.Contains(t, string(out), name+" version 0.1.0 (commit "+strings.TrimSpace(string(head)), name)
		out, err = exec.Command(filepath.Join(binDir, name), "--version").Output()
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(out), name+" version 0.1.0"), "%s", out)
	}
}

// Shell completion offers the config file's hosts and groups.
func TestE2ECompletion(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"),
		[]byte("[hosts.lab1]\nhost = \"127.0.0.1\"\n[hosts.web]\nhost = \"127.0.0.2\"\n[groups]\nlab = [\"lab1\", \"web\"]\n"), 0o600))
	r := c.run("", "__complete", "")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "\nlab1\nweb\n:4\n", "hosts and groups after the subcommands, no files")
	assert.Contains(t, r.stdout, "get\tCopy files from a daemon\n")
	r = c.run("", "__complete", "-g", "")
	assert.Equal(t, "lab\n:4\n", r.stdout, "-g takes groups")
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		r = c.run("", "completion", sh)
		assert.Equal(t, 0, r.code, sh)
		assert.Contains(t, r.stdout, "rexec", sh)
	}
}

// execd.socket's way: systemd-socket-activate holds the port and passes
// the listening socket; execd serves it, and its commands do not see the
// activation's variables.
func TestE2ESocketActivation(t *testing.T) {
	t.Parallel()
	needTool(t, "systemd-socket-activate")
	addr := freeAddr(t)
	state := t.TempDir()
	logBuf := &syncBuffer{}
	// systemd-socket-activate passes on only the environment given with -E.
	cmd := exec.Command("systemd-socket-activate", "-l", addr, "-E", "HOME="+t.TempDir(), "-E", "XDG_CONFIG_HOME="+userConfig(t),
		filepath.Join(binDir, "execd"), "--state-dir", state, "--listen", "127.0.0.1:1")
	cmd.Stderr = logBuf
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	c := newClient(t)
	var r result
	require.Eventually(t, func() bool {
		r = c.run("", addr, "sh", "-c", `echo "fds=${LISTEN_FDS-unset}"`)
		return r.code == 0
	}, 10*time.Second, 50*time.Millisecond, "daemon: %s", logBuf)
	assert.Equal(t, "fds=unset\n", r.stdout)
	assert.Contains(t, logBuf.String(), "listening on the socket systemd passed")
}

// Type=notify: READY=1 once serving, WATCHDOG=1 as WatchdogSec asks,
// STOPPING=1 at SIGTERM, on the socket systemd names.
func TestE2ENotifyAndWatchdog(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	defer c.Close()
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// env execs execd: the daemon's pid is the one started.
	d := startDaemonUnder(t, []string{"env", "NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, freeAddr(t), t.TempDir())
	want := func(prefix string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m, prefix) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %s from execd: %s", prefix, d.log)
			}
		}
	}
	assert.Contains(t, want("READY=1"), "STATUS=serving on "+d.addr)
	want("WATCHDOG=1")
	want("WATCHDOG=1")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	want("STOPPING=1")
}

// The unit files pass systemd-analyze verify (with ExecStart pointed at
// the binary built here, which verify requires to exist).
func TestSystemdUnitsVerify(t *testing.T) {
	t.Parallel()
	needTool(t, "systemd-analyze")
	dir := t.TempDir()
	for _, name := range []string{"execd.service", "execd.socket"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "dist", "systemd", name))
		require.NoError(t, err)
		text := strings.ReplaceAll(string(b), "/usr/bin/execd", filepath.Join(binDir, "execd"))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, "execd.service"), filepath.Join(dir, "execd.socket")).CombinedOutput()
	assert.NoError(t, err, "%s", out)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "execd") {
			t.Errorf("systemd-analyze: %s", line)
		}
	}
}
