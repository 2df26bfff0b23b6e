//go:build unix

package main_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape reads url's metrics with Prometheus's own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value is the value of the family's metric with exactly these labels
// (counter, gauge, or a histogram's count); 0 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for i, l := range m.GetLabel() {
			if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func httpStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Issue 15 item 5: a scripted session, then every counter checked against
// what was done, through the Prometheus text parser; /healthz and
// /readyz, and /readyz failing once the daemon shuts down.
func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	maddr := freeAddr(t)
	d := startDaemon(t, state, "--metrics", maddr)
	base := "http://" + maddr
	c := newClient(t)

	code, body := httpStatus(t, base+"/healthz")
	assert.Equal(t, 200, code, body)
	code, body = httpStatus(t, base+"/readyz")
	assert.Equal(t, 200, code, body)

	// Five commands: success, failure, signal, output on both streams,
	// stdin through cat.
	require.Equal(t, 0, c.run("", d.addr, "true").code)
	require.Equal(t, 3, c.run("", d.addr, "sh", "-c", "exit 3").code)
	require.NotEqual(t, 0, c.run("", d.addr, "sh", "-c", "kill -KILL $$").code)
	require.Equal(t, result{"12345", "678", 0}, c.run("", d.addr, "sh", "-c", "printf 12345; printf 678 >&2"))
	require.Equal(t, result{"abcdefg", "", 0}, c.run("abcdefg", d.addr, "cat"))
	// A put and a get of 1000 bytes, then a put over a 2 KiB quota.
	_, port, _ := strings.Cut(d.addr, ":")
	local := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(local, []byte(strings.Repeat("x", 1000)), 0o600))
	r := c.run("", "put", "-q", "-p", port, local, "127.0.0.1:f")
	require.Equal(t, 0, r.code, r.stderr)
	r = c.run("", "get", "-q", "-p", port, "127.0.0.1:f", local+".back")
	require.Equal(t, 0, r.code, r.stderr)
	user := regexp.MustCompile(`created user (\S+) `).FindStringSubmatch(d.log.String())
	require.NotNil(t, user, d.log.String())
	out, err := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "user", "set", user[1], "--quota", "2KiB", "--confine").CombinedOutput() // quotas keep confined users
	require.NoError(t, err, string(out))
	require.NoError(t, os.WriteFile(local, []byte(strings.Repeat("y", 4000)), 0o600))
	r = c.run("", "put", "-q", "-p", port, local, "127.0.0.1:big")
	require.NotEqual(t, 0, r.code)
	assert.Contains(t, r.stderr, "quota")
	// A login with a key the daemon does not know for that user.
	r = c.run("", "nobody@"+d.addr, "true")
	require.Equal(t, 255, r.code)

	want := []struct {
		want   float64
		name   string
		labels []string
	}{
		{5, "execd_commands_started_total", nil},
		{3, "execd_commands_exited_total", []string{"class", "success"}},
		{1, "execd_commands_exited_total", []string{"class", "failure"}},
		{1, "execd_commands_exited_total", []string{"class", "signal"}},
		{5, "execd_channels_total", []string{"kind", "exec"}},
		{2, "execd_channels_total", []string{"kind", "put"}},
		{1, "execd_channels_total", []string{"kind", "get"}},
		{5 + 7, "execd_bytes_total", []string{"direction", "out", "stream", "stdout"}},
		{3, "execd_bytes_total", []string{"direction", "out", "stream", "stderr"}},
		{7, "execd_bytes_total", []string{"direction", "in", "stream", "stdin"}},
		{1000, "execd_bytes_total", []string{"direction", "in", "stream", "file"}},
		{1000, "execd_bytes_total", []string{"direction", "out", "stream", "file"}},
		{1, "execd_transfer_duration_seconds", []string{"kind", "put"}},
		{1, "execd_transfer_duration_seconds", []string{"kind", "get"}},
		{1, "execd_quota_refusals_total", nil},
		{5 + 3, "execd_logins_total", []string{"method", "publickey", "result", "ok"}},
		{1, "execd_connections_refused_total", []string{"reason", "login"}},
		{0, "execd_channels_open", []string{"kind", "exec"}},
		{1, "execd_build_info", []string{"version", regexp.MustCompile(`version=(\S+)`).FindStringSubmatch(d.log.String())[1]}},
	}
	// A connection's end is counted once the daemon has seen it, which
	// may be a moment after the client exited: scrape until all match.
	var fams map[string]*dto.MetricFamily
	matches := func() bool {
		fams = scrape(t, base+"/metrics")
		for _, tc := range want {
			if value(fams, tc.name, tc.labels...) != tc.want {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !matches() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, tc := range want {
		assert.Equal(t, tc.want, value(fams, tc.name, tc.labels...), "%s%v", tc.name, tc.labels)
	}
	assert.GreaterOrEqual(t, value(fams, "execd_logins_total", "method", "publickey", "result", "failed"), 1.0)
	assert.Equal(t, value(fams, "execd_login_throttle_seconds"), value(fams, "execd_logins_total", "method", "publickey", "result", "ok")+
		value(fams, "execd_logins_total", "method", "publickey", "result", "failed"), "every login attempt passes the throttle once")
	assert.NotNil(t, fams["go_goroutines"], "Go runtime metrics")
	assert.NotNil(t, fams["process_resident_memory_bytes"], "process metrics")

	// While a command holds the shutdown, the daemon is alive but not ready.
	held, stdin, _, _ := c.startHeld(d.addr, "echo started; read x")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { code, _ := httpStatus(t, base+"/readyz"); return code == 503 }, 10*time.Second, 10*time.Millisecond)
	code, _ = httpStatus(t, base+"/healthz")
	assert.Equal(t, 200, code)
	fams = scrape(t, base+"/metrics")
	assert.Equal(t, 1.0, value(fams, "execd_channels_open", "kind", "exec"), "the held command")
	_ = stdin.Close()
	_ = held.Wait()
	<-d.exited
}

// Issue 27 item 3: idle connections to the metrics endpoint cannot take
// the daemon's descriptors: under a 256-file limit, 300 connections that
// ask /healthz once and then idle leave logins working.
func TestE2EMetricsFloodLeavesLogins(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	t.Parallel()
	maddr := freeAddr(t)
	d := startDaemonUnder(t, []string{"prlimit", "--nofile=256:256"}, freeAddr(t), t.TempDir(), "--metrics", maddr)
	c := newClient(t)
	require.Equal(t, 0, c.run("", d.addr, "true").code)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, nc := range conns {
			_ = nc.Close()
		}
	})
	for range 300 {
		nc, err := net.DialTimeout("tcp", maddr, 5*time.Second)
		require.NoError(t, err) // past the cap, the kernel's backlog holds it
		conns = append(conns, nc)
		_, _ = io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: execd\r\n\r\n") // then idle, kept alive
	}
	start := time.Now()
	r := c.run("", d.addr, "echo", "still served")
	assert.Equal(t, result{"still served\n", "", 0}, r)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.True(t, d.running())
}

// /metrics behind a bearer token (--metrics-token-file): refused without
// it or with another, served with it; the health checks stay open.
func TestE2EMetricsToken(t *testing.T) {
	t.Parallel()
	tokFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600))
	maddr := freeAddr(t)
	startDaemon(t, t.TempDir(), "--metrics", maddr, "--metrics-token-file", tokFile)
	get := func(path, auth string) int {
		req, err := http.NewRequest("GET", "http://"+maddr+path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 401, get("/metrics", ""))
	assert.Equal(t, 401, get("/metrics", "Bearer 0123456789abcdef0123456789abcdeX"))
	assert.Equal(t, 200, get("/metrics", "Bearer 0123456789abcdef0123456789abcdef"))
	assert.Equal(t, 200, get("/healthz", ""))

	short := filepath.Join(t.TempDir(), "short")
	require.NoError(t, os.WriteFile(short, []byte("abc\n"), 0o600))
	out, code := execdOut(t, "--listen", freeAddr(t), "--state-dir", t.TempDir(), "--config", os.DevNull, "--metrics", freeAddr(t), "--metrics-token-file", short)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "use at least 16")
}
