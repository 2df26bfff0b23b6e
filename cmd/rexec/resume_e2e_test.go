//go:build unix

package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	// stderr holds the command's lines and rexec's notes, each on a line
	// of its own (ending in \r\n, after one when the command's last line
	// had not ended).
	assert.NotRegexp(t, "[^\n]rexec: ", errMu.String(), "a note in the middle of a line")
	errb.WriteString(regexp.MustCompile(`(\r\n)?rexec: [^\r\n]*\r\n`).ReplaceAllString(errMu.String(), ""))
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

// Issue 17: the user guide's lines for commands that survive the network, run
// as written by sh against a daemon named lab1 behind a proxy that resets
// the connection during each of them.
func TestE2EReadmeResume(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSpace(docBlock(t, "docs/guide.md", "## Commands that survive the network")), "\n")
	require.Len(t, lines, 3)

	home := t.TempDir()
	logs := filepath.Join(home, "logs")
	require.NoError(t, os.MkdirAll(logs, 0o755))
	for i := range 6 {
		b := bytes.Repeat([]byte(fmt.Sprintf("log %d line\n", i)), 400000) // 4.4 MB each
		require.NoError(t, os.WriteFile(filepath.Join(logs, fmt.Sprintf("app.%d.log", i)), b, 0o644))
	}
	// The build's output before and after a pause in which the connection is reset.
	require.NoError(t, os.WriteFile(filepath.Join(home, "build.sh"), []byte("#!/bin/sh\necho building\nsleep 1\necho built\n"), 0o755))
	d := startDaemon(t, t.TempDir(), "--dir", home)
	p := execdtest.StartProxy(t, d.addr)
	c := newClient(t)
	host, port, _ := strings.Cut(p.Addr, ":")
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"), fmt.Appendf(nil, "[hosts.lab1]\nhost = %q\nport = %s\n", host, port), 0o600))
	require.Equal(t, 0, c.run("", "lab1", "true").code) // pins it

	work := t.TempDir()
	run := func(line string, cut func(errb *syncBuffer) bool) (int, string) {
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), c.env()...)
		cmd.Env = append(cmd.Env, "PATH="+binDir+":"+os.Getenv("PATH"))
		var errb syncBuffer
		cmd.Stderr = &errb
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		deadline := time.After(30 * time.Second)
		for cutDone := false; !cutDone; {
			select {
			case <-exited:
				cutDone = true
			case <-time.After(5 * time.Millisecond):
				cutDone = cut(&errb)
			case <-deadline:
				_ = cmd.Process.Kill()
				t.Fatalf("%s: did not finish", line)
			}
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%s: did not finish", line)
		}
		return cmd.ProcessState.ExitCode(), errb.String()
	}

	// 1: the archive is whole through three resets while it streams.
	tarFile := filepath.Join(work, "logs.tar")
	cuts := 0
	code, stderr := run(lines[0], func(errb *syncBuffer) bool {
		fi, err := os.Stat(tarFile)
		if err == nil && fi.Size() > int64(cuts+1)*5<<20 && strings.Count(errb.String(), "reconnected;") == cuts && p.ResetOpen() > 0 {
			cuts++
		}
		return cuts == 3
	})
	require.Equal(t, 0, code, "%s: %s", lines[0], stderr)
	require.Equal(t, 3, cuts)
	untar := t.TempDir()
	out, err := exec.Command("tar", "xf", tarFile, "-C", untar).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for i := range 6 {
		name := fmt.Sprintf("app.%d.log", i)
		got, err := os.ReadFile(filepath.Join(untar, "logs", name))
		require.NoError(t, err)
		want, _ := os.ReadFile(filepath.Join(logs, name))
		require.True(t, bytes.Equal(want, got), "%s differs", name)
	}

	// 2 and 3: a reset during the build's pause. With reconnection the
	// build ends as it would have; without, rexec says the connection was
	// lost (255) and the daemon ends the build.
	for i, want := range []int{0, 255} {
		var out syncBuffer
		line := lines[i+1]
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir, cmd.Stdout = work, &out
		cmd.Env = append(append(os.Environ(), c.env()...), "PATH="+binDir+":"+os.Getenv("PATH"))
		var errb syncBuffer
		cmd.Stderr = &errb
		require.NoError(t, cmd.Start())
		require.Eventually(t, func() bool { return strings.Contains(out.String(), "building") }, 10*time.Second, 5*time.Millisecond, line)
		require.Positive(t, p.ResetOpen())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%s: did not finish", line)
		}
		assert.Equal(t, want, cmd.ProcessState.ExitCode(), "%s: %s", line, errb.String())
		if want == 0 {
			assert.Equal(t, "building\nbuilt\n", out.String(), line)
			assert.Contains(t, errb.String(), "reconnected;")
		} else {
			assert.Equal(t, "building\n", out.String(), line)
			assert.Contains(t, errb.String(), "connection lost")
		}
	}
}

// -q: no note of rexec's own on stderr, neither the pin nor the lost and
// resumed connection: stderr is the command's alone, byte for byte.
func TestE2EResumeQuiet(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	p := execdtest.StartProxy(t, d.addr)
	c := newClient(t)
	cmd := c.command("-q", p.Addr, "sh", "-c", "printf 'a, no newline' >&2; sleep 1; echo b >&2; echo out")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	require.Eventually(t, func() bool { return errb.String() == "a, no newline" }, 10*time.Second, 5*time.Millisecond, errb.String())
	require.Equal(t, 1, p.ResetOpen())
	require.Equal(t, 0, waitExit(t, cmd, 30*time.Second, "rexec did not finish"))
	assert.Equal(t, "a, no newlineb\n", errb.String())
	assert.Equal(t, "out\n", out.String())
}

// A password typed once is not asked for again when the connection is
// lost and rexec reconnects (SSH_ASKPASS counts the questions).
func TestE2EReconnectAsksNoPasswordAgain(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	d := startDaemon(t, state)
	add := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "user", "add", "pat", "--password-stdin", "--run-as", selfName(t))
	add.Stdin = strings.NewReader("pat's secret\n")
	out, err := add.CombinedOutput()
	require.NoError(t, err, string(out))
	p := execdtest.StartProxy(t, d.addr)
	c := newClient(t)
	dir := t.TempDir()
	asked := filepath.Join(dir, "asked")
	askpass := filepath.Join(dir, "askpass")
	require.NoError(t, os.WriteFile(askpass, []byte("#!/bin/sh\necho x >> "+asked+"\necho \"pat's secret\"\n"), 0o755))
	cmd := c.command("-l", "pat", p.Addr, "sh", "-c", "echo one; sleep 1; echo two")
	cmd.Env = append(cmd.Env, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	require.Eventually(t, func() bool { return stdout.String() == "one\n" }, 10*time.Second, 5*time.Millisecond, stderr.String())
	require.Equal(t, 1, p.ResetOpen())
	require.Equal(t, 0, waitExit(t, cmd, 30*time.Second, "rexec did not finish"), stderr.String())
	assert.Equal(t, "one\ntwo\n", stdout.String())
	assert.Contains(t, stderr.String(), "reconnected")
	b, err := os.ReadFile(asked)
	require.NoError(t, err)
	assert.Equal(t, "x\n", string(b), "asked once")
}

// A network that dies in silence (no reset, no FIN: a proxy that stops
// forwarding) is noticed by rexec's keepalive, not after TCP's minutes:
// rexec reconnects, and here, with nothing to reconnect to, gives up
// after --reconnect-for with one line.
func TestE2ESilentNetworkNoticed(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	p := execdtest.StartProxy(t, d.addr)
	c := newClient(t)
	require.Equal(t, 0, c.run("", p.Addr, "true").code) // pins it
	cmd := c.command("--keepalive", "200ms", "--reconnect-for", "1s", p.Addr, "sh", "-c", "echo started; sleep 60")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	require.Eventually(t, func() bool { return out.String() == "started\n" }, 10*time.Second, 5*time.Millisecond)
	p.Stall()
	start := time.Now()
	code := waitExit(t, cmd, 30*time.Second, "rexec hangs on a silent network")
	assert.Less(t, time.Since(start), 15*time.Second)
	assert.Equal(t, 255, code)
	assert.Contains(t, errb.String(), "stopped answering keepalives")
}
