//go:build unix

package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd/execdtest"
)

// needTool finds a program the test drives. CI installs every one and
// sets EXECD_TOOLS_REQUIRED, so that there a missing program fails the
// test rather than skipping it. -short leaves them to the full run.
func needTool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("third-party programs run in the full suite (README's test command), not with -short")
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("EXECD_TOOLS_REQUIRED") != "" {
			t.Fatalf("%s is not installed", name)
		}
		t.Skipf("%s is not installed (CI installs it)", name)
	}
	return p
}

// tool runs a third-party program as the client's user, in its own
// process group, which is killed after limit: the program and the rexec
// processes it started end by their ids.
func (c *client) tool(limit time.Duration, dir string, extraEnv []string, stdin string, name string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), c.env()...), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal, a group of its own
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	require.NoError(c.t, ctx.Err(), "%s %s ran past %s; stderr: %s", name, strings.Join(args, " "), limit, errb.String())
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(c.t, err)
	}
	return result{out.String(), errb.String(), code}
}

// sshTarget is a daemon with a home of its own, its port, and an alias
// "box" for it in the client's config.toml.
type sshTarget struct {
	d          *daemon
	home, port string
}

func startSSHTarget(t *testing.T, c *client, configExtra string) *sshTarget {
	home := t.TempDir()
	d := startDaemon(t, t.TempDir(), "--dir", home)
	_, port, err := net.SplitHostPort(d.addr)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(c.config, "rexec"), 0o700))
	conf := fmt.Sprintf("[hosts.box]\nhost = \"127.0.0.1\"\nport = %s\n%s", port, configExtra)
	require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"), []byte(conf), 0o600))
	return &sshTarget{d: d, home: home, port: port}
}

// The ssh-compatible command line, driven through the binary called as
// ssh, as "rexec --ssh", and for a host with ssh = true.
func TestE2ESSHModeCommandLine(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	tg := startSSHTarget(t, c, "")
	ssh := filepath.Join(binDir, "ssh")
	tests := []struct {
		name       string
		args       []string
		env        []string
		stdin      string
		wantCode   int
		wantOut    string
		wantErr    string // a part of stderr
		wantOneErr bool   // stderr is one line
	}{
		{name: "words joined by single spaces, run by the shell",
			args: []string{"-p", tg.port, "127.0.0.1", "echo", "a  b", "'c  d'", "$((6*7))"}, wantOut: "a b c  d 42\n"},
		{name: "ssh's options taken or ignored",
			args: []string{"-4", "-C", "-x", "-a", "-q", "-T", "-e", "none", "-oPort=" + tg.port, "-o", "User=" + localUser(t),
				"-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o", `ControlPath="/nonexistent/cp"`,
				"-o", "StrictHostKeyChecking=no", "-o", "PreferredAuthentications=publickey", "-o", "KbdInteractiveAuthentication=no",
				"-o", "ConnectTimeout=10", "-o", "Compression yes", "127.0.0.1", "echo ok"}, wantOut: "ok\n"},
		{name: "options after the host, as ssh takes them",
			args: []string{"127.0.0.1", "-p", tg.port, "echo", "after"}, wantOut: "after\n"},
		{name: "ssh:// address with a port and a user",
			args: []string{"ssh://" + localUser(t) + "@127.0.0.1:" + tg.port, "echo url"}, wantOut: "url\n"},
		{name: "an alias of config.toml",
			args: []string{"box", "echo alias"}, wantOut: "alias\n"},
		{name: "the remote status is the exit status",
			args: []string{"box", "exit 7"}, wantCode: 7},
		{name: "a remote 2 stays 2 (rexec's own usage errors are 255)",
			args: []string{"box", "exit 2"}, wantCode: 2},
		{name: "a remote 255 is 255",
			args: []string{"box", "exit 255"}, wantCode: 255},
		{name: "a bad port in config or -p is rexec's own: 255",
			args: []string{"-o", "Port=99999", "box", "true"}, wantCode: 255, wantErr: "Bad port", wantOneErr: true},
		{name: "stdin reaches the command",
			args: []string{"box", "tr a-z A-Z"}, stdin: "hello\n", wantOut: "HELLO\n"},
		{name: "-n: no stdin",
			args: []string{"-n", "box", "wc -c"}, stdin: "not read", wantOut: "0\n"},
		{name: "SendEnv and SetEnv",
			args: []string{"-o", "SendEnv=GIT_*", "-o", "SetEnv=B=2", "box", `echo "$GIT_PROTOCOL $B"`},
			env:  []string{"GIT_PROTOCOL=version=2"}, wantOut: "version=2 2\n"},
		{name: "-t without a terminal: no pty, as ssh",
			args: []string{"-t", "box", "test -t 0 && echo tty || echo notty"}, wantOut: "notty\n", wantErr: "Pseudo-terminal will not be allocated"},
		{name: "-tt: a pty",
			args: []string{"-tt", "box", "test -t 0 && echo tty || echo notty"}, wantOut: "tty\r\n"},
		{name: "an unknown option is refused with 255",
			args: []string{"-o", "NoSuchThing=1", "box", "true"}, wantCode: 255, wantErr: "Bad configuration option: NoSuchThing", wantOneErr: true},
		{name: "forwarding is refused with 255",
			args: []string{"-L", "8080:127.0.0.1:80", "box", "true"}, wantCode: 255, wantErr: "port forwarding", wantOneErr: true},
		{name: "sftp's subsystem is refused with 255",
			args: []string{"-s", "box", "sftp"}, wantCode: 255, wantErr: "rexec get", wantOneErr: true},
		{name: "a host that does not answer is 255",
			args: []string{"-p", "1", "127.0.0.1", "true"}, wantCode: 255, wantOneErr: true},
		{name: "a missing host is 255",
			args: []string{"-p", "1"}, wantCode: 255, wantErr: "HOST", wantOneErr: true},
		{name: "-G prints the resolved configuration",
			args: []string{"-G", "-o", "SendEnv=GIT_PROTOCOL", "box"}, wantOut: "port " + tg.port + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.tool(30*time.Second, "", tc.env, tc.stdin, ssh, tc.args...)
			assert.Equal(t, tc.wantCode, r.code, "stderr: %s", r.stderr)
			if strings.HasPrefix(tc.args[0], "-G") {
				assert.Contains(t, r.stdout, tc.wantOut)
				assert.Contains(t, r.stdout, "hostname 127.0.0.1\n")
				assert.Contains(t, r.stdout, "sendenv GIT_PROTOCOL\n")
			} else {
				assert.Equal(t, tc.wantOut, r.stdout)
			}
			assert.Contains(t, r.stderr, tc.wantErr)
			if tc.wantOneErr {
				assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			}
		})
	}

	t.Run("rexec --ssh and ssh = true in config.toml", func(t *testing.T) {
		r := c.tool(30*time.Second, "", nil, "", filepath.Join(binDir, "rexec"), "--ssh", "-o", "ControlMaster=no", "box", "echo", "x  y")
		assert.Equal(t, "x y\n", r.stdout, r.stderr)
		// Without the setting, rexec's own command line: -o is no flag of rexec.
		r = c.tool(30*time.Second, "", nil, "", filepath.Join(binDir, "rexec"), "-o", "ControlMaster=no", "box", "echo", "x  y")
		assert.Equal(t, 2, r.code, "rexec's usage error")
		conf, err := os.ReadFile(filepath.Join(c.config, "rexec", "config.toml"))
		require.NoError(t, err)
		sshHost := strings.ReplaceAll(string(conf), "[hosts.box]", "[hosts.box2]\nssh = true")
		require.NoError(t, os.WriteFile(filepath.Join(c.config, "rexec", "config.toml"), []byte(string(conf)+"\n"+sshHost), 0o600))
		r = c.tool(30*time.Second, "", nil, "", filepath.Join(binDir, "rexec"), "-o", "ControlMaster=no", "box2", "echo", "x  y")
		assert.Equal(t, "x y\n", r.stdout, r.stderr)
		// plain rexec keeps its exact argv
		r = c.tool(30*time.Second, "", nil, "", filepath.Join(binDir, "rexec"), "box", "echo", "x  y")
		assert.Equal(t, "x  y\n", r.stdout, r.stderr)
	})
}

// ServerAliveInterval ends a connection whose daemon went silent, with
// 255 and one line, instead of hanging.
func TestE2ESSHModeServerAlive(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	tg := startSSHTarget(t, c, "")
	p := execdtest.StartProxy(t, tg.d.addr)
	host, port, _ := net.SplitHostPort(p.Addr)
	r := c.tool(30*time.Second, "", nil, "", filepath.Join(binDir, "ssh"), "-p", tg.port, "127.0.0.1", "true")
	require.Equal(t, 0, r.code, r.stderr) // pinned
	ssh := exec.Command(filepath.Join(binDir, "ssh"), "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2", "-p", port, host, "echo started; sleep 60")
	ssh.Env = append(os.Environ(), c.env()...)
	// the proxy's address is a new host for known_hosts: pin it
	out, err := ssh.StdoutPipe()
	require.NoError(t, err)
	var errb syncBuffer
	ssh.Stderr = &errb
	require.NoError(t, ssh.Start())
	t.Cleanup(func() { _ = ssh.Process.Kill() })
	buf := make([]byte, 8)
	_, err = out.Read(buf)
	require.NoError(t, err, errb.String())
	p.Stall()
	begin := time.Now()
	done := make(chan error, 1)
	go func() { done <- ssh.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("rexec did not give up on a silent daemon; stderr: %s", errb.String())
	}
	assert.Equal(t, 255, ssh.ProcessState.ExitCode())
	assert.Less(t, time.Since(begin), 10*time.Second)
	assert.Contains(t, errb.String(), "stopped answering keepalives")
}

// localUser is the name the test's OS user logs in as.
func localUser(t *testing.T) string {
	for _, v := range []string{"USER", "LOGNAME"} {
		if u := os.Getenv(v); u != "" {
			return u
		}
	}
	out, err := exec.Command("id", "-un").Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}
