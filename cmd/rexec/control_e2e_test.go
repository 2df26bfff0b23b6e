//go:build unix

package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
)

// sharingClient is a client whose rexec shares connections (the tests'
// default is REXEC_CONTROL=no), with a runtime directory of its own, and
// a daemon behind a proxy that counts the connections made to it.
type sharingClient struct {
	*client
	run   string // XDG_RUNTIME_DIR
	host  string // the proxy's address
	proxy *execdtest.Proxy
}

func newSharingClient(t *testing.T) *sharingClient {
	return sharingClientOf(t, startDaemon(t, t.TempDir()), true)
}

// sharingClientOf is a sharing client of d, through a proxy when proxied.
func sharingClientOf(t *testing.T, d *daemon, proxied bool) *sharingClient {
	run, err := os.MkdirTemp("", "rt") // short: the socket's path has a limit
	require.NoError(t, err)
	c := &sharingClient{client: newClient(t), run: run, host: d.addr}
	if proxied {
		c.proxy = execdtest.StartProxy(t, d.addr)
		c.host = c.proxy.Addr
	}
	t.Cleanup(func() {
		// Masters end with their daemon's connection; those still
		// there are ended by their pid.
		killMasters(run)
		_ = os.RemoveAll(run)
	})
	return c
}

func (c *sharingClient) command(args ...string) *exec.Cmd {
	cmd := c.client.command(args...)
	cmd.Env = append(cmd.Env, "REXEC_CONTROL=auto", "XDG_RUNTIME_DIR="+c.run)
	return cmd
}

func (c *sharingClient) runIn(stdin string, args ...string) result {
	c.t.Helper()
	cmd := c.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(c.t, runBounded(cmd, time.Minute))
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

// runBounded runs cmd, killing it after d; an exit status is not an error.
func runBounded(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(d, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if _, ok := err.(*exec.ExitError); ok && cmd.ProcessState.ExitCode() >= 0 {
		return nil
	}
	return err
}

// waitExit waits up to d for a started cmd and returns its exit status;
// past d the test fails with what, the process killed by its pid.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration, what string) int {
	t.Helper()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal(what)
		return -1
	}
}

var masterPid = regexp.MustCompile(`running \(pid (\d+)\)`)

// master returns the pid of the host's master, or 0.
func (c *sharingClient) master() int {
	r := c.runIn("", "--control", "check", c.host)
	m := masterPid.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// masters lists the control masters running with this client's runtime
// directory (from /proc: those that lost a race or were replaced too).
func (c *sharingClient) masters() []int { return mastersIn(c.run) }

// sharingHere: rexec shares connections on this system.
const sharingHere = true

// killMasters ends the control masters of a runtime directory, by pid.
func killMasters(run string) {
	for _, pid := range mastersIn(run) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// mastersIn lists the control masters running with the runtime
// directory run.
func mastersIn(run string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.HasSuffix(cmdline, []byte("\x00master\x00")) && bytes.Contains(environ, []byte("XDG_RUNTIME_DIR="+run)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func alive(pid int) bool { return execdtest.ProcessAlive(pid) }

func TestE2EControlShares(t *testing.T) {
	c := newSharingClient(t)
	r := c.runIn("", c.host, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	assert.Equal(t, 3, r.code)
	assert.Equal(t, "out\n", r.stdout)
	assert.Contains(t, r.stderr, "pinned new host "+c.host, "the master's note reaches the user")
	pid := c.master()
	require.NotZero(t, pid, "no master after the first rexec")

	// Everything works through it: stdin, exit status, files.
	r = c.runIn("b\na\n", c.host, "sort")
	assert.Equal(t, result{"a\nb\n", "", 0}, r)
	local := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(local, bytes.Repeat([]byte("x"), 1<<20), 0o600))
	require.Equal(t, 0, c.runIn("", "put", local, c.host+":f").code)
	require.Equal(t, 0, c.runIn("", "get", c.host+":f", filepath.Join(t.TempDir(), "back")).code)
	for i := range 10 {
		r = c.runIn("", c.host, "echo", strconv.Itoa(i))
		require.Equal(t, result{fmt.Sprintf("%d\n", i), "", 0}, r)
	}
	assert.Equal(t, pid, c.master(), "one master for all")
	assert.Equal(t, 1, c.proxy.ResetOpen(), "one connection to the daemon for 15 invocations")

	// The reset ended the master with its connection; the next rexec
	// starts another.
	require.Eventually(t, func() bool { return !alive(pid) }, 10*time.Second, 10*time.Millisecond)
	r = c.runIn("", c.host, "echo", "again")
	require.Equal(t, result{"again\n", "", 0}, r)
	next := c.master()
	require.NotZero(t, next)
	assert.NotEqual(t, pid, next)

	// --control exit: the master leaves; the next rexec starts another.
	r = c.runIn("", "--control", "exit", c.host)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, fmt.Sprintf("(pid %d)", next))
	require.Eventually(t, func() bool { return !alive(next) }, 10*time.Second, 10*time.Millisecond)
	r = c.runIn("", "--control", "check", c.host)
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "no control master for")
	require.Equal(t, 0, c.runIn("", c.host, "true").code)

	// --control no connects directly.
	before := c.master()
	r = c.runIn("", "-v", "--control", "no", c.host, "echo", "direct")
	require.Equal(t, "direct\n", r.stdout)
	assert.NotContains(t, r.stderr, "control master")
	assert.Equal(t, before, c.master())
}

// A master is a background process: it never holds its starter's stdout
// or stderr, so that $(rexec ...) and a pipe end when rexec does.
func TestE2EControlMasterHoldsNoPipe(t *testing.T) {
	c := newSharingClient(t)
	cmd := c.command(c.host, "echo", "hi")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.Output() // waits for the pipe's end, not the process's
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("rexec's stdout stayed open after it exited: the master holds it")
	}
	require.NoError(t, err, errb.String())
	assert.Equal(t, "hi\n", string(out))
	require.NotZero(t, c.master())
}

// A master killed with -9 leaves its socket behind; one stopped (SIGSTOP)
// accepts and never answers. Either way the next rexec replaces it within
// its connect timeout, and a script sees no failure.
func TestE2EControlDeadOrHungMaster(t *testing.T) {
	c := newSharingClient(t)
	require.Equal(t, 0, c.runIn("", c.host, "true").code)
	pid := c.master()
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return !alive(pid) }, 10*time.Second, 10*time.Millisecond)
	socks, _ := filepath.Glob(filepath.Join(c.run, "rexec", "c-*[0-9a-f]"))
	require.Len(t, socks, 1, "a killed master leaves its socket")
	r := c.runIn("", c.host, "echo", "after a kill")
	require.Equal(t, result{"after a kill\n", "", 0}, r)
	second := c.master()
	require.NotZero(t, second)

	require.NoError(t, syscall.Kill(second, syscall.SIGSTOP))
	start := time.Now()
	r = c.runIn("", "--connect-timeout", "5s", c.host, "echo", "after a stop")
	require.Equal(t, result{"after a stop\n", "", 0}, r)
	assert.Less(t, time.Since(start), 5*time.Second, "longer than the connect timeout")
	third := c.master()
	require.NotZero(t, third)
	assert.NotEqual(t, second, third)
	// The stopped master, woken, finds its path taken and leaves.
	require.NoError(t, syscall.Kill(second, syscall.SIGCONT))
	require.Eventually(t, func() bool { return !alive(second) }, 15*time.Second, 20*time.Millisecond,
		"a replaced master stays")
	assert.Equal(t, third, c.master(), "the replaced master took the new one's socket with it")
}

// Issue 27 item 9: a master stopped in the middle of a command is noticed
// within seconds (its client pings it every second), and the command,
// resumable, goes on through another connection: its output once, its
// exit status 0, not the daemon's keepalive failure a minute later.
func TestE2EControlMasterStoppedMidCommand(t *testing.T) {
	c := newSharingClient(t)
	require.Equal(t, 0, c.runIn("", c.host, "true").code)
	pid := c.master()
	require.NotZero(t, pid)
	flag := filepath.Join(t.TempDir(), "go")
	cmd := c.command(c.host, fmt.Sprintf("echo a; while [ ! -e %s ]; do sleep 0.02; done; echo b", flag))
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return out.String() == "a\n" }, 20*time.Second, 10*time.Millisecond)
	start := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	assert.Equal(t, 0, waitExit(t, cmd, 40*time.Second, "the command did not end after its master stopped"), errb.String())
	assert.Equal(t, "a\nb\n", out.String())
	assert.Contains(t, errb.String(), "the control master stopped answering")
	assert.Less(t, time.Since(start), 20*time.Second)
}

// Issue 27 item 9: --connect-timeout bounds the whole attempt, the
// control master's included, against a listener that never answers.
func TestE2EConnectTimeoutIsOneBudget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close() // never accepted: the kernel completes the TCP handshake, nobody answers
	c := newSharingClient(t)
	for _, shared := range []bool{true, false} {
		cmd := c.command("--connect-timeout", "2s", ln.Addr().String(), "true")
		if !shared {
			cmd = c.client.command("--connect-timeout", "2s", ln.Addr().String(), "true")
		}
		var errb strings.Builder
		cmd.Stderr = &errb
		start := time.Now()
		require.NoError(t, runBounded(cmd, time.Minute))
		took := time.Since(start)
		assert.Equal(t, 255, cmd.ProcessState.ExitCode())
		assert.Less(t, took, 4*time.Second, "shared %v: the master's attempt and a direct one in turn", shared)
		assert.GreaterOrEqual(t, took, 2*time.Second)
		assert.Contains(t, errb.String(), "within the connect timeout", errb.String())
		assert.NotContains(t, errb.String(), "context deadline exceeded (context deadline exceeded)")
	}
}

// Many rexec at once with no master: every one succeeds, and one master
// is left.
func TestE2EControlRace(t *testing.T) {
	c := newSharingClient(t)
	var wg sync.WaitGroup
	results := make([]result, 8)
	for i := range results {
		wg.Go(func() { results[i] = c.runIn("", c.host, "echo", strconv.Itoa(i)) })
	}
	wg.Wait()
	for i, r := range results {
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, fmt.Sprintf("%d\n", i), r.stdout)
	}
	require.Eventually(t, func() bool { return len(c.masters()) == 1 }, 10*time.Second, 20*time.Millisecond,
		"masters: %v", c.masters())
	assert.Equal(t, []int{c.master()}, c.masters())
}

// A script's master killed in the middle: the commands between kills
// never fail, and one in flight reconnects and resumes, its output whole.
func TestE2EControlMasterKilledMidScript(t *testing.T) {
	c := newSharingClient(t)
	require.Equal(t, 0, c.runIn("", c.host, "true").code) // pins the host
	for i := range 60 {
		if i%20 == 10 {
			if pid := c.master(); pid != 0 {
				require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
			}
		}
		r := c.runIn("", c.host, "echo", strconv.Itoa(i))
		require.Equal(t, result{fmt.Sprintf("%d\n", i), "", 0}, r, "command %d", i)
	}

	cmd := c.command(c.host, "--", "sh", "-c", "for i in $(seq 1 300); do echo $i; sleep 0.005; done; exit 6")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "\n50\n") }, 20*time.Second, 5*time.Millisecond)
	pid := c.master()
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	assert.Equal(t, 6, waitExit(t, cmd, time.Minute, "rexec did not finish after its master was killed"), errb.String())
	var want strings.Builder
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	assert.Equal(t, want.String(), out.String())
	assert.Equal(t, 1, strings.Count(errb.String(), "reconnecting"), errb.String())
}

// A runtime directory another user could have prepared is not used:
// rexec connects directly.
func TestE2EControlPrivateDirOnly(t *testing.T) {
	c := newSharingClient(t)
	require.NoError(t, os.Mkdir(filepath.Join(c.run, "rexec"), 0o755))
	r := c.runIn("", "-v", c.host, "echo", "direct")
	assert.Equal(t, "direct\n", r.stdout)
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "not sharing the connection")
	assert.Empty(t, c.masters())
}

func TestE2EReadmeControl(t *testing.T) {
	block := docBlock(t, "docs/guide.md", "## Sharing one connection: control masters")
	c := newSharingClient(t)
	host, port, _ := strings.Cut(c.host, ":")
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"), fmt.Appendf(nil, "[hosts.lab1]\nhost = %q\nport = %s\n", host, port), 0o600))
	require.Equal(t, 0, c.client.run("", "lab1", "true").code) // pins it, directly
	cmd := exec.Command("sh", "-e", "-c", block)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(os.Environ(), c.client.env()...), "PATH="+binDir+":"+os.Getenv("PATH"), "XDG_RUNTIME_DIR="+c.run, "REXEC_CONTROL=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, runBounded(cmd, time.Minute))
	require.Equal(t, 0, cmd.ProcessState.ExitCode(), out.String())
	name, _ := os.Hostname()
	assert.Regexp(t, `^`+regexp.QuoteMeta(name)+`\ncontrol master for \S+@`+regexp.QuoteMeta(c.host)+` running \(pid \d+\)\ncontrol master for \S+ \(pid \d+\) takes no new client and exits once its commands end\n$`, out.String())
	require.Eventually(t, func() bool { return len(c.masters()) == 0 }, 10*time.Second, 20*time.Millisecond)
}

// A master asked to exit while a command runs gives its path up at once:
// the next rexec starts another without waiting for the first to finish.
func TestE2EControlExitWhileBusy(t *testing.T) {
	c := newSharingClient(t)
	require.Equal(t, 0, c.runIn("", c.host, "true").code)
	cmd := c.command(c.host, "--", "sh", "-c", "echo started; sleep 3; echo done")
	var out syncBuffer
	cmd.Stdout = &out
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	require.Eventually(t, func() bool { return out.String() == "started\n" }, 10*time.Second, 5*time.Millisecond)
	old := c.master()
	require.Equal(t, 0, c.runIn("", "--control", "exit", c.host).code)
	start := time.Now()
	r := c.runIn("", c.host, "echo", "meanwhile")
	require.Equal(t, result{"meanwhile\n", "", 0}, r)
	assert.Less(t, time.Since(start), 2*time.Second)
	next := c.master()
	require.NotZero(t, next)
	assert.NotEqual(t, old, next)
	require.Equal(t, 0, waitExit(t, cmd, time.Minute, "the command did not finish"))
	assert.Equal(t, "started\ndone\n", out.String())
	require.Eventually(t, func() bool { return !alive(old) }, 10*time.Second, 10*time.Millisecond)
}

// A shared connection carries as many commands as the daemon allows on
// one (--max-channels): a command beyond that gets a connection of its
// own instead of the daemon's refusal.
func TestE2EControlFullConnection(t *testing.T) {
	c := sharingClientOf(t, startDaemon(t, t.TempDir(), "--max-channels", "1"), false)
	require.Equal(t, 0, c.runIn("", c.host, "true").code)
	long := c.command(c.host, "--", "sh", "-c", "echo long; sleep 2")
	var out syncBuffer
	long.Stdout = &out
	require.NoError(t, long.Start())
	defer func() { _ = long.Process.Kill() }()
	require.Eventually(t, func() bool { return out.String() == "long\n" }, 10*time.Second, 5*time.Millisecond)
	r := c.runIn("", "-v", c.host, "echo", "beside it")
	assert.Equal(t, "beside it\n", r.stdout)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "connected through the control master")
	require.Equal(t, 0, waitExit(t, long, time.Minute, "the long command did not finish"))
}

// A runtime directory whose socket path would be too long for the system
// is not used: rexec connects directly, and starts no master that cannot
// listen.
func TestE2EControlPathTooLong(t *testing.T) {
	c := newSharingClient(t)
	deep := filepath.Join(c.run, strings.Repeat("d", 90))
	require.NoError(t, os.Mkdir(deep, 0o700))
	cmd := c.command("-v", c.host, "echo", "direct")
	cmd.Env = append(cmd.Env, "XDG_RUNTIME_DIR="+deep)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, runBounded(cmd, time.Minute))
	assert.Equal(t, "direct\n", out.String())
	assert.Contains(t, errb.String(), "too long")
	assert.Empty(t, c.masters())
}

// Jobs and log following through a master: a detached job's open ends
// the relayed channel at its open_ok; jobs, attach and kill work; a
// tail -F goes on, line for line, across its master's death.
func TestE2EControlJobsAndTail(t *testing.T) {
	home := t.TempDir()
	c := sharingClientOf(t, startDaemon(t, t.TempDir(), "--dir", home), false)
	r := c.runIn("", "--detach", c.host, "--", "sh", "-c", "echo detached; exit 4")
	require.Equal(t, 0, r.code, r.stderr)
	job := strings.TrimSpace(r.stdout)
	require.NotZero(t, c.master(), "the detach went through a master")
	require.Eventually(t, func() bool {
		return strings.Contains(c.runIn("", "jobs", c.host).stdout, job+"  exited")
	}, 10*time.Second, 20*time.Millisecond)
	r = c.runIn("", "attach", c.host, job)
	assert.Equal(t, result{"detached\n", "", 4}, r)
	require.Equal(t, 0, c.runIn("", "kill", c.host, job).code)

	log := filepath.Join(home, "app.log")
	require.NoError(t, os.WriteFile(log, nil, 0o600))
	tail := c.command("tail", "-F", "-n", "+1", c.host+":app.log")
	var out syncBuffer
	tail.Stdout = &out
	require.NoError(t, tail.Start())
	defer func() { _ = tail.Process.Kill() }()
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	var want strings.Builder
	for i := range 200 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		_, err := f.WriteString(line)
		require.NoError(t, err)
		if i == 100 {
			require.Eventually(t, func() bool { return strings.HasSuffix(out.String(), line) }, 10*time.Second, 5*time.Millisecond)
			pid := c.master()
			require.NotZero(t, pid)
			require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		}
	}
	require.Eventually(t, func() bool { return out.String() == want.String() }, 20*time.Second, 10*time.Millisecond,
		"every line once, across the master's death: %q", lastLines(out.String()))
	require.NoError(t, tail.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 130, waitExit(t, tail, 10*time.Second, "tail -F did not end on SIGINT"))
}

// The master logs in as the user the command line names, whether with
// USER@HOST or -l: each login has a master of its own.
func TestE2EControlLoginUser(t *testing.T) {
	state := t.TempDir()
	d := startDaemon(t, state)
	add := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "user", "add", "pat", "--password-stdin", "--run-as", selfName(t))
	add.Stdin = strings.NewReader("pat's secret\n")
	out, err := add.CombinedOutput()
	require.NoError(t, err, string(out))
	c := sharingClientOf(t, d, false)
	require.Equal(t, 0, c.runIn("", c.host, "true").code) // pins it, as the default user
	for _, args := range [][]string{{"pat@" + c.host}, {"-l", "pat", c.host}} {
		cmd := c.command(append(args, "sh", "-c", `echo "$REXEC_USER"`)...)
		cmd.Env = append(cmd.Env, "REXEC_PASSWORD=pat's secret")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, runBounded(cmd, time.Minute))
		assert.Equal(t, "pat\n", stdout.String(), "%v: %s", args, stderr.String())
	}
	r := c.runIn("", c.host, "sh", "-c", `echo "$REXEC_USER"`)
	assert.NotEqual(t, "pat\n", r.stdout)
	assert.Len(t, c.masters(), 2, "one master per login")
}

// Issue 27 item 2: a master holds nothing its starter had: a pipe a shell
// gave rexec as fd 3 closes when rexec ends (its reader does not wait for
// the master, which lives on), and the master is in / (no directory held).
func TestE2EControlHoldsNothingInherited(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir())
	c := sharingClientOf(t, d, false)
	require.Equal(t, 0, c.runIn("", "--control", "no", c.host, "true").code) // pinned, no master yet
	sh := exec.Command("sh", "-c", `exec 3>&1; "$0" "$@" >/dev/null`, filepath.Join(binDir, "rexec"), c.host, "echo", "hi")
	sh.Env = c.command().Env
	sh.Dir = t.TempDir()
	var out bytes.Buffer
	sh.Stdout = &out
	sh.WaitDelay = 2 * time.Second // past it, Wait gives up on a pipe still held
	require.NoError(t, sh.Start())
	waited := make(chan error, 1)
	go func() { waited <- sh.Wait() }()
	select {
	case err := <-waited:
		// ErrWaitDelay: rexec exited, but its stdout stayed open.
		require.NoError(t, err, "the master held the pipe it inherited as fd 3")
	case <-time.After(30 * time.Second):
		_ = sh.Process.Kill()
		<-waited
		t.Fatal("rexec did not end")
	}
	pids := c.masters()
	require.Len(t, pids, 1, "the command went through a master")
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pids[0]))
	require.NoError(t, err)
	assert.Equal(t, "/", cwd, "the master holds no directory")

	// Files named relative to the starter's directory still reach the
	// master in /: a key given as -i id in its directory logs in.
	keys := t.TempDir()
	for _, suffix := range []string{"", ".pub"} {
		b, err := os.ReadFile(filepath.Join(c.client.config, "rexec", "id_ed25519"+suffix))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(keys, "mine"+suffix), b, 0o600))
	}
	killMasters(c.run)
	cmd := c.command("-i", "mine", c.host, "echo", "relative key")
	cmd.Dir = keys
	out.Reset()
	cmd.Stdout = &out
	require.NoError(t, runBounded(cmd, time.Minute))
	assert.Equal(t, "relative key\n", out.String())
	assert.Len(t, c.masters(), 1, "through a new master")
}

// A bulk command through the master moves to a connection of its own
// once its output passes rexec.DefaultMoveAfter: its output whole, its
// status its own, and the daemon attached it there.
func TestE2EControlBulkMoves(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	c := sharingClientOf(t, d, false)
	r := c.runIn("", d.addr, "--", "sh", "-c", "head -c 50000000 /dev/urandom > big && sha256sum < big >&2 && cat big; exit 4")
	assert.Equal(t, 4, r.code, r.stderr)
	require.Len(t, r.stdout, 50000000, r.stderr)
	sum := sha256.Sum256([]byte(r.stdout))
	assert.Contains(t, r.stderr, hex.EncodeToString(sum[:]), "every byte once, in order")
	assert.Len(t, c.masters(), 1, "the master stays for the next command")
	assert.Contains(t, d.log.String(), "command attached", "the daemon gave the command to the connection of its own")
}

// A transfer of rexec.DefaultMoveAfter bytes or more, or a tree, takes a
// connection of its own rather than the master's relay; a small one
// goes through the master. Counted by the daemon's logins.
func TestE2EControlBulkTransfers(t *testing.T) {
	home := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--dir", home)
	c := sharingClientOf(t, d, false)
	logins := func() int { return strings.Count(d.log.String(), "msg=login ") }
	require.Equal(t, 0, c.runIn("", d.addr, "true").code) // the master logs in
	require.Len(t, c.masters(), 1)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16)
	require.NoError(t, os.WriteFile(filepath.Join(home, "big"), big, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(home, "small"), []byte("small\n"), 0o644))
	local := t.TempDir()

	before := logins()
	r := c.runIn("", "get", "-q", d.addr+":small", local)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, before, logins(), "a small file goes through the master")

	r = c.runIn("", "get", "-q", d.addr+":big", local)
	require.Equal(t, 0, r.code, r.stderr)
	got, err := os.ReadFile(filepath.Join(local, "big"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "the file whole")
	assert.Equal(t, before+1, logins(), "20 MiB take a connection of their own")

	r = c.runIn("", "put", "-q", filepath.Join(local, "big"), d.addr+":copy")
	require.Equal(t, 0, r.code, r.stderr)
	got, err = os.ReadFile(filepath.Join(home, "copy"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got))
	assert.Equal(t, before+2, logins(), "so does a put of them")
	assert.Len(t, c.masters(), 1, "the master stays")
}
