package main_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EFanoutFiles starts 20 execd binaries on 127.0.0.2 to 127.0.0.21,
// one port, each serving its own folder, and drives the rexec binary
// against all of them: a command, a get into one folder per host, a put
// of a file and of stdin, with one host down throughout.
func TestE2EFanoutFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 daemons")
	}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	require.NoError(t, ln.Close())
	const name = "数据 日志.bin" // a Chinese name with a space
	served := map[int]string{}
	want := map[int][]byte{}
	for n := 2; n <= 21; n++ {
		dir := t.TempDir()
		data := make([]byte, 256<<10+n*1000) // every host's file differs in size and bytes
		_, _ = rand.Read(data)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
		served[n], want[n] = dir, data
		// The first start lets the test user in with its key, made by the
		// first daemon and found by the others in the same config folder.
		startDaemonOn(t, fmt.Sprintf("127.0.0.%d:%s", n, port), t.TempDir(), "--dir", dir)
	}
	c := newClient(t)
	hosts := "127.0.0.[2-22]" // 22 is down

	r := c.run("", "-H", hosts, "-p", port, "--connect-timeout", "3s", "--", "sh", "-c", `echo "$(pwd)"`)
	assert.Equal(t, 255, r.code, r.stderr)
	for n := 2; n <= 21; n++ {
		assert.Contains(t, r.stdout, fmt.Sprintf("127.0.0.%d: %s\n", n, served[n]))
	}
	assert.Contains(t, r.stderr, "rexec: pinned 20 new hosts in ")
	assert.Contains(t, r.stderr, "rexec: 21 hosts: 20 ok, 1 unreachable; slowest ")
	assert.Contains(t, r.stderr, "rexec: unreachable: 127.0.0.22: connection refused\n")

	out := filepath.Join(t.TempDir(), "logs")
	r = c.run("", "get", "-H", hosts, "-p", port, "--connect-timeout", "3s", ":"+name, out)
	assert.Equal(t, 255, r.code, r.stderr)
	for n := 2; n <= 21; n++ {
		got, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("127.0.0.%d", n), name))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want[n], got), "host %d: the copy differs", n)
	}
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	assert.Len(t, entries, 20, "no folder for the host that is down")
	assert.Contains(t, r.stderr, "127.0.0.22: rexec: connect: ")
	assert.Contains(t, r.stderr, "rexec: 21 hosts: 20 ok, 1 unreachable")

	// A missing file is a failure of that host alone, status 1.
	require.NoError(t, os.Remove(filepath.Join(served[5], name)))
	r = c.run("", "get", "-H", "127.0.0.[2-6]", "-p", port, "HOST:"+name, out)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "127.0.0.5: rexec: ")
	assert.Contains(t, r.stderr, "rexec: 5 hosts: 4 ok, 1 failed")

	// put of a file and of stdin to every host.
	local := filepath.Join(t.TempDir(), "app.conf")
	conf := bytes.Repeat([]byte("key = value\n"), 10000)
	require.NoError(t, os.WriteFile(local, conf, 0o640))
	r = c.run("", "put", "-H", "127.0.0.[2-21]", "-p", port, local, ":")
	require.Equal(t, 0, r.code, r.stderr)
	r = c.run("from stdin\n", "put", "-H", "127.0.0.[2-21]", "-p", port, "-", ":in/stdin.txt")
	assert.Equal(t, 1, r.code, "no folder in/ on the hosts: %s", r.stderr)
	r = c.run("from stdin\n", "put", "-H", "127.0.0.[2-21]", "-p", port, "-", ":stdin.txt")
	require.Equal(t, 0, r.code, r.stderr)
	for n := 2; n <= 21; n++ {
		got, err := os.ReadFile(filepath.Join(served[n], "app.conf"))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(conf, got), "host %d", n)
		got, err = os.ReadFile(filepath.Join(served[n], "stdin.txt"))
		require.NoError(t, err)
		assert.Equal(t, "from stdin\n", string(got))
		parts, _ := filepath.Glob(filepath.Join(served[n], ".*.rexec-part"))
		assert.Empty(t, parts, "host %d: no partial copies left", n)
	}

	// Remote paths must say they are remote.
	r = c.run("", "get", "-H", "127.0.0.2", "-p", port, "127.0.0.2:"+name, out)
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "with -H, write remote paths as :PATH")

	// On a terminal: one progress view for every host, not a bar per file.
	cmd := c.command("get", "-H", "127.0.0.[2-21]", "-x", "127.0.0.5", "-p", port, ":"+name, filepath.Join(t.TempDir(), "tty"))
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	require.NoError(t, err)
	defer func() { _ = tty.Close() }()
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(seen.String(), "hosts: 19 ok") {
		require.True(t, time.Now().Before(deadline), "waiting for the summary in %q", seen.String())
		_ = tty.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := tty.Read(buf)
		seen.Write(buf[:n])
	}
	require.NoError(t, cmd.Wait())
	assert.Contains(t, seen.String(), "19/19 hosts")
	assert.NotContains(t, seen.String(), name, "no bar per file")
}
