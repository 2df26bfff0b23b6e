package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
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

	"github.com/execd-project/execd/cmd/rexec/internal/fanout"
	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
)

// fleet is many daemons on 127.0.0.x, all on one port, each serving its own
// directory with a file "name" saying which host it is.
type fleet struct {
	port   int
	config string // XDG_CONFIG_HOME of the client
	dirs   map[string]string
}

// host is the address of the n-th loopback host.
func host(n int) string { return fmt.Sprintf("127.0.0.%d", n) }

// newLab starts daemons on 127.0.0.first..last except those in skip.
// setup may change a host's directory before its daemon starts.
func newFleet(t *testing.T, first, last int, skip map[int]bool, setup func(n int, dir string)) *fleet {
	t.Helper()
	port, lns := fleetListeners(t, first, last, skip)
	l := &fleet{port: port, config: t.TempDir(), dirs: map[string]string{}}
	for n := first; n <= last; n++ {
		if skip[n] {
			continue
		}
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "name"), []byte("host-"+strconv.Itoa(n)), 0o644))
		if setup != nil {
			setup(n, dir)
		}
		l.dirs[host(n)] = dir
		execdtest.StartOn(t, &execd.Server{Dir: dir, KillGrace: time.Second}, false, lns[n])
	}
	return l
}

// fleetListeners listens on one port on every host of the fleet: a port
// free on the first host may be taken on another (by a test running
// beside this one), so a port is tried until it is free on all.
func fleetListeners(t *testing.T, first, last int, skip map[int]bool) (int, map[int]net.Listener) {
	t.Helper()
	for range 20 {
		probe, err := net.Listen("tcp", host(first)+":0")
		require.NoError(t, err)
		port := probe.Addr().(*net.TCPAddr).Port
		require.NoError(t, probe.Close())
		lns := map[int]net.Listener{}
		for n := first; n <= last; n++ {
			if skip[n] {
				continue
			}
			ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", host(n), port))
			if err != nil {
				break
			}
			lns[n] = ln
		}
		if len(lns)+len(skip) >= last-first+1 {
			return port, lns
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	t.Fatalf("no port free on every host of 127.0.0.[%d-%d]", first, last)
	return 0, nil
}

// blackHole accepts connections on addr and never answers.
func blackHole(t *testing.T, addr string) {
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
}

type runResult struct {
	code           int
	stdout, stderr string
}

// rexec runs the command line in-process with stdin.
func (l *fleet) rexec(t *testing.T, stdin string, args ...string) runResult {
	t.Helper()
	return l.rexecSignals(t, stdin, make(chan os.Signal), args...)
}

// rexecSignals is rexec with signals delivered on sigs.
func (l *fleet) rexecSignals(t *testing.T, stdin string, sigs chan os.Signal, args ...string) runResult {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		signals: sigs, getenv: func(k string) string {
			switch k {
			case "XDG_CONFIG_HOME", "HOME": // no ~/.ssh key of the machine's user
				return l.config
			case "SSH_AUTH_SOCK":
				return ""
			}
			return os.Getenv(k)
		},
	})
	code := exitCode(err, &errb)
	return runResult{code, out.String(), errb.String()}
}

// TestFanout100Hosts runs one command on 100 loopback hosts, of which a
// few are down, never answer, refuse the login, changed identity, fail or
// overrun the time limit: every line must be attributed to the host that
// wrote it, and the summary and exit status must say what happened.
func TestFanout100Hosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 daemons")
	}
	down := map[int]bool{90: true, 91: true, 92: true, 93: true, 94: true, 95: true}
	l := newFleet(t, 2, 101, down, func(n int, dir string) {
		switch {
		case n >= 80 && n <= 83:
			require.NoError(t, os.WriteFile(filepath.Join(dir, "code"), []byte("3"), 0o644))
		case n == 84:
			require.NoError(t, os.WriteFile(filepath.Join(dir, "code"), []byte("7"), 0o644))
		case n >= 85 && n <= 86:
			require.NoError(t, os.WriteFile(filepath.Join(dir, "delay"), []byte("30"), 0o644))
		}
	})
	// 93 and 94 accept and never answer; 95 asks for a login nobody has.
	blackHole(t, fmt.Sprintf("%s:%d", host(93), l.port))
	blackHole(t, fmt.Sprintf("%s:%d", host(94), l.port))
	users, err := execd.OpenUsers(filepath.Join(t.TempDir(), "users.toml"))
	require.NoError(t, err)
	execdtest.StartAt(t, &execd.Server{Dir: t.TempDir(), Users: users}, false, fmt.Sprintf("%s:%d", host(95), l.port))
	// 96's identity is pinned as something else.
	require.NoError(t, os.MkdirAll(filepath.Join(l.config, "rexec"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(l.config, "rexec", "known_hosts"),
		[]byte(fmt.Sprintf("%s:%d SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", host(96), l.port)), 0o600))

	script := `n=$(cat name); i=0; while [ $i -lt 200 ]; do echo "$n line $i"; i=$((i+1)); done; ` +
		`echo "$n err" >&2; printf "$n last"; sleep $(cat delay 2>/dev/null || echo 0); exit $(cat code 2>/dev/null || echo 0)`
	start := time.Now()
	r := l.rexec(t, "", "-H", "127.0.0.[2-101]", "-p", strconv.Itoa(l.port), "--connect-timeout", "2s", "--timeout", "3s", "--", "sh", "-c", script)
	elapsed := time.Since(start)
	t.Logf("100 hosts in %v; stderr tail:\n%s", elapsed, tail(r.stderr, 12))

	// Every stdout line is whole and belongs to the host in its prefix.
	line := regexp.MustCompile(`^(127\.0\.0\.\d+): host-(\d+) (line \d+|last)$`)
	count := map[string]int{}
	for _, s := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		m := line.FindStringSubmatch(s)
		require.NotNil(t, m, "torn or stray line %q", s)
		require.Equal(t, m[1], host(atoi(t, m[2])), "line %q attributed to the wrong host", s)
		count[m[1]]++
	}
	for n := 2; n <= 101; n++ {
		if n >= 90 && n <= 96 {
			assert.Zero(t, count[host(n)], "%s printed output", host(n))
			continue
		}
		assert.Equal(t, 201, count[host(n)], "%s: 200 lines and the last one without a newline", host(n))
		assert.Contains(t, r.stderr, fmt.Sprintf("%s: host-%d err\n", host(n), n))
	}

	assert.Equal(t, 255, r.code, "unreachable hosts make the worst status")
	assert.Contains(t, r.stderr, "rexec: 100 hosts: 86 ok, 5 failed, 2 timed out, 5 unreachable, 2 refused; slowest ")
	assert.Contains(t, r.stderr, "rexec: failed: 127.0.0.[80-83]: exit 3\n")
	assert.Contains(t, r.stderr, "rexec: failed: 127.0.0.84: exit 7\n")
	assert.Contains(t, r.stderr, "rexec: timed out: 127.0.0.[85-86]: time limit reached")
	assert.Contains(t, r.stderr, "rexec: unreachable: 127.0.0.[90-92]: connection refused\n")
	assert.Contains(t, r.stderr, "rexec: unreachable: 127.0.0.[93-94]: no answer within the time limit\n")
	assert.Contains(t, r.stderr, "rexec: refused: 127.0.0.95: ")
	assert.Contains(t, r.stderr, "rexec: refused: 127.0.0.96: ")
	assert.Contains(t, r.stderr, "127.0.0.95: rexec: ")
	assert.Regexp(t, `127\.0\.0\.95: rexec: .*(login|auth)`, r.stderr)
	assert.Contains(t, r.stderr, "127.0.0.96: rexec: host identity of 127.0.0.96:")
	assert.Contains(t, r.stderr, "CHANGED")
	assert.Contains(t, r.stderr, "rexec: pinned 94 new hosts in ")
	assert.Less(t, elapsed, 20*time.Second, "the slow hosts hold up no one")

	// Without the unreachable ones, the worst remote status wins.
	r = l.rexec(t, "", "-H", "127.0.0.[2-89]", "-x", "127.0.0.[85-86]", "-p", strconv.Itoa(l.port), "sh", "-c", "exit $(cat code 2>/dev/null || echo 0)")
	assert.Equal(t, 7, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rexec: 86 hosts: 81 ok, 5 failed; slowest ")
}

func TestFanoutStdinJSONGroup(t *testing.T) {
	l := newFleet(t, 2, 9, nil, nil)
	p := strconv.Itoa(l.port)

	// stdin reaches every host whole.
	in := strings.Repeat("abc\n", 50000)
	r := l.rexec(t, in, "-H", "127.0.0.[2-9]", "-p", p, "--no-summary", "sh", "-c", "wc -c; cat name")
	require.Equal(t, 0, r.code, r.stderr)
	for n := 2; n <= 9; n++ {
		assert.Contains(t, r.stdout, fmt.Sprintf("%s: 200000\n", host(n)))
		assert.Contains(t, r.stdout, fmt.Sprintf("%s: host-%d\n", host(n), n))
	}
	assert.NotContains(t, r.stderr, " ok", "--no-summary")

	// -n sends none.
	r = l.rexec(t, in, "-n", "-H", "127.0.0.2", "-p", p, "wc", "-c")
	assert.Equal(t, "127.0.0.2: 0\n", r.stdout)

	// --json: one object per host, exact bytes beside the text.
	r = l.rexec(t, "", "-H", "127.0.0.[2-5],127.0.0.99", "-p", p, "--connect-timeout", "2s", "--timeout", "4s", "--json", "sh", "-c",
		`cat name; printf '\377' ; echo oops >&2; [ "$(cat name)" = host-3 ] && exit 4; [ "$(cat name)" = host-5 ] && exec sleep 60; exit 0`)
	assert.Equal(t, 255, r.code)
	var recs []fanout.HostJSON
	for _, s := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var j fanout.HostJSON
		require.NoError(t, json.Unmarshal([]byte(s), &j), s)
		recs = append(recs, j)
	}
	require.Len(t, recs, 5)
	byHost := map[string]fanout.HostJSON{}
	for _, j := range recs {
		byHost[j.Host] = j
	}
	h2 := byHost["127.0.0.2"]
	assert.Equal(t, "ok", h2.State)
	assert.Equal(t, 0, *h2.ExitCode)
	assert.Equal(t, "host-2\ufffd", h2.Stdout)
	assert.Equal(t, "aG9zdC0y/w==", h2.StdoutBase64, "the exact bytes")
	assert.Equal(t, "oops\n", h2.Stderr)
	assert.Empty(t, h2.StderrBase64)
	h3 := byHost["127.0.0.3"]
	assert.Equal(t, "failed", h3.State)
	assert.Equal(t, 4, h3.Status)
	assert.Equal(t, 4, *h3.ExitCode)
	assert.Equal(t, "exit 4", h3.Error)
	h5 := byHost["127.0.0.5"]
	assert.Equal(t, "timeout", h5.State)
	assert.True(t, h5.TimedOut)
	assert.Equal(t, "TERM", h5.Signal)
	assert.Equal(t, 143, h5.Status)
	assert.Nil(t, h5.ExitCode)
	h99 := byHost["127.0.0.99"]
	assert.Equal(t, "unreachable", h99.State)
	assert.Equal(t, 255, h99.Status)
	assert.Nil(t, h99.ExitCode)
	assert.Contains(t, h99.Error, "connection refused")
	assert.Positive(t, h2.Duration)

	// --group: identical outputs together, in dshbak -c's layout.
	r = l.rexec(t, "", "-H", "127.0.0.[2-9]", "-p", p, "--group", "sh", "-c",
		`case $(cat name) in host-[2-4]) echo small;; host-7) echo seven; exit 2;; *) echo big;; esac`)
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "----------------\n127.0.0.[2-4]\n----------------\nsmall\n"+
		"----------------\n127.0.0.[5-6,8-9]\n----------------\nbig\n"+
		"----------------\n127.0.0.7: failed: exit 2\n----------------\nseven\n", r.stdout)

	// Usage errors.
	for _, args := range [][]string{
		{"-H", "127.0.0.2"},
		{"-H", "127.0.0.2", "-t", "true"},
		{"-H", "127.0.0.2", "--group", "--json", "true"},
		{"-H", "node[3-1]", "true"},
		{"-H", "@/nonexistent/hosts", "true"},
		{"-g", "nogroup", "true"},
		{"-H", "a", "-x", "a", "true"},
		{"-H", "a", "-f", "0", "true"},
		{"-H", "a", "--color", "pink", "true"},
	} {
		r := l.rexec(t, "", args...)
		assert.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
		assert.True(t, strings.HasPrefix(r.stderr, "rexec: "), "%v: %s", args, r.stderr)
		assert.LessOrEqual(t, strings.Count(r.stderr, "\n"), 2, "%v: one line and the pointer to --help: %s", args, r.stderr)
	}
}

func TestFanoutInventory(t *testing.T) {
	l := newFleet(t, 2, 7, nil, nil)
	cfg := filepath.Join(l.config, "rexec", "config.toml")
	require.NoError(t, os.MkdirAll(filepath.Dir(cfg), 0o700))
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
[hosts.first]
host = "127.0.0.2"
port = %d

[groups]
lab = ["first", "127.0.0.[3-4]:%d", "rest"]
rest = ["127.0.0.5:%d"]
loop = ["loop2"]
loop2 = ["loop"]
`, l.port, l.port, l.port)), 0o600))
	hostsFile := filepath.Join(t.TempDir(), "lab.txt")
	require.NoError(t, os.WriteFile(hostsFile, []byte(fmt.Sprintf("# the lab\n127.0.0.6:%d  127.0.0.7:%d # two more\n\n", l.port, l.port)), 0o644))

	r := l.rexec(t, "", "-H", "lab", "-H", "@"+hostsFile, "--color", "always", "cat", "name")
	require.Equal(t, 0, r.code, r.stderr)
	for i, want := range []string{"first", fmt.Sprintf("127.0.0.3:%d", l.port), fmt.Sprintf("127.0.0.7:%d", l.port)} {
		assert.Regexp(t, "\x1b\\[\\d+m"+regexp.QuoteMeta(want)+"\x1b\\[0m: host-", r.stdout, "host %d coloured", i)
	}
	assert.Equal(t, 6, strings.Count(r.stdout, "\n"))
	assert.Contains(t, r.stderr, "rexec: 6 hosts: 6 ok")

	r = l.rexec(t, "", "-g", "lab", "-x", "first", "--color", "never", "cat", "name")
	assert.Equal(t, 3, strings.Count(r.stdout, "\n"), r.stdout)
	assert.NotContains(t, r.stdout, "first")

	r = l.rexec(t, "", "-H", "loop", "true")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "contains itself")
}

// TestFanoutInterrupt: Ctrl-C ends the command on every host, leaves no
// process behind, and still prints the summary; the status is 130.
func TestFanoutInterrupt(t *testing.T) {
	l := newFleet(t, 2, 6, nil, nil)
	sigs := make(chan os.Signal, 1)
	go func() {
		// once every host has started its command
		require.Eventually(t, func() bool {
			for _, dir := range l.dirs {
				if _, err := os.Stat(filepath.Join(dir, "pid")); err != nil {
					return false
				}
			}
			return true
		}, 10*time.Second, 10*time.Millisecond)
		sigs <- syscall.SIGINT
	}()
	start := time.Now()
	r := l.rexecSignals(t, "", sigs, "-H", "127.0.0.[2-6]", "-p", strconv.Itoa(l.port), "sh", "-c", "echo $$ > pid.tmp; mv pid.tmp pid; exec sleep 30")
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, 130, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rexec: 5 hosts: 0 ok, 5 interrupted; slowest ")
	assert.Contains(t, r.stderr, "rexec: interrupted: 127.0.0.[2-6]\n")
	for h, dir := range l.dirs {
		b, err := os.ReadFile(filepath.Join(dir, "pid"))
		require.NoError(t, err)
		pid := atoi(t, strings.TrimSpace(string(b)))
		assert.Eventually(t, func() bool { return !execdtest.ProcessAlive(pid) }, 10*time.Second, 20*time.Millisecond,
			"%s: the command (pid %d) outlived the interrupt", h, pid)
	}
}

// TestFanoutGetResumes cuts a get from three hosts midway, then runs it
// again: each host's copy resumes from its partial file, arrives whole,
// and the second run moves only the rest.
func TestFanoutGetResumes(t *testing.T) {
	ln, err := net.Listen("tcp", host(2)+":0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	l := &fleet{port: port, config: t.TempDir()}
	const size = 8 << 20
	var proxies []*execdtest.Proxy
	want := map[string][]byte{}
	for n := 2; n <= 4; n++ {
		dir := t.TempDir()
		data := bytes.Repeat([]byte(fmt.Sprintf("host %d block\n", n)), size/14)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "big.log"), data, 0o644))
		want[host(n)] = data
		d := execdtest.Start(t, &execd.Server{Dir: dir}, false)
		proxies = append(proxies, execdtest.StartProxyAt(t, fmt.Sprintf("%s:%d", host(n), port), d.Addr))
	}
	hosts := []string{"-H", "127.0.0.[2-4]", "-p", strconv.Itoa(port)}
	require.Equal(t, 0, l.rexec(t, "", append(hosts, "true")...).code) // pin the hosts
	for _, p := range proxies {
		p.CutNext(true, 3<<20)
	}
	out := t.TempDir()
	r := l.rexec(t, "", append([]string{"get"}, append(hosts, ":big.log", out)...)...)
	assert.Equal(t, 255, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rexec: 3 hosts: 0 ok, 3 error")
	before := make([]int64, len(proxies))
	kept := make([]int64, len(proxies))
	for i, p := range proxies {
		before[i] = p.ToClient.Load()
		fi, err := os.Stat(filepath.Join(out, host(i+2), ".big.log.rexec-part"))
		require.NoError(t, err, "%s: the partial copy is kept", host(i+2))
		require.Positive(t, fi.Size())
		kept[i] = fi.Size()
	}
	r = l.rexec(t, "", append([]string{"get"}, append(hosts, ":big.log", out)...)...)
	require.Equal(t, 0, r.code, r.stderr)
	for i, p := range proxies {
		h := host(i + 2)
		got, err := os.ReadFile(filepath.Join(out, h, "big.log"))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want[h], got), "%s: the copy differs", h)
		moved := p.ToClient.Load() - before[i]
		rest := int64(len(want[h])) - kept[i]
		assert.Less(t, moved, rest+256<<10, "%s: the second get resumed after its %d kept bytes (moved %d for the %d left)", h, kept[i], moved, rest)
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
