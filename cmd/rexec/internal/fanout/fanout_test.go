package fanout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/cmd/rexec/internal/fanout"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

func result(host string, err error) rexec.HostResult {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return rexec.HostResult{Host: host, Err: err, Start: t0, End: t0.Add(time.Duration(len(host)) * time.Millisecond)}
}

func TestClassify(t *testing.T) {
	refused := &rexec.HostError{Host: "h", Stage: rexec.StageConnect, Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name   string
		err    error
		state  string
		status int
		reason string
	}{
		{"ok", nil, fanout.StateOK, 0, ""},
		{"exit 3", &rexec.ExitError{Exit: rexec.Exit{Status: 3}}, fanout.StateFailed, 3, "exit 3"},
		{"windows exit 256", &rexec.ExitError{Exit: rexec.Exit{Status: 256}}, fanout.StateFailed, 1, "exit 256"},
		{"killed", &rexec.ExitError{Exit: rexec.Exit{Signal: "KILL"}}, fanout.StateFailed, 137, "killed by SIGKILL"},
		{"timed out", &rexec.ExitError{Exit: rexec.Exit{Signal: "TERM", TimedOut: true}}, fanout.StateTimedOut, 143, "time limit reached, killed by SIGTERM"},
		{"not found", &rexec.RemoteError{Code: frame.CodeExecFailed, Message: "nope: not found"}, fanout.StateFailed, 127, "nope: not found"},
		{"interrupted", context.Canceled, fanout.StateInterrupted, 255, "interrupted"},
		{"unreachable", refused, fanout.StateUnreachable, 255, "connection refused"},
		{"refused login", &rexec.HostError{Host: "h", Stage: rexec.StageConnect, Err: &rexec.AuthError{Addr: "h:1", User: "u"}}, fanout.StateRefused, 255, ""},
		{"host time limit", &rexec.HostError{Host: "h", Stage: rexec.StageConnect, Err: fmt.Errorf("x: %w", rexec.ErrHostTimeout)}, fanout.StateTimedOut, 255, "host time limit reached"},
		{"files failed", &fanout.TransferError{Err: errors.New("rexec: a: not found\nrexec: b: not found")}, fanout.StateFailed, 1, "a: not found (and 1 more)"},
		{"transfer cut", &fanout.TransferError{Err: fmt.Errorf("%w: reset", rexec.ErrConnectionLost)}, fanout.StateError, 255, ""},
		{"lost", fmt.Errorf("%w: reset", rexec.ErrConnectionLost), fanout.StateError, 255, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := fanout.Classify(result("h", tc.err))
			assert.Equal(t, tc.state, o.State)
			assert.Equal(t, tc.status, o.Status)
			if tc.reason != "" {
				assert.Equal(t, tc.reason, o.Reason)
			}
		})
	}
}

func TestWorstAndSummary(t *testing.T) {
	results := []rexec.HostResult{
		result("a1", nil), result("a2", &rexec.ExitError{Exit: rexec.Exit{Status: 2}}), result("a3", &rexec.ExitError{Exit: rexec.Exit{Status: 2}}),
		result("slowest-host", context.Canceled),
	}
	assert.Equal(t, 255, fanout.Worst(results))
	assert.Equal(t, 2, fanout.Worst(results[:3]))
	var b bytes.Buffer
	fanout.Summary(&b, results)
	assert.Equal(t, "rexec: 4 hosts: 1 ok, 2 failed, 1 interrupted; slowest slowest-host (12ms)\n"+
		"rexec: failed: a[2-3]: exit 2\n"+
		"rexec: interrupted: slowest-host\n", b.String())
}

func TestPrinterPrefixes(t *testing.T) {
	var out, errb bytes.Buffer
	p := fanout.NewPrinter(&out, &errb, []string{"a", "b"}, fanout.Mode{}, false)
	ao, ae := p.Writers("a")
	bo, _ := p.Writers("b")
	_, _ = ao.Write([]byte("one\ntw"))
	_, _ = bo.Write([]byte("B1\n"))
	_, _ = ao.Write([]byte("o\nthree"))
	_, _ = ae.Write([]byte("\x1b]0;title\x07 err\n"))
	p.Done(result("a", nil))
	p.Done(result("b", &rexec.ExitError{Exit: rexec.Exit{Signal: "KILL"}}))
	p.Finish(nil)
	assert.Equal(t, "a: one\nb: B1\na: two\na: three\n", out.String(), "whole lines, each with its host; an unfinished last line is ended")
	assert.Equal(t, "a: \x1b]0;title\x07 err\nb: rexec: killed by SIGKILL\n", errb.String(), "output as it is; rexec's own lines escaped")
}

func TestPrinterGroupAndJSON(t *testing.T) {
	hosts := []string{"n1", "n2", "n3"}
	results := []rexec.HostResult{result("n1", nil), result("n2", nil), result("n3", &rexec.ExitError{Exit: rexec.Exit{Status: 1}})}
	run := func(mode fanout.Mode) (string, string) {
		var out, errb bytes.Buffer
		p := fanout.NewPrinter(&out, &errb, hosts, mode, false)
		for i, h := range hosts {
			o, _ := p.Writers(h)
			text := "same\n"
			if i == 2 {
				text = "other \xff\n"
			}
			_, _ = o.Write([]byte(text))
		}
		for _, r := range results {
			p.Done(r)
		}
		p.Finish(results)
		return out.String(), errb.String()
	}
	out, _ := run(fanout.Mode{Group: true})
	assert.Equal(t, "----------------\nn[1-2]\n----------------\nsame\n----------------\nn3: failed: exit 1\n----------------\nother \xff\n", out)

	out, _ = run(fanout.Mode{JSON: true})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	var j fanout.HostJSON
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &j))
	assert.Equal(t, "n3", j.Host)
	assert.Equal(t, fanout.StateFailed, j.State)
	assert.Equal(t, 1, *j.ExitCode)
	assert.Equal(t, "b3RoZXIg/wo=", j.StdoutBase64, "bytes that are not UTF-8 are given exactly")
}

func TestFailureLines(t *testing.T) {
	r := result("web1", &rexec.HostError{Host: "web1", Stage: "transfer", Err: errors.New("rexec: a\x1b[2J: gone\nrexec: b: gone")})
	assert.Equal(t, "web1: rexec: a\\033[2J: gone\nweb1: rexec: b: gone\n", string(fanout.FailureLines(r)))
}
