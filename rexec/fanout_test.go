package rexec_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/rexec"
)

// fanLab is a few daemons named h0, h1, ... and a Fanout that dials them
// (any other name is a host that does not exist).
func fanLab(t *testing.T, n int) (*rexec.Fanout, []string) {
	addrs := map[string]*execdtest.Server{}
	var names []string
	for i := range n {
		name := fmt.Sprintf("h%d", i)
		addrs[name] = execdtest.Start(t, &execd.Server{KillGrace: 500 * time.Millisecond}, false)
		names = append(names, name)
	}
	return &rexec.Fanout{Dial: func(ctx context.Context, host string) (*rexec.Client, error) {
		d, ok := addrs[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		return rexec.Dial(ctx, d.Addr, &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey()})
	}}, names
}

func TestFanoutLimitAndOrder(t *testing.T) {
	fo, hosts := fanLab(t, 6)
	fo.Limit = 2
	var inFlight, most atomic.Int32
	var calls atomic.Int32
	results := fo.Run(t.Context(), append(hosts, "nowhere"), func(ctx context.Context, host string, c *rexec.Client) error {
		now := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if now <= m || most.CompareAndSwap(m, now) {
				break
			}
		}
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		out, err := s.Output(ctx, "sh", "-c", "sleep 0.1; echo "+host)
		if err == nil && strings.TrimSpace(string(out)) != host {
			return fmt.Errorf("output %q", out)
		}
		return err
	}, func(rexec.HostResult) { calls.Add(1) })
	require.Len(t, results, 7)
	for i, h := range hosts {
		assert.Equal(t, h, results[i].Host, "results in the order of hosts")
		assert.NoError(t, results[i].Err)
		assert.False(t, results[i].Unreachable())
		assert.GreaterOrEqual(t, results[i].Duration(), 100*time.Millisecond)
	}
	assert.Equal(t, "nowhere", results[6].Host)
	assert.True(t, results[6].Unreachable())
	var he *rexec.HostError
	require.ErrorAs(t, results[6].Err, &he)
	assert.Equal(t, rexec.StageConnect, he.Stage)
	assert.Equal(t, int32(2), most.Load(), "never more than Limit hosts at once")
	assert.Equal(t, int32(7), calls.Load(), "done is called for every host")
}

func TestFanoutTimeoutAndCancel(t *testing.T) {
	fo, hosts := fanLab(t, 3)
	fo.Timeout = 300 * time.Millisecond
	start := time.Now()
	results := fo.Run(t.Context(), hosts, func(ctx context.Context, host string, c *rexec.Client) error {
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		if host == "h1" {
			return s.Run(ctx, "sleep", "10") // overruns the host's time limit
		}
		return s.Run(ctx, "true")
	}, nil)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.NoError(t, results[0].Err)
	assert.NoError(t, results[2].Err)
	require.ErrorIs(t, results[1].Err, rexec.ErrHostTimeout)
	assert.False(t, results[1].Unreachable(), "it was reached; it was slow")

	// A cancelled run starts no more hosts.
	ctx, cancel := context.WithCancel(t.Context())
	fo.Timeout, fo.Limit = 0, 1
	results = fo.Run(ctx, hosts, func(ctx context.Context, host string, c *rexec.Client) error {
		cancel()
		return nil
	}, nil)
	assert.NoError(t, results[0].Err)
	for _, r := range results[1:] {
		assert.ErrorIs(t, r.Err, context.Canceled)
	}
}
