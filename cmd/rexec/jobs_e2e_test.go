//go:build unix

package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
)

// Issue 17: rexec --detach, jobs, attach (from where this client stopped,
// or from the start) and kill, as a user types them.
func TestE2EJobs(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	c := newClient(t)
	r := c.run("", "--detach", d.addr, "--", "sh", "-c", "echo one; sleep 1; echo two >&2; exit 3")
	require.Equal(t, 0, r.code, r.stderr)
	job := strings.TrimSpace(r.stdout)
	require.Regexp(t, `^[0-9a-f]{16}$`, job)

	r = c.run("", "jobs", d.addr)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `(?m)^ID +STATE +STARTED +EXIT +STDOUT +STDERR +COMMAND\n`+job+` +running +\S+ \S+ +- +\d+ +\d+ +sh -c 'echo one; sleep 1; echo two >&2; exit 3'$`, r.stdout)

	r = c.run("", "jobs", "-q", d.addr)
	assert.Equal(t, result{job + "\n", "", 0}, r, "-q: the ids alone")
	r = c.run("", "kill", d.addr, "")
	assert.Equal(t, 2, r.code, "an empty job id kills nothing and says so")
	assert.Contains(t, r.stderr, "empty job id")

	r = c.run("", "attach", d.addr, job)
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Equal(t, "one\n", r.stdout)
	assert.Equal(t, "two\n", r.stderr)
	r = c.run("", "attach", d.addr, job)
	assert.Equal(t, 3, r.code, "from where this client stopped: nothing more")
	assert.Empty(t, r.stdout)
	assert.Empty(t, r.stderr)
	r = c.run("", "attach", "--from-start", d.addr, job)
	assert.Equal(t, 3, r.code)
	assert.Equal(t, "one\n", r.stdout)
	// Any byte offset: stdout from the second byte, stderr from its start.
	r = c.run("", "attach", "--offset", "1", d.addr, job)
	assert.Equal(t, result{"ne\n", "two\n", 3}, r)
	r = c.run("", "attach", "--stderr-offset", "3", d.addr, job)
	assert.Equal(t, result{"one\n", "\n", 3}, r)
	r = c.run("", "attach", "--offset", "99", d.addr, job)
	assert.Equal(t, 255, r.code)
	assert.Regexp(t, `^rexec: .*stdout offset 99 outside what is kept, \[0, 4\]\n$`, r.stderr)

	r = c.run("", "jobs", "--json", d.addr)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"id":"`+job+`"`)
	assert.Contains(t, r.stdout, `"state":"exited"`)
	assert.Contains(t, r.stdout, `"code":3`)

	require.Equal(t, 0, c.run("", "kill", d.addr, job).code, "removes the exited job")
	r = c.run("", "jobs", d.addr)
	assert.NotContains(t, r.stdout, job)

	r = c.run("", "--detach", "-s", d.addr, "sleep 600")
	require.Equal(t, 0, r.code, r.stderr)
	job = strings.TrimSpace(r.stdout)
	require.Equal(t, 0, c.run("", "kill", d.addr, job, "KILL").code)
	r = c.run("", "attach", d.addr, job)
	assert.Equal(t, 137, r.code, r.stderr)
	r = c.run("", "kill", d.addr, "0123456789abcdef")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "no job 0123456789abcdef")
	r = c.run("", "--detach", d.addr, "--", "no-such-command-here")
	assert.Equal(t, 127, r.code, r.stderr)
}

// Issue 17: the user guide's jobs lines, run by sh as written against a
// daemon named lab1.
func TestE2EReadmeJobs(t *testing.T) {
	t.Parallel()
	block := docBlock(t, "docs/guide.md", "### Jobs: commands apart from any connection")
	home := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(home, "build.sh"), []byte("#!/bin/sh\necho building\nsleep 0.5\necho built\n"), 0o755))
	d := startDaemon(t, t.TempDir(), "--dir", home)
	c := newClient(t)
	host, port, _ := strings.Cut(d.addr, ":")
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"), fmt.Appendf(nil, "[hosts.lab1]\nhost = %q\nport = %s\n", host, port), 0o600))
	require.Equal(t, 0, c.run("", "lab1", "true").code) // pins it
	cmd := exec.Command("sh", "-e", "-c", block)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(os.Environ(), c.env()...), "PATH="+binDir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, `(?m)^ID +STATE .*\n[0-9a-f]{16} +running .* \./build\.sh\nbuilding\nbuilt\n$`, string(out))
	r := c.run("", "jobs", "lab1")
	assert.Equal(t, "ID  STATE  STARTED  EXIT  STDOUT  STDERR  COMMAND\n", r.stdout, "the kill removed the exited job")
}

// Ctrl-C in rexec attach stops watching (130) and leaves the job running.
func TestE2EAttachInterrupt(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	c := newClient(t)
	r := c.run("", "--detach", d.addr, "--", "sh", "-c", "echo started; exec sleep 600")
	require.Equal(t, 0, r.code, r.stderr)
	job := strings.TrimSpace(r.stdout)
	cmd := c.command("attach", d.addr, job)
	var out syncBuffer
	cmd.Stdout = &out
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return out.String() == "started\n" }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("rexec attach did not end on SIGINT")
	}
	assert.Equal(t, 130, cmd.ProcessState.ExitCode())
	r = c.run("", "jobs", d.addr)
	assert.Regexp(t, job+` +running `, r.stdout)
	require.Equal(t, 0, c.run("", "kill", d.addr, job).code)
}

// Issue 17: jobs survive a restart of the daemon as records, here one
// killed with -9: the job that finished is listed with its status and its
// output; the one that was running is listed as ended with the daemon
// (its process ended with it), with the output it wrote until then.
func TestE2EJobsAcrossDaemonRestart(t *testing.T) {
	t.Parallel()
	state, home := t.TempDir(), t.TempDir()
	d := startDaemon(t, state, "--dir", home)
	c := newClient(t)
	r := c.run("", "--detach", d.addr, "--", "sh", "-c", "seq 1 50000; echo warned >&2; exit 4")
	require.Equal(t, 0, r.code, r.stderr)
	finished := strings.TrimSpace(r.stdout)
	r = c.run("", "--detach", d.addr, "--", "sh", "-c", "echo started $$; exec sleep 600")
	require.Equal(t, 0, r.code, r.stderr)
	running := strings.TrimSpace(r.stdout)
	var pid int
	require.Eventually(t, func() bool {
		r := c.run("", "jobs", "--json", d.addr)
		type info struct {
			ID, State string
			PID       int
			Stdout    int64
		}
		var f, s info
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var j info
			if json.Unmarshal([]byte(line), &j) != nil {
				continue
			}
			switch j.ID {
			case finished:
				f = j
			case running:
				s = j
			}
		}
		pid = s.PID
		return f.State == "exited" && s.Stdout > 0
	}, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.exited
	if strings.Contains(d.log.String(), "cgroup per command under") {
		assert.Eventually(t, func() bool { return !execdtest.ProcessAlive(pid) }, 5*time.Second, 10*time.Millisecond,
			"the job's process outlived its daemon")
	}
	d2 := startDaemonAt(t, d.addr, state)
	_ = d2
	r = c.run("", "jobs", d.addr)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, finished+` +exited +\S+ \S+ +4 +288894 +7 +sh -c 'seq 1 50000; echo warned >&2; exit 4'`, r.stdout)
	assert.Regexp(t, running+` +exited +\S+ \S+ +SIGKILL +\d+ +0 +sh -c 'echo started \$\$; exec sleep 600'`, r.stdout)

	r = c.run("", "attach", "--from-start", d.addr, finished)
	assert.Equal(t, 4, r.code)
	assert.Equal(t, 288894, len(r.stdout))
	assert.True(t, strings.HasSuffix(r.stdout, "\n49999\n50000\n"))
	assert.Equal(t, "warned\n", r.stderr)
	r = c.run("", "attach", "--from-start", d.addr, running)
	assert.Equal(t, 137, r.code)
	assert.Equal(t, fmt.Sprintf("started %d\n", pid), r.stdout)
	assert.Contains(t, r.stderr, "the daemon ended while it ran")

	r = c.run("", "kill", d.addr, finished)
	require.Equal(t, 0, r.code, r.stderr)
	dirs, err := filepath.Glob(filepath.Join(state, "jobs", "*", "*"))
	require.NoError(t, err)
	require.Len(t, dirs, 1, "the removed job's files are gone, the other's kept")
	assert.Equal(t, running, filepath.Base(dirs[0]))
}

// rexec jobs -H asks many hosts at once: their jobs in the order of -H,
// with a HOST column; a host that cannot be reached is named, and the
// status is 255.
func TestE2EJobsFanout(t *testing.T) {
	t.Parallel()
	d1 := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	d2 := startDaemon(t, t.TempDir(), "--dir", t.TempDir())
	c := newClient(t)
	ids := map[string]string{}
	for _, d := range []*daemon{d1, d2} {
		r := c.run("", "--detach", d.addr, "--", "echo", "on "+d.addr)
		require.Equal(t, 0, r.code, r.stderr)
		ids[d.addr] = strings.TrimSpace(r.stdout)
	}
	dead := freeAddr(t)
	hosts := d2.addr + "," + dead + "," + d1.addr
	r := c.run("", "jobs", "-H", hosts)
	assert.Equal(t, 255, r.code)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3, r.stdout)
	assert.Regexp(t, `^HOST +ID +STATE`, lines[0])
	assert.Regexp(t, `^`+regexp.QuoteMeta(d2.addr)+` +`+ids[d2.addr]+` +\S+ `, lines[1])
	assert.Regexp(t, `^`+regexp.QuoteMeta(d1.addr)+` +`+ids[d1.addr]+` +\S+ `, lines[2])
	assert.Contains(t, r.stderr, dead)

	r = c.run("", "jobs", "--json", "-H", d1.addr+","+d2.addr)
	assert.Equal(t, 0, r.code, r.stderr)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var j struct{ Host, ID string }
		require.NoError(t, json.Unmarshal([]byte(line), &j))
		got = append(got, j.Host+" "+j.ID)
	}
	assert.Equal(t, []string{d1.addr + " " + ids[d1.addr], d2.addr + " " + ids[d2.addr]}, got)

	r = c.run("", "jobs", "-H", d1.addr, d2.addr)
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "not both")
}

// Issue 27 item 5: with the user's jobs filling --job-disk, a detach is
// refused with the reason; a job that met the full budget before its
// first byte ends with its command, and attach says its output was not
// kept though it exited 0.
func TestE2EJobsDiskFull(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "--dir", t.TempDir(), "--job-disk", "1MiB")
	c := newClient(t)
	flags := t.TempDir()
	when := func(name string) string {
		return fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; ", filepath.Join(flags, name))
	}
	detach := func(cmdline string) string {
		r := c.run("", "--detach", "-s", d.addr, cmdline)
		require.Equal(t, 0, r.code, r.stderr)
		return strings.TrimSpace(r.stdout)
	}
	fill := detach(when("fill") + "head -c 1048576 /dev/zero")
	late := detach(when("write") + "echo hi")
	require.NoError(t, os.WriteFile(filepath.Join(flags, "fill"), nil, 0o600))
	exited := func(job string) func() bool {
		return func() bool {
			r := c.run("", "jobs", "--json", d.addr)
			return regexp.MustCompile(`"id":"` + job + `"[^\n]*"state":"exited"`).MatchString(r.stdout)
		}
	}
	require.Eventually(t, exited(fill), 20*time.Second, 50*time.Millisecond)
	require.NoError(t, os.WriteFile(filepath.Join(flags, "write"), nil, 0o600))
	require.Eventually(t, exited(late), 20*time.Second, 50*time.Millisecond)

	r := c.run("", "attach", d.addr, late)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "rexec: note: the user's jobs reached their bound of 1048576 bytes on disk; the rest of its output was not kept")

	r = c.run("", "--detach", d.addr, "echo", "lost")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "your detached jobs keep 1048576 bytes on disk, their bound of 1048576 (--job-disk)")
	require.Equal(t, 0, c.run("", "kill", d.addr, fill).code)
	r = c.run("", "--detach", d.addr, "echo", "kept")
	assert.Equal(t, 0, r.code, "room again once a job is removed: %s", r.stderr)
}
