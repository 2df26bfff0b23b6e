//go:build wine

package main_test

import (
	"bytes"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWineE2E starts execd.exe under wine (code page 936) on loopback and
// drives it with the Linux rexec binary: commands whose GBK output must
// arrive as UTF-8, cmd's exit status 9009, and a get and a put of files
// with Chinese names. .ci/wine.sh runs it (-tags wine).
func TestWineE2E(t *testing.T) {
	exe := filepath.Join(binDir, "execd.exe")
	build := exec.Command("go", "build", "-o", exe, "../execd")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	state, home := t.TempDir(), t.TempDir()
	report := make([]byte, 300000)
	_, _ = rand.Read(report)
	require.NoError(t, os.WriteFile(filepath.Join(home, "数据 报告.bin"), report, 0o644))
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	d := &daemon{addr: addr, log: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command("wine", exe, "--listen", addr, "--state-dir", state, "--dir", home, "--kill-grace", "1s")
	d.cmd.Env = append(os.Environ(), "LC_ALL=zh_CN.UTF-8", "XDG_CONFIG_HOME="+userConfig(t))
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	require.NoError(t, d.cmd.Start())
	d.wait()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill() // the wine process we started, by its pid
		<-d.done
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "execd.exe did not start: %s", d.log)
	t.Logf("execd.exe: %s", d.log)

	c := newClient(t)
	r := c.run("", "-p", port, "127.0.0.1", "cmd", "/c", "echo", "中文测试")
	require.Equal(t, 0, r.code, "%s\n%s", r.stderr, d.log)
	assert.Equal(t, "中文测试\r\n", r.stdout)

	r = c.run("", "-p", port, "-v", "-s", "127.0.0.1", "echo 你好 & dir /b")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "你好 \r\n")
	assert.Contains(t, r.stdout, "数据 报告.bin\r\n")
	assert.Contains(t, r.stderr, "output encoding: gbk")

	r = c.run("", "-p", port, "-s", "127.0.0.1", "nosuchcommand_xyz")
	assert.Equal(t, 9009&0xff, r.code)
	assert.Contains(t, r.stderr, "remote exit status 9009")
	assert.Contains(t, r.stderr, "nosuchcommand_xyz")
	assert.Contains(t, r.stderr, "内部或外部命令", "cmd's Chinese message, as UTF-8")

	r = c.run("", "-p", port, "--encoding", "raw", "-s", "127.0.0.1", "echo 中文")
	assert.Equal(t, "\xd6\xd0\xce\xc4\r\n", r.stdout, "raw: cmd's own GBK bytes")

	local := t.TempDir()
	r = c.run("", "get", "-q", "-p", port, "127.0.0.1:数据 报告.bin", local)
	require.Equal(t, 0, r.code, r.stderr)
	got, err := os.ReadFile(filepath.Join(local, "数据 报告.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(report, got), "get: byte for byte")

	upload := bytes.Repeat([]byte("上传的内容 line\n"), 20000)
	require.NoError(t, os.WriteFile(filepath.Join(local, "上传.txt"), upload, 0o644))
	r = c.run("", "put", "-q", "-p", port, filepath.Join(local, "上传.txt"), "127.0.0.1:收到 的.txt")
	require.Equal(t, 0, r.code, r.stderr)
	got, err = os.ReadFile(filepath.Join(home, "收到 的.txt"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(upload, got), "put: byte for byte")

	r = c.run("", "put", "-q", "-p", port, filepath.Join(local, "上传.txt"), "127.0.0.1:CON")
	assert.Equal(t, 1, r.code)
	assert.True(t, strings.Contains(r.stderr, "reserved device name on Windows"), r.stderr)
}

// winPath is how wine's Windows side names a Unix path (drive Z: is /).
func winPath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

// TestWineService installs execd.exe as a Windows service under wine,
// starts it with "net start", runs a command through it, and stops it
// with "net stop": a graceful stop, exit code 0.
func TestWineService(t *testing.T) {
	exe := filepath.Join(binDir, "execd.exe")
	build := exec.Command("go", "build", "-o", exe, "../execd")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	wine := func(args ...string) (string, error) {
		cmd := exec.Command("wine", args...)
		cmd.Stdin = nil
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	state, home := t.TempDir(), t.TempDir()
	add := exec.Command("wine", exe, "--state-dir", winPath(state), "user", "add", "tester", "--home", winPath(home), "--password-stdin")
	add.Stdin = strings.NewReader("service pass 1\n")
	out, err = add.CombinedOutput()
	require.NoError(t, err, string(out))

	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	name := "execd-test-" + port
	logFile := filepath.Join(state, "service.log")
	o, err := wine("sc", "create", name, "binPath=", winPath(exe)+" --service --listen "+addr+" --state-dir "+winPath(state)+" --log-file "+winPath(logFile))
	require.NoError(t, err, o)
	t.Cleanup(func() {
		_, _ = wine("net", "stop", name)
		_, _ = wine("sc", "delete", name)
	})
	o, err = wine("net", "start", name)
	require.NoError(t, err, o)
	assert.Contains(t, o, "started successfully")

	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the service does not listen: %s", readFile(logFile))

	t.Setenv("REXEC_PASSWORD", "service pass 1")
	c := newClient(t)
	r := c.run("", "-p", port, "tester@127.0.0.1", "cmd", "/c", "echo", "service")
	require.Equal(t, 0, r.code, "%s\n%s", r.stderr, readFile(logFile))
	assert.Equal(t, "service\r\n", r.stdout)

	o, err = wine("net", "stop", name)
	require.NoError(t, err, o)
	assert.Contains(t, o, "stopped successfully")
	o, _ = wine("sc", "query", name)
	assert.Contains(t, o, "STOPPED")
	assert.Contains(t, o, "WIN32_EXIT_CODE    : 0")
	log := readFile(logFile)
	assert.Contains(t, log, "signal received, shutting down")
	assert.Contains(t, log, "msg=stopped")
	r = c.run("", "-p", port, "--connect-timeout", "2s", "tester@127.0.0.1", "true")
	assert.Equal(t, 255, r.code, "the daemon is gone")
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
