//go:build unix

package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
)

// writeRotatingLog writes n numbered lines to path, rotating it every
// 1000 lines, by rename and create and by copytruncate in turn, pausing
// after each rotation (logs rotate far less often than the daemon looks).
func writeRotatingLog(t *testing.T, path string, n int, done chan<- struct{}) {
	defer close(done)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer func() { _ = f.Close() }()
	for i := 1; i <= n; i++ {
		if _, err := fmt.Fprintf(f, "line %06d %s\n", i, strings.Repeat("y", i%40)); err != nil {
			t.Error(err)
			return
		}
		switch {
		case i%2000 == 1000: // rename and create
			_ = os.Rename(path, fmt.Sprintf("%s.%d", path, i))
			_ = f.Close()
			if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(300 * time.Millisecond)
		case i%2000 == 0: // copytruncate
			b, _ := os.ReadFile(path)
			_ = os.WriteFile(fmt.Sprintf("%s.%d", path, i), b, 0o644)
			_ = f.Truncate(0)
			time.Sleep(300 * time.Millisecond)
		case i%5 == 0: // 1000 lines in about 400 ms: several of the daemon's looks
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// Issue 17 item 2: rexec tail -F through a proxy that resets the
// connection over 20 times while the log is written and rotated both
// ways: every line exactly once, in order; Ctrl-C ends it with 130.
func TestE2ETailFollowsThroughCutsAndRotations(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--dir", home)
	c := newClient(t)
	require.Equal(t, 0, c.run("", d.addr, "true").code)
	p := execdtest.StartProxy(t, d.addr)
	log := filepath.Join(home, "app.log")
	require.NoError(t, os.WriteFile(log, nil, 0o644))

	const n = 8000
	writerDone := make(chan struct{})
	go writeRotatingLog(t, log, n, writerDone)
	defer func() { <-writerDone }() // it reports through t: never after the test
	cmd := c.command("tail", "-F", "-n", "+1", "--reconnect-for", "30s", p.Addr+":app.log")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { _ = cmd.Process.Kill(); <-exited }()

	// A reset every 150 ms while the log is written: over 20 in all.
	cuts := 0
	last := fmt.Sprintf("line %06d ", n)
	deadline := time.After(90 * time.Second)
	for !strings.Contains(out.String(), last) {
		select {
		case <-deadline:
			o := out.String()
			t.Fatalf("the last line did not arrive; %d cuts; the output ends with %q; stderr: %s", cuts, o[max(0, len(o)-200):], errb.String())
		case <-exited:
			t.Fatalf("rexec tail ended: %s", errb.String())
		case <-time.After(150 * time.Millisecond):
		}
		select {
		case <-writerDone:
		default:
			cuts += p.ResetOpen()
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("rexec tail did not end on SIGINT")
	}
	assert.Equal(t, 130, cmd.ProcessState.ExitCode())
	assert.GreaterOrEqual(t, cuts, 20)
	assert.GreaterOrEqual(t, strings.Count(errb.String(), "connection lost at offset"), 20, errb.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf("line %06d ", i+1)) {
			t.Fatalf("line %d is %q (before it: %q); %d lines in all", i+1, l, lines[max(0, i-1)], len(lines))
		}
	}
	assert.Len(t, lines, n, "every line once")
}

// -H: the same file on two daemons, filtered by the daemons (--grep),
// as JSON objects naming their host; and a missing file is a one-line
// failure with status 1.
func TestE2ETailManyHostsGrepJSON(t *testing.T) {
	t.Parallel()
	homes := []string{t.TempDir(), t.TempDir()}
	var hosts []string
	for i, home := range homes {
		d := startDaemon(t, t.TempDir(), "--dir", home)
		hosts = append(hosts, d.addr)
		var b strings.Builder
		for j := 1; j <= 100; j++ {
			level := "INFO"
			if j%10 == 0 {
				level = "ERROR"
			}
			fmt.Fprintf(&b, "%s host%d event %d\n", level, i, j)
		}
		require.NoError(t, os.WriteFile(filepath.Join(home, "app.log"), []byte(b.String()), 0o644))
	}
	c := newClient(t)
	for _, h := range hosts {
		require.Equal(t, 0, c.run("", h, "true").code)
	}
	r := c.run("", "tail", "-n", "+1", "--grep", "^ERROR", "--json", "-H", strings.Join(hosts, ","), ":app.log")
	require.Equal(t, 0, r.code, r.stderr)
	got := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var v struct{ Host, Path, Line string }
		require.NoError(t, json.Unmarshal([]byte(l), &v), l)
		assert.Equal(t, "app.log", v.Path)
		got[v.Host] = append(got[v.Host], v.Line)
	}
	for i, h := range hosts {
		require.Len(t, got[h], 10, "%v", got)
		assert.Equal(t, fmt.Sprintf("ERROR host%d event 100", i), got[h][9])
	}

	r = c.run("", "tail", "-n", "2", "-H", strings.Join(hosts, ","), ":app.log")
	require.Equal(t, 0, r.code, r.stderr)
	for i, h := range hosts {
		assert.Contains(t, r.stdout, fmt.Sprintf("%s: INFO host%d event 99\n%s: ERROR host%d event 100\n", h, i, h, i))
	}
	r = c.run("", "tail", "-q", "-n", "1", "-H", strings.Join(hosts, ","), ":app.log")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	slices.Sort(lines)
	assert.Equal(t, []string{"ERROR host0 event 100", "ERROR host1 event 100"}, lines, "-q: whole lines, no source")
	r = c.run("", "tail", hosts[0]+":missing.log")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	assert.Contains(t, r.stderr, "missing.log")
}

// The user guide's tail examples, run as written against two daemons named
// lab1 and lab2 in the client's config.toml; the -F ones until SIGINT.
func TestE2EReadmeTail(t *testing.T) {
	t.Parallel()
	block := docBlock(t, "docs/guide.md", "## Following logs: rexec tail")
	c := newClient(t)
	var conf strings.Builder
	for _, name := range []string{"lab1", "lab2"} {
		home := t.TempDir()
		d := startDaemon(t, t.TempDir(), "--dir", home)
		require.NoError(t, os.MkdirAll(filepath.Join(home, "logs"), 0o755))
		var b strings.Builder
		for j := 1; j <= 20; j++ {
			level := map[bool]string{true: "ERROR", false: "INFO"}[j%7 == 0]
			fmt.Fprintf(&b, "%s %s %d\n", level, name, j)
		}
		require.NoError(t, os.WriteFile(filepath.Join(home, "logs", "app.log"), []byte(b.String()), 0o644))
		host, port, _ := strings.Cut(d.addr, ":")
		fmt.Fprintf(&conf, "[hosts.%s]\nhost = %q\nport = %s\n\n", name, host, port)
		require.Equal(t, 0, c.run("", d.addr, "true").code)
	}
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"), []byte(conf.String()), 0o600))
	// The aliases' identities: pinned under their addresses already.
	want := []string{
		"INFO lab1 18\nINFO lab1 19\nINFO lab1 20\n",
		"ERROR lab1 7\nERROR lab1 14\n",
		"INFO lab1 20\n",
		`{"host":"lab2","path":"logs/app.log","line":"INFO lab2 20"}`,
	}
	lines := strings.Split(strings.TrimSpace(block), "\n")
	require.Len(t, lines, len(want))
	for i, line := range lines {
		args := shellWords(t, strings.TrimPrefix(line, "rexec "))
		if !slices.Contains(args, "-F") {
			r := c.run("", args...)
			require.Equal(t, 0, r.code, "%s: %s", line, r.stderr)
			assert.Equal(t, want[i], r.stdout, line)
			continue
		}
		cmd := c.command(args...)
		var out, errb syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		require.NoError(t, cmd.Start())
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		require.Eventually(t, func() bool { return strings.Contains(out.String(), want[i]) }, 20*time.Second, 10*time.Millisecond,
			"%s: %s %s", line, out.String(), errb.String())
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("%s did not end on SIGINT", line)
		}
		assert.Equal(t, 130, cmd.ProcessState.ExitCode(), line)
	}
}

// shellWords splits a README command line as sh would, for the quoting
// the examples use (single quotes).
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range line {
		switch {
		case r == '\'':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	require.False(t, quoted, "unbalanced quote in %q", line)
	if in {
		words = append(words, cur.String())
	}
	return words
}

// rexec tail --since TIME starts at the first line stamped at or after
// it; a duration is before now; a file without stamps is refused in one
// line.
func TestE2ETailSinceTime(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	now := time.Now()
	var log strings.Builder
	for i := 10; i >= 1; i-- { // one line every ten minutes, up to now
		fmt.Fprintf(&log, "%s line %d\n", now.Add(-time.Duration(i)*10*time.Minute).UTC().Format(time.RFC3339), i)
		if i == 3 {
			log.WriteString("  a continuation of line 3\n")
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(home, "app.log"), []byte(log.String()), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(home, "plain.log"), []byte("no time\n"), 0o600))
	d := startDaemon(t, t.TempDir(), "--dir", home)
	c := newClient(t)
	c.run("", d.addr, "true") // pins it

	r := c.run("", "tail", "--since", "35m", d.addr+":app.log")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `^\S+ line 3\n  a continuation of line 3\n\S+ line 2\n\S+ line 1\n$`, r.stdout)
	at := now.Add(-95 * time.Minute).UTC().Format(time.RFC3339)
	r = c.run("", "tail", "--since", at, d.addr+":app.log")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 9, strings.Count(r.stdout, "Z line "), r.stdout)
	r = c.run("", "tail", "--since", "2000-01-01", d.addr+":app.log")
	assert.Equal(t, log.String(), r.stdout)
	r = c.run("", "tail", "--since", "12", d.addr+":app.log")
	assert.Equal(t, log.String()[12:], r.stdout, "digits alone are a byte offset")

	r = c.run("", "tail", "--since", "10m", d.addr+":plain.log")
	assert.Equal(t, 1, r.code)
	assert.Regexp(t, `^rexec: .*no line of this file starts with a time`, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"))
	r = c.run("", "tail", "--since", "yesterday", d.addr+":app.log")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "neither a byte offset")
}

// Issue 27 item 4: rexec tail -F of 100 files of one host follows every
// one, with and without connection sharing, and on a daemon that keeps
// fewer channels per connection than there are files (the files spread
// over connections); a file that cannot be followed is named at once,
// and the run ends non-zero.
func TestE2ETailManyFiles(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	const n = 100
	args := []string{"tail", "-F", "-q", "-n", "+1"}
	for _, tc := range []struct {
		name   string
		daemon []string
		share  bool
	}{
		{"direct", nil, false},
		{"through a master", nil, true},
		{"16 channels per connection", []string{"--max-channels", "16"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startDaemon(t, t.TempDir(), append([]string{"--dir", home}, tc.daemon...)...)
			dir := t.TempDir()
			files := slices.Clone(args)
			for i := range n {
				p := filepath.Join(dir, fmt.Sprintf("f%03d.log", i))
				require.NoError(t, os.WriteFile(p, fmt.Appendf(nil, "first %03d\n", i), 0o644))
				files = append(files, d.addr+":"+p)
			}
			files = append(files, d.addr+":"+filepath.Join(dir, "missing"))
			var cmd = newClient(t).command(files...)
			if tc.share {
				cmd = sharingClientOf(t, d, false).command(files...)
			}
			var out, errb syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			require.NoError(t, cmd.Start())
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			defer func() { _ = cmd.Process.Kill(); <-exited }()
			require.Eventually(t, func() bool { return strings.Count(out.String(), "first") == n }, 30*time.Second, 20*time.Millisecond,
				"every file's first line: %d of %d\n%s", strings.Count(out.String(), "first"), n, errb.String())
			require.Eventually(t, func() bool { return strings.Contains(errb.String(), "missing: no such file or directory (yet)") }, 20*time.Second, 20*time.Millisecond,
				"the file that cannot be followed is named at once: %s", errb.String())
			for i := range n {
				f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%03d.log", i)), os.O_WRONLY|os.O_APPEND, 0)
				require.NoError(t, err)
				_, err = fmt.Fprintf(f, "then %03d\n", i)
				require.NoError(t, err)
				require.NoError(t, f.Close())
			}
			require.Eventually(t, func() bool { return strings.Count(out.String(), "then") == n }, 30*time.Second, 20*time.Millisecond,
				"every file followed: %d of %d\n%s", strings.Count(out.String(), "then"), n, errb.String())
			require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				t.Fatal("tail did not end on Ctrl-C")
			}
			assert.Equal(t, 130, cmd.ProcessState.ExitCode())
		})
	}
}
