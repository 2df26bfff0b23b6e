package main_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestE2EGetPut(t *testing.T) {
	served := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--dir", served)
	c := newClient(t)
	_, port, err := net.SplitHostPort(d.addr)
	require.NoError(t, err)
	host := "127.0.0.1"
	local := t.TempDir()
	names := []string{"my notes.md", "中文 报告.txt", "-dash", `it's "quoted"`}
	for i, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(local, n), bytes.Repeat([]byte{byte(i)}, 1000+i), 0o600))
	}
	args := []string{"put", "-q", "-p", port, "--"}
	for _, n := range names {
		args = append(args, filepath.Join(local, n))
	}
	r := c.run("", append(args, host+":")...)
	require.Equal(t, 0, r.code, "%+v", r)
	for _, n := range names {
		want, _ := os.ReadFile(filepath.Join(local, n))
		got, err := os.ReadFile(filepath.Join(served, n))
		require.NoError(t, err, n)
		assert.Equal(t, want, got, n)
	}

	// get into the current directory by default, several sources at once
	dl := t.TempDir()
	cmd := c.command("get", "-P", port, host+":my notes.md", host+":中文 报告.txt")
	cmd.Dir = dl
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = c.command("get", "-p", port, host+":my notes.md", dl).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, string(out), "no progress bars without a terminal")
	for _, n := range names[:2] {
		got, err := os.ReadFile(filepath.Join(dl, n))
		require.NoError(t, err)
		want, _ := os.ReadFile(filepath.Join(local, n))
		assert.Equal(t, want, got)
	}

	// failures: one line each, exit status 1, the others still copied
	r = c.run("", "get", "-p", port, host+":missing.txt", host+":-dash", host+":../escape", dl)
	assert.Equal(t, 1, r.code)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.Len(t, lines, 2, "%q", r.stderr)
	assert.Contains(t, lines[0], "missing.txt: no such file or directory")
	assert.Contains(t, lines[1], "escape: no such file or directory", "the owner's ../ is the parent, as their account sees it")
	_, err = os.Stat(filepath.Join(dl, "-dash"))
	assert.NoError(t, err)

	// recursive, both ways
	tree := filepath.Join(local, "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "a", "empty"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "a", "f.txt"), []byte("f"), 0o644))
	r = c.run("", "put", "-p", port, tree, host+":")
	assert.Equal(t, 1, r.code, "a directory without -r")
	assert.Contains(t, r.stderr, "is a directory (use -r)")
	r = c.run("", "put", "-p", port, "-r", tree, host+":")
	require.Equal(t, 0, r.code, "%+v", r)
	r = c.run("", "get", "-p", port, "-r", host+":tree", filepath.Join(dl, "copy"))
	require.Equal(t, 0, r.code, "%+v", r)
	b, err := os.ReadFile(filepath.Join(dl, "copy", "a", "f.txt"))
	require.NoError(t, err)
	assert.Equal(t, "f", string(b))
	fi, err := os.Stat(filepath.Join(dl, "copy", "a", "empty"))
	require.NoError(t, err)
	assert.True(t, fi.IsDir())

	// usage and connection errors
	r = c.run("", "get", "no-colon")
	assert.Equal(t, 2, r.code)
	r = c.run("", "put", "x", "y")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "HOST:REMOTE")
	_, deadPort, _ := net.SplitHostPort(freeAddr(t))
	r = c.run("", "get", "--connect-timeout", "2s", "-p", deadPort, host+":x", dl)
	assert.Equal(t, 255, r.code)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "%q", r.stderr)
}

// TestE2EFileShell drives `rexec files` through a pty as a person would:
// typing commands, editing nothing fancy, recalling one from history.
func TestE2EFileShell(t *testing.T) {
	served := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--dir", served)
	c := newClient(t)
	require.Equal(t, 0, c.run("", d.addr, "true").code) // pin first
	local := t.TempDir()
	data := bytes.Repeat([]byte("report line\n"), 5000)
	require.NoError(t, os.WriteFile(filepath.Join(local, "report.txt"), data, 0o644))

	cmd := c.command("files", d.addr)
	cmd.Dir = local
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	require.NoError(t, err)
	defer func() { _ = tty.Close() }()
	var seen bytes.Buffer
	// A reader of its own: a read on the pty may not honour a deadline,
	// and a wait must end at its bound whatever the shell prints.
	chunks := make(chan []byte, 64)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 4096)
			n, err := tty.Read(buf)
			if n > 0 {
				chunks <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	mark := 0 // output before this was answered by earlier commands
	waitFor := func(s string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !strings.Contains(seen.String()[mark:], s) {
			select {
			case b, ok := <-chunks:
				require.True(t, ok, "the shell ended while waiting for %q in %q", s, seen.String())
				seen.Write(b)
			case <-deadline:
				require.Fail(t, "timed out", "waiting for %q in %q", s, seen.String())
			}
		}
	}
	say := func(line string, expect ...string) {
		t.Helper()
		mark = seen.Len()
		_, err := tty.Write([]byte(line + "\r"))
		require.NoError(t, err)
		for _, e := range expect {
			waitFor(e)
		}
	}
	since := func() string { return seen.String()[mark:] }

	waitFor("Type help for commands.")
	waitFor(":~> ")
	say("pwd", "~\r\n")
	say(`mkdir "new dir"`, ":~> ")
	say(`cd new\ dir`, ":~/new dir> ")
	say("put report.txt", "1 file(s) verified (BLAKE3)", ":~/new dir> ")
	got, err := os.ReadFile(filepath.Join(served, "new dir", "report.txt"))
	require.NoError(t, err)
	assert.Equal(t, data, got)
	say("ls", "report.txt", ":~/new dir> ")
	assert.Contains(t, since(), fmt.Sprint(len(data)), "ls shows sizes")
	say("sum report.txt", fmt.Sprintf("%x  report.txt", sha256.Sum256(data)))
	say("cd ..", ":~> ")
	say("cd -", ":~/new dir> ")
	say("cd ../..", ":"+filepath.Dir(served)+"> ") // the owner's account sees the whole machine
	say("cd -", ":~/new dir> ")
	say("get report.txt copy.txt", "verified", ":~/new dir> ")
	got, err = os.ReadFile(filepath.Join(local, "copy.txt"))
	require.NoError(t, err)
	assert.Equal(t, data, got)
	say("lls", "copy.txt")
	say("!pwd", filepath.Join(served, "new dir"))
	say("mv report.txt renamed.txt", ":~/new dir> ")
	say("ls", "renamed.txt")
	t.Logf("shell so far: %q", seen.String())
	say("\x1b[A\x1b[A", "renamed.txt") // up twice: mv again, which now fails
	waitFor("error: ")
	say("rm renamed.txt", ":~/new dir> ")
	say("frobnicate", "unknown command")
	say("help", "verified by hash")
	say("exit")
	require.NoError(t, cmd.Wait())
	entries, err := os.ReadDir(filepath.Join(served, "new dir"))
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestE2EFileShellBatch(t *testing.T) {
	served := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--dir", served)
	c := newClient(t)
	r := c.run("mkdir -p a/b\ncd a/b\npwd\nls\n", "files", d.addr)
	assert.Equal(t, 0, r.code, "%+v", r)
	assert.Contains(t, r.stdout, "~/a/b\n")
	r = c.run("cd nowhere\npwd\n", "files", d.addr)
	assert.Equal(t, 1, r.code, "a failed command fails the batch")
	assert.Contains(t, r.stdout, "error: "+filepath.Join(served, "nowhere")+": no such file or directory")
	assert.Contains(t, r.stdout, "~\n")
	_, err := exec.LookPath("true")
	require.NoError(t, err)
}
