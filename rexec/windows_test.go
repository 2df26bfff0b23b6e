//go:build windows

package rexec_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/windows"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// These tests run a real execd on Windows (CI runs them under wine with a
// Chinese code page, and again with code page 1252): cmd.exe's output must
// reach the client as correct UTF-8.

type winResult struct {
	stdout, stderr string
	exit           *rexec.Exit
	err            error
}

func winRun(t *testing.T, c *rexec.Client, dir, shell string, argv ...string) winResult {
	t.Helper()
	s, err := c.NewSession()
	require.NoError(t, err)
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Dir = &out, &errb, dir
	if shell != "" {
		err = s.StartShell(t.Context(), shell)
	} else {
		err = s.Start(t.Context(), argv...)
	}
	require.NoError(t, err)
	err = s.Wait()
	return winResult{out.String(), errb.String(), s.Exit(), err}
}

// chinese reports whether this Windows writes code page 936.
func chinese() bool { return windows.GetACP() == 936 }

func TestWindowsChineseOutput(t *testing.T) {
	home := execdtest.TempDir(t)
	d := execdtest.Start(t, &execd.Server{Dir: home}, false)
	c := dial(t, d)
	t.Logf("ACP %d, console output CP %d", windows.GetACP(), must(windows.GetConsoleOutputCP()))

	r := winRun(t, c, "", "echo 中文测试")
	require.NoError(t, r.err)
	assert.True(t, utf8.ValidString(r.stdout), "%q", r.stdout)
	if chinese() {
		assert.Equal(t, "中文测试\r\n", r.stdout)
		assert.Equal(t, "gbk", r.exit.Encoding)
	} else {
		// Code page 1252 cannot hold Chinese: cmd writes '?' for each
		// character, and they arrive as such, in valid UTF-8.
		assert.Equal(t, "????\r\n", r.stdout)
		assert.Equal(t, "windows-1252", r.exit.Encoding)
	}

	// dir of a folder with Chinese names
	for _, n := range []string{"报告.txt", "数据 日志.csv"} {
		require.NoError(t, os.WriteFile(filepath.Join(home, n), []byte("x"), 0o644))
	}
	r = winRun(t, c, "", "dir /b")
	require.NoError(t, r.err)
	assert.True(t, utf8.ValidString(r.stdout))
	if chinese() {
		assert.Contains(t, r.stdout, "报告.txt\r\n")
		assert.Contains(t, r.stdout, "数据 日志.csv\r\n")
	}

	// cmd's own message for an unknown command, and its status 9009
	r = winRun(t, c, "", "nosuchcommand_xyz")
	var ee *rexec.ExitError
	require.ErrorAs(t, r.err, &ee)
	assert.Equal(t, 9009, ee.Status, "cmd's status for an unknown command")
	assert.Equal(t, 9009, r.exit.Status)
	assert.True(t, utf8.ValidString(r.stderr), "%q", r.stderr)
	assert.Contains(t, r.stderr, "nosuchcommand_xyz")
	t.Logf("cmd says: %q", r.stderr)

	// raw keeps cmd's own bytes
	s, err := c.NewSession()
	require.NoError(t, err)
	s.Encoding = frame.EncodingRaw
	var raw bytes.Buffer
	s.Stdout = &raw
	require.NoError(t, s.StartShell(t.Context(), "echo 中文测试"))
	require.NoError(t, s.Wait())
	if chinese() {
		assert.Equal(t, []byte{0xd6, 0xd0, 0xce, 0xc4, 0xb2, 0xe2, 0xca, 0xd4, '\r', '\n'}, raw.Bytes())
	}
	assert.Equal(t, "raw", s.Exit().Encoding)
}

// The command line reaches cmd.exe exactly as typed.
func TestWindowsCommandLine(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{Dir: execdtest.TempDir(t)}, false)
	c := dial(t, d)
	r := winRun(t, c, "", `echo "two  spaces" & echo a^&b & set /a 6*7`)
	require.NoError(t, r.err)
	assert.Equal(t, "\"two  spaces\" \r\na&b \r\n42", r.stdout)

	r = winRun(t, c, "", "exit /b 3")
	var ee *rexec.ExitError
	require.ErrorAs(t, r.err, &ee)
	assert.Equal(t, 3, ee.Status)

	// argv runs directly, with Go's quoting
	r = winRun(t, c, "", "", "cmd.exe", "/c", "echo", "x y")
	require.NoError(t, r.err)
	assert.Equal(t, "\"x y\"\r\n", r.stdout)
}

// A time limit ends the whole job.
func TestWindowsTimeLimit(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{Dir: execdtest.TempDir(t), KillGrace: 500 * time.Millisecond}, false)
	c := dial(t, d)
	s, err := c.NewSession()
	require.NoError(t, err)
	s.Timeout = time.Second
	start := time.Now()
	require.NoError(t, s.StartShell(t.Context(), "for /l %i in (1,0,2) do @rem"))
	err = s.Wait()
	var ee *rexec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.True(t, ee.TimedOut)
	assert.Less(t, time.Since(start), 20*time.Second)
}

// -t is refused clearly, not left hanging.
func TestWindowsPtyRefused(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{Dir: execdtest.TempDir(t)}, false)
	c := dial(t, d)
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.RequestPty("xterm", 24, 80))
	err = s.StartShell(t.Context(), "echo hi")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pty")
}

// Files with Chinese names go both ways; reserved names are refused.
func TestWindowsFiles(t *testing.T) {
	home := execdtest.TempDir(t)
	d := execdtest.Start(t, &execd.Server{Dir: home}, false)
	c := dial(t, d)
	local := execdtest.TempDir(t)
	data := bytes.Repeat([]byte("日志 line\r\n"), 50000)
	require.NoError(t, os.WriteFile(filepath.Join(local, "上传 文件.log"), data, 0o644))
	_, err := c.Put(t.Context(), []string{filepath.Join(local, "上传 文件.log")}, "收件箱.log", nil)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(home, "收件箱.log"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got))

	_, err = c.Get(t.Context(), "收件箱.log", filepath.Join(local, "回来.log"), nil)
	require.NoError(t, err)
	got, err = os.ReadFile(filepath.Join(local, "回来.log"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got))

	// a Windows user's backslashes are separators; a drive letter is refused
	require.NoError(t, os.MkdirAll(filepath.Join(home, "子目录"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(home, "子目录", "日志.txt"), []byte("深层"), 0o644))
	_, err = c.Get(t.Context(), `子目录\日志.txt`, filepath.Join(local, "深.txt"), nil)
	require.NoError(t, err)
	got, err = os.ReadFile(filepath.Join(local, "深.txt"))
	require.NoError(t, err)
	assert.Equal(t, "深层", string(got))
	_, err = c.Get(t.Context(), `C:\Windows\win.ini`, filepath.Join(local, "x"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "drive letters are not served")

	for _, name := range []string{"CON", "nul.txt", "com1.log", "what?.txt", "dir/aux"} {
		_, err = c.Put(t.Context(), []string{filepath.Join(local, "上传 文件.log")}, name, nil)
		require.Error(t, err, name)
		assert.True(t, strings.Contains(err.Error(), "Windows"), "%s: %v", name, err)
	}
}

func must[T any](v T, _ error) T { return v }
