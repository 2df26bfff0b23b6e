package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EFramingOff is the classic lesson with the real binaries: with
// framing off, the rest of a long output arrives as the answer to the next
// command.
func TestE2EFramingOff(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--framing=off", "--force", "--dir", dir)
	assert.Contains(t, d.log.String(), "TEACHING MODE")
	c := newClient(t)

	var seq strings.Builder
	for i := 1; i <= 2000; i++ {
		seq.WriteString(strconv.Itoa(i) + "\n")
	}
	r := c.run("seq 1 2000\necho hello\npwd\n", "--framing=off", d.addr)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "TEACHING MODE")
	assert.NotContains(t, r.stdout, "hello", "the answer to echo is the leftover of seq")
	assert.NotContains(t, r.stdout, dir)
	assert.Equal(t, seq.String()[:3*1024], r.stdout, "three recv(1024)s: all three answers are seq's output")

	r = c.run("", "--framing=off", d.addr, "echo", "hi")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "hi\n", r.stdout)

	r = c.run("", "--framing=off", "--recv-buffer", "4", d.addr, "echo", "hello")
	assert.Equal(t, "hell", r.stdout, "a 4-byte recv takes 4 bytes: 半包")

	// A command that prints nothing leaves the naive client waiting.
	r = c.run("true\n", "--framing=off", d.addr)
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "no answer within 5s")

	// The real client cannot talk to a teaching daemon: its TLS handshake
	// gets a shell's complaint back.
	r = c.run("", d.addr, "true")
	assert.Equal(t, 255, r.code)

	// Beyond loopback, or as root, only with --force.
	out, err := exec.Command(filepath.Join(binDir, "execd"), "--framing=off", "--listen", "0.0.0.0:0").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "loopback only")
	if os.Geteuid() == 0 {
		out, err = exec.Command(filepath.Join(binDir, "execd"), "--framing=off", "--listen", "127.0.0.1:0").CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(out), "as root unless --force")
	}
}
