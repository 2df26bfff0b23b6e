//go:build unix

package main_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
)

// resumeScript writes numbered lines on stdout (and every 16th on
// stderr) and exits with 7; run locally, it gives what rexec must print.
const resumeScript = `awk 'BEGIN { for (i = 0; i < 400000; i++) { printf "out %09d %s\n", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; if (i % 16 == 0) printf "err %09d\n", i > "/dev/stderr" }; exit 7 }'`

// Issue 17: rexec HOST -- CMD through a proxy that resets the connection
// again and again: rexec reconnects by itself, its stdout and stderr are
// byte for byte what the command wrote, and it exits with the command's
// status.
func TestE2EResumeThroughCuts(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	p := execdtest.StartProxy(t, d.addr)
	c := newClient(t)
	require.Equal(t, 0, c.run("", p.Addr, "true").code) // pins the daemon

	local := exec.Command("sh", "-c", resumeScript)
	var wantOut, wantErr bytes.Buffer
	local.Stdout, local.Stderr = &wantOut, &wantErr
	var ee *exec.ExitError
	require.ErrorAs(t, local.Run(), &ee)
	require.Equal(t, 7, ee.ExitCode())

	cmd := c.command("--reconnect-for", "30s", p.Addr, "sh", "-c", resumeScript)
	var out syncBuffer
	var errb bytes.Buffer
	var errMu syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errMu
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	cuts := 0
	deadline := time.After(60 * time.Second)
	next := 1 << 20
wait:
	for {
		select {
		case err := <-exited:
			exited <- err
			break wait
		case <-deadline:
			t.Fatal("rexec did not finish")
		case <-time.After(2 * time.Millisecond):
		}
		// A reset once the resumed session has delivered another MiB.
		if strings.Count(errMu.String(), "reconnected;") == cuts && len(out.String()) >= next {
			if p.ResetOpen() > 0 {
				cuts++
				next = len(out.String()) + 1<<20
			}
		}
	}
	err := <-exited
	require.ErrorAs(t, err, &ee, "stderr: %s", lastLines(errMu.String()))
	assert.Equal(t, 7, ee.ExitCode())
	assert.True(t, out.String() == wantOut.String(), "stdout differs: %d bytes, want %d", len(out.String()), wantOut.Len())
	// stderr holds the command's lines and rexec's notes (each ending in
	// \r\n, wherever the command's last line stopped).
	errb.WriteString(regexp.MustCompile(`rexec: [^\r\n]*\r\n`).ReplaceAllString(errMu.String(), ""))
	assert.True(t, errb.String() == wantErr.String(), "stderr differs: %d bytes, want %d", errb.Len(), wantErr.Len())
	assert.GreaterOrEqual(t, cuts, 8, "cuts")
	// A note per loss; the last cut may come after the exit arrived.
	assert.InDelta(t, cuts, strings.Count(errMu.String(), "connection lost"), 1, "a note per loss")
}

// lastLines is the end of a long text, for a failure message.
func lastLines(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}
