package main_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/internal/testmain"
)

var update = flag.Bool("update", false, "rewrite golden files")

// binDir holds the binaries built once for every test.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	testmain.Main(m, testmain.Options{Setup: buildBinaries, Teardown: func() { _ = os.RemoveAll(binDir) }})
}

// buildBinaries builds execd and rexec into binDir, once for every test.
func buildBinaries() int {
	dir, err := os.MkdirTemp("", "rexec-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	binDir = dir
	// rexec shares connections by default; the tests of that turn it
	// on again (control_e2e_test.go), the others connect directly.
	_ = os.Setenv("REXEC_CONTROL", "no")
	for _, name := range []string{"execd", "rexec"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../"+name)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", name, err)
			return 1
		}
	}
	// rexec called as ssh takes ssh's command line
	if err := os.Symlink("rexec", filepath.Join(dir, "ssh")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

type daemon struct {
	cmd    *exec.Cmd
	addr   string
	log    *syncBuffer
	done   chan error    // Wait's result, once
	exited chan struct{} // closed when the process has exited
}

// wait starts the goroutine that waits for the daemon's process.
func (d *daemon) wait() {
	d.exited = make(chan struct{})
	go func() {
		err := d.cmd.Wait()
		d.done <- err
		close(d.exited)
	}()
}

// running reports whether the daemon's process has not exited.
func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// syncBuffer collects a daemon's log while tests read it.
type syncBuffer = execdtest.SyncBuffer

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startDaemon runs the execd binary on a free loopback port and stops it
// (SIGTERM, then SIGKILL of that pid) at the end of the test.
func startDaemon(t *testing.T, stateDir string, extra ...string) *daemon {
	t.Helper()
	return startDaemonOn(t, freeAddr(t), stateDir, extra...)
}

// startDaemonOn is startDaemon on a given loopback address.
func startDaemonOn(t *testing.T, addr, stateDir string, extra ...string) *daemon {
	t.Helper()
	return startDaemonUnder(t, nil, addr, stateDir, extra...)
}

// startDaemonUnder is startDaemonOn with the daemon started through a
// program that execs it (such as prlimit), so that its pid is the daemon's.
func startDaemonUnder(t *testing.T, wrap []string, addr, stateDir string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{addr: addr, log: &syncBuffer{}, done: make(chan error, 1)}
	args := append([]string{"--listen", d.addr, "--state-dir", stateDir, "--kill-grace", "1s"}, extra...)
	if !slices.Contains(extra, "--config") {
		// Not the machine's /etc/execd/execd.toml, which root's daemon reads.
		args = append(args, "--config", os.DevNull)
	}
	prog := filepath.Join(binDir, "execd")
	if len(wrap) > 0 {
		args = append(append(append([]string{}, wrap[1:]...), prog), args...)
		prog = wrap[0]
	}
	d.cmd = exec.Command(prog, args...)
	d.cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+userConfig(t))
	d.cmd.Stderr = d.log
	require.NoError(t, d.cmd.Start())
	d.wait()
	t.Cleanup(func() { d.stop(t) })
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", d.addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "daemon did not start: %s", d.log)
	return d
}

func (d *daemon) stop(t *testing.T) {
	if !d.running() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("daemon did not stop on SIGTERM: %s", d.log)
	}
}

// client runs rexec with its own config directory.
type client struct {
	t      *testing.T
	config string
}

func newClient(t *testing.T) *client {
	return &client{t: t, config: userConfig(t)}
}

// configDirs holds each test's client config directory: the daemon's
// first start puts the test user's key there, and rexec finds it there.
var configDirs sync.Map // *testing.T -> string

// userConfig is the config directory of the OS user a test plays.
func userConfig(t *testing.T) string {
	if v, ok := configDirs.Load(t); ok {
		return v.(string)
	}
	d := t.TempDir()
	configDirs.Store(t, d)
	t.Cleanup(func() { configDirs.Delete(t) })
	return d
}

func (c *client) command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "rexec"), args...)
	cmd.Env = append(os.Environ(), c.env()...)
	return cmd
}

// env is the client's environment on top of the test's: its config
// directory, a home of its own (no ~/.ssh key of the machine's user) and
// no ssh-agent.
func (c *client) env() []string {
	return []string{"XDG_CONFIG_HOME=" + c.config, "HOME=" + c.config, "SSH_AUTH_SOCK=", "TERM=xterm"}
}

type result struct {
	stdout, stderr string
	code           int
}

func (c *client) run(stdin string, args ...string) result {
	c.t.Helper()
	cmd := c.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(c.t, err)
	}
	return result{out.String(), errb.String(), code}
}

func TestE2EBasics(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	c := newClient(t)

	r := c.run("", d.addr, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	assert.Equal(t, 3, r.code)
	assert.Equal(t, "out\n", r.stdout)
	assert.Contains(t, r.stderr, "pinned new host "+d.addr)
	assert.Contains(t, r.stderr, "err\n")
	kh, err := os.ReadFile(filepath.Join(c.config, "rexec", "known_hosts"))
	require.NoError(t, err)
	assert.Contains(t, string(kh), d.addr+" SHA256:")

	r = c.run("b\na\n", d.addr, "sort")
	assert.Equal(t, result{"a\nb\n", "", 0}, r, "second run: pinned silently, stdin forwarded")

	r = c.run("ignored", "-n", d.addr, "wc", "-c")
	assert.Equal(t, "0", strings.TrimSpace(r.stdout), "-n sends no stdin")

	require.Equal(t, 0, c.run("", d.addr, "mkdir", "sub dir").code)
	r = c.run("", "-e", "A=1 2", "-C", "sub dir", d.addr, "sh", "-c", `echo "$A"; basename "$(pwd)"`)
	assert.Equal(t, "1 2\nsub dir\n", r.stdout, r.stderr)
	// The first start's owner acts as their account: -C goes anywhere it may.
	home := c.run("", d.addr, "pwd").stdout
	for dir, want := range map[string]string{"/": "/\n", "/etc": "/etc\n", "~": home} {
		r = c.run("", "-C", dir, d.addr, "pwd")
		assert.Equal(t, result{want, "", 0}, r, "-C %s", dir)
	}
	r = c.run("", "-C", "nowhere", d.addr, "pwd")
	assert.Equal(t, 127, r.code)
	assert.Regexp(t, `^rexec: working directory: .*/nowhere: no such file or directory\n$`, r.stderr)

	r = c.run("", "-s", d.addr, "echo", "a", "|", "tr", "a", "b")
	assert.Equal(t, "b\n", r.stdout, "-s runs through the shell")

	r = c.run("", d.addr, "sh", "-c", "kill -TERM $$")
	assert.Equal(t, 143, r.code, "signal death is 128+N")

	r = c.run("", "--timeout", "300ms", d.addr, "sleep", "10")
	assert.Equal(t, 143, r.code)
	assert.Contains(t, r.stderr, "time limit")

	r = c.run("", d.addr, "no-such-command")
	assert.Equal(t, 127, r.code)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)

	bin := make([]byte, 256*64)
	for i := range bin {
		bin[i] = byte(i)
	}
	cmd := c.command(d.addr, "cat")
	cmd.Stdin = bytes.NewReader(bin)
	got, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, bin, got, "binary stdin and stdout byte-exact")
}

func TestE2ETransportErrors(t *testing.T) {
	c := newClient(t)
	r := c.run("", freeAddr(t), "true")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "connection refused")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)

	r = c.run("")
	assert.Equal(t, 2, r.code, "usage error")

	// a daemon whose identity changed at a pinned address is refused
	state := t.TempDir()
	d := startDaemon(t, state)
	require.Equal(t, 0, c.run("", d.addr, "true").code)
	d.stop(t)
	d2 := startDaemonAt(t, d.addr, t.TempDir())
	r = c.run("", d2.addr, "true")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "CHANGED")
	assert.Contains(t, r.stderr, "line 1")

	// plaintext on one side only
	p := startDaemon(t, t.TempDir(), "--insecure-plaintext")
	assert.Contains(t, p.log.String(), "WARNING")
	r = c.run("", p.addr, "true")
	assert.Equal(t, 255, r.code)
	r = c.run("", "--plaintext", p.addr, "echo", "plain")
	assert.Equal(t, result{"plain\n", "", 0}, r)
}

func startDaemonAt(t *testing.T, addr, state string) *daemon {
	t.Helper()
	var d *daemon
	require.Eventually(t, func() bool {
		d = &daemon{addr: addr, log: &syncBuffer{}, done: make(chan error, 1)}
		d.cmd = exec.Command(filepath.Join(binDir, "execd"), "--listen", addr, "--state-dir", state)
		d.cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+userConfig(t))
		d.cmd.Stderr = d.log
		if d.cmd.Start() != nil {
			return false
		}
		d.wait()
		time.Sleep(200 * time.Millisecond)
		select {
		case <-d.done:
			return false // port not free yet
		default:
			return true
		}
	}, 10*time.Second, 100*time.Millisecond)
	t.Cleanup(func() { d.stop(t) })
	return d
}

func TestE2EConfigAlias(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	c := newClient(t)
	host, port, _ := net.SplitHostPort(d.addr)
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"),
		[]byte(fmt.Sprintf("[hosts.lab1]\nhost = %q\nport = %s\n", host, port)), 0o600))
	r := c.run("", "lab1", "echo", "via alias")
	assert.Equal(t, "via alias\n", r.stdout)
	assert.Contains(t, r.stderr, "pinned new host "+d.addr)
}

// remotePids starts rexec running a command that prints pids, and returns
// the rexec process and the pids once printed.
func remotePids(t *testing.T, c *client, addr string, script string, n int) (*exec.Cmd, []int) {
	cmd := c.command(addr, "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	var pids []int
	for len(pids) < n && sc.Scan() {
		var p int
		_, err := fmt.Sscan(sc.Text(), &p)
		require.NoError(t, err)
		pids = append(pids, p)
	}
	require.Len(t, pids, n)
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return cmd, pids
}

// A killed client cannot be told from a lost network: its command goes on
// for the resume grace, then its whole process group ends.
func TestE2EKilledClientLeavesNoOrphans(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--resume-grace", "1s")
	c := newClient(t)
	cmd, pids := remotePids(t, c, d.addr, "sleep 300 & echo $!; (sleep 301; true) & echo $!; echo $$; wait", 3)
	for _, p := range pids {
		require.True(t, execdtest.ProcessAlive(p))
	}
	require.NoError(t, cmd.Process.Kill()) // kill -9 of the client
	_ = cmd.Wait()
	time.Sleep(300 * time.Millisecond)
	for _, p := range pids {
		assert.True(t, execdtest.ProcessAlive(p), "ended before the grace period was over")
	}
	require.Eventually(t, func() bool {
		for _, p := range pids {
			if execdtest.ProcessAlive(p) {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "remote processes outlived the killed client")
}

func TestE2EInterruptReachesRemote(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	c := newClient(t)
	cmd, _ := remotePids(t, c, d.addr, `trap 'exit 7' INT; echo $$; sleep 60; echo not reached`, 1) // the trap is set before the pid is printed
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 7, ee.ExitCode(), "the remote trap ran, so INT reached the remote group")

	cmd, pids := remotePids(t, c, d.addr, `echo $$; exec sleep 60`, 1)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err = cmd.Wait()
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 143, ee.ExitCode())
	assert.False(t, execdtest.ProcessAlive(pids[0]))
}

func TestE2EPty(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	c := newClient(t)
	require.Equal(t, 0, c.run("", d.addr, "true").code) // pin first: keep the pty output clean
	cmd := c.command("-t", d.addr, "sh", "-c", `stty size; read x; stty size; exit 5`)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 77})
	require.NoError(t, err)
	defer func() { _ = tty.Close() }()
	var seen bytes.Buffer
	buf := make([]byte, 1024)
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(seen.String(), s) {
			require.True(t, time.Now().Before(deadline), "waiting for %q in %q", s, seen.String())
			_ = tty.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := tty.Read(buf)
			seen.Write(buf[:n])
		}
	}
	waitFor("33 77")
	require.NoError(t, pty.Setsize(tty, &pty.Winsize{Rows: 44, Cols: 99})) // SIGWINCH to rexec
	time.Sleep(200 * time.Millisecond)
	_, err = tty.Write([]byte("\r"))
	require.NoError(t, err)
	waitFor("44 99")
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 5, ee.ExitCode())
}

func TestE2EGracefulShutdown(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--shutdown-grace", "10s")
	c := newClient(t)
	cmd := c.command(d.addr, "sh", "-c", "echo started; sleep 1; echo finished")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	require.True(t, sc.Scan())
	require.Equal(t, "started", sc.Text())
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.True(t, sc.Scan())
	assert.Equal(t, "finished", sc.Text())
	require.NoError(t, cmd.Wait())
	select {
	case err := <-d.done:
		require.NoError(t, err, "daemon exits 0 after a graceful shutdown: %s", d.log)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not exit")
	}
}

func TestE2EDaemonRefusesRemoteListenWithoutUsers(t *testing.T) {
	state := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "execd"), "--listen", "0.0.0.0:0", "--state-dir", state)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, string(out), "no users yet")
	assert.NoFileExists(t, filepath.Join(state, "users.toml"), "a first start beyond loopback adds nobody")
}

func TestHelpGolden(t *testing.T) {
	for _, name := range []string{"rexec", "execd", "rexec get", "rexec put", "rexec files", "rexec keygen", "execd user add", "execd audit"} {
		t.Run(name, func(t *testing.T) {
			argv := strings.Fields(name)
			out, err := exec.Command(filepath.Join(binDir, argv[0]), append(argv[1:], "--help")...).Output()
			require.NoError(t, err)
			path := filepath.Join("testdata", strings.ReplaceAll(name, " ", "-")+"-help.golden")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, out, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./cmd/rexec -update to create")
			assert.Equal(t, string(want), string(out))
		})
	}
}

// TestE2EQuickStart runs the README's quick start as written, on a fresh
// HOME and state directory: the daemon's first start lets the user in
// with no other step. Only the port differs, so as not to depend on 7022
// being free.
func TestE2EQuickStart(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "## Quick start")
	require.True(t, ok)
	_, block, ok := strings.Cut(rest, "```sh\n")
	require.True(t, ok)
	block, _, _ = strings.Cut(block, "```")
	var daemonLine, clientLine []string
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "bin/execd":
			daemonLine = f
		case len(f) > 0 && f[0] == "bin/rexec":
			clientLine = f
		}
	}
	require.Equal(t, []string{"bin/execd", "&"}, daemonLine, "the quick start starts the daemon with no setup")
	require.NotEmpty(t, clientLine)

	home := t.TempDir()
	// As a new user runs it: rexec shares its connection through a
	// control master (the tests' REXEC_CONTROL=no undone), whose socket
	// goes in a runtime directory of this test's own.
	run, err := os.MkdirTemp("", "rt")
	require.NoError(t, err)
	env := append(os.Environ(), "HOME="+home, "XDG_STATE_HOME="+filepath.Join(home, ".local", "state"), "XDG_CONFIG_HOME=",
		"REXEC_CONTROL=", "XDG_RUNTIME_DIR="+run)
	t.Cleanup(func() {
		killMasters(run)
		_ = os.RemoveAll(run)
	})
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	d := &daemon{addr: addr, log: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(filepath.Join(binDir, "execd"), "--listen", addr)
	d.cmd.Env, d.cmd.Stderr = env, d.log
	require.NoError(t, d.cmd.Start())
	d.wait()
	t.Cleanup(func() { d.stop(t) })

	// A new user types the next line once the daemon is up: the first
	// start has made their key and listens. (A rexec racing the first
	// start finds no key yet; its master's failed login is remembered and
	// the next rexec connects directly, with no master left.)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil && strings.Contains(d.log.String(), "first start: created user")
	}, 10*time.Second, 20*time.Millisecond, "daemon: %s", d.log)
	args := append([]string{"-p", port}, clientLine[1:]...)
	var r result
	require.Eventually(t, func() bool {
		cmd := exec.Command(filepath.Join(binDir, "rexec"), args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r = result{out.String(), errb.String(), 0}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "rexec: %+v\ndaemon: %s", &r, d.log)
	uname, err := exec.Command("uname", "-a").Output()
	require.NoError(t, err)
	assert.Equal(t, string(uname), r.stdout)
	assert.Contains(t, r.stderr, "pinned new host")
	assert.Contains(t, d.log.String(), "execd: first start: created user")
	assert.Equal(t, 1, strings.Count(d.log.String(), "first start"), "said in one line")
	assert.FileExists(t, filepath.Join(home, ".config", "rexec", "id_ed25519"), "the key was made for the user")
	assert.FileExists(t, filepath.Join(home, ".local", "state", "execd", "users.toml"))
	if sharingHere {
		assert.Len(t, mastersIn(run), 1, "the quick start's rexec left a master for the next one")
	}
	fi, err := os.Stat(filepath.Join(home, ".config", "rexec", "id_ed25519"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

// TestE2EUserAdmin drives "execd user" and "execd audit" as an
// administrator would, against a running daemon.
func TestE2EUserAdmin(t *testing.T) {
	state := t.TempDir()
	d := startDaemon(t, state)
	admin := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(binDir, "execd"), append([]string{"--state-dir", state}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := admin("s3cret pass\n", "user", "add", "dave", "--password-stdin", "--allow", "get,put", "--quota", "1MiB")
	require.NoError(t, err, out)
	assert.Contains(t, out, "added user dave")
	out, err = admin("", "user", "add", "dave", "--no-password")
	require.Error(t, err)
	assert.Contains(t, out, "user dave exists")
	out, err = admin("", "user", "add", "erin")
	require.Error(t, err)
	assert.Contains(t, out, "--password-stdin")
	out, err = admin("", "user", "set", "dave", "--quota", "lots")
	require.Error(t, err)
	assert.Contains(t, out, "bad size")
	out, err = admin("", "user", "list")
	require.NoError(t, err, out)
	assert.Regexp(t, `dave\s+confined\s+get,put\s+password\s+0B\s+1MiB\s+`+regexp.QuoteMeta(filepath.Join(state, "home", "dave")), out)

	c := newClient(t)
	_, port, _ := net.SplitHostPort(d.addr)
	remote := func(path string) string { return "dave@127.0.0.1:" + path }
	run := func(stdin, pw string, args ...string) result {
		cmd := c.command(args...)
		cmd.Env = append(cmd.Env, "REXEC_PASSWORD="+pw)
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{o.String(), e.String(), code}
	}
	r := run("", "wrong", "dave@"+d.addr, "true")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "refused the login as dave")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1-strings.Count(r.stderr, "pinned new host"), "one line: %q", r.stderr)
	r = run("", "s3cret pass", "dave@"+d.addr, "true")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, `may not run commands`)
	r = run("hello dave\n", "s3cret pass", "put", "-q", "-p", port, "-", remote("note.txt"))
	assert.Equal(t, 0, r.code, r.stderr)
	got, err := os.ReadFile(filepath.Join(state, "home", "dave", "note.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello dave\n", string(got))
	big := filepath.Join(t.TempDir(), "big")
	require.NoError(t, os.WriteFile(big, make([]byte, 2<<20), 0o644))
	r = run("", "s3cret pass", "put", "-q", "-p", port, big, remote("big"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "would exceed the quota of user dave")

	out, err = admin("", "user", "list")
	require.NoError(t, err, out)
	assert.Regexp(t, `dave\s+confined\s+get,put\s+password\s+11B\s+1MiB`, out, "the note is counted, the refused file not")

	// Grant exec, kept in the home and acting as the test's account: the
	// running daemon sees it at the next login.
	out, err = admin("", "user", "set", "dave", "--allow", "exec,get", "--confine", "--run-as", selfName(t))
	require.NoError(t, err, out)
	r = run("", "s3cret pass", "dave@"+d.addr, "cat", "note.txt")
	assert.Equal(t, result{"hello dave\n", "", 0}, r)
	r = run("x\n", "s3cret pass", "put", "-q", "-p", port, "-", remote("again.txt"))
	assert.Equal(t, 1, r.code, "put was taken away")
	assert.Contains(t, r.stderr, `no "put" permission`)

	out, err = admin("", "audit", "--user", "dave")
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range []string{"login_failed", "login ", "put ", "exec ", "exit "} {
		assert.Contains(t, out, want)
	}
	for _, l := range lines {
		assert.Contains(t, l, " dave ")
	}
	out, err = admin("", "audit", "--event", "put", "--json")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"path":"~/note.txt"`)
	out, err = admin("", "audit", "--since", "2999-01-01")
	require.NoError(t, err, out)
	assert.Empty(t, out)

	out, err = admin("", "user", "del", "dave")
	require.NoError(t, err, out)
	r = run("", "s3cret pass", "dave@"+d.addr, "true")
	assert.Equal(t, 255, r.code)
	assert.Contains(t, r.stderr, "no such user")
}

// TestE2EPasswordPrompt: with no key and no $REXEC_PASSWORD, rexec asks
// for the password on the terminal without echoing it, as ssh does.
func TestE2EPasswordPrompt(t *testing.T) {
	state := t.TempDir()
	d := startDaemon(t, state)
	add := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "user", "add", "frank", "--password-stdin", "--run-as", selfName(t))
	add.Stdin = strings.NewReader("tty-Pass 1\n")
	out, err := add.CombinedOutput()
	require.NoError(t, err, string(out))
	c := newClient(t)
	_, port, _ := net.SplitHostPort(d.addr)
	r := c.run("", "-p", port, "-i", "/nonexistent/key", "frank@127.0.0.1", "true")
	assert.Equal(t, 2, r.code, "a missing -i key is a usage error: %q", r.stderr)
	assert.Contains(t, r.stderr, "/nonexistent/key")
	cmd := c.command("-p", port, "-T", "frank@127.0.0.1", "echo", "in")
	tty, err := pty.Start(cmd)
	require.NoError(t, err)
	defer func() { _ = tty.Close() }()
	var seen bytes.Buffer
	buf := make([]byte, 1024)
	waitFor := func(s string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(seen.String(), s) < n {
			require.True(t, time.Now().Before(deadline), "waiting for %q in %q", s, seen.String())
			_ = tty.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := tty.Read(buf)
			seen.Write(buf[:n])
		}
	}
	waitFor("frank@127.0.0.1:"+port+"'s password: ", 1)
	_, err = tty.Write([]byte("wrong\r"))
	require.NoError(t, err)
	waitFor("'s password: ", 2) // asked again
	_, err = tty.Write([]byte("tty-Pass 1\r"))
	require.NoError(t, err)
	waitFor("in\r\n", 1)
	require.NoError(t, cmd.Wait())
	assert.NotContains(t, seen.String(), "tty-Pass", "the password is not echoed")
}

// selfName is the account the tests run as: users who run commands act as
// it (run_as), since a daemon running as root lets a user act as root
// only when run_as says so.
func selfName(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}
