package rexec_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// recorder keeps the headers a side sent and received.
type recorder struct {
	mu       sync.Mutex
	sent     []frame.Header
	received []frame.Header
}

func (r *recorder) TraceFrame(out bool, h frame.Header, _ []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if out {
		r.sent = append(r.sent, h)
	} else {
		r.received = append(r.received, h)
	}
}

func (r *recorder) lists() ([]frame.Header, []frame.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]frame.Header(nil), r.sent...), append([]frame.Header(nil), r.received...)
}

// Both ends' tracers see every frame: what one sent, the other received,
// in order.
func TestTraceBothEnds(t *testing.T) {
	var server recorder
	d := execdtest.Start(t, &execd.Server{Tracer: func(string) frame.Tracer { return &server }}, false)
	var client recorder
	c, err := rexec.Dial(t.Context(), d.Addr, &rexec.Config{HostKeyCallback: rexec.InsecureIgnoreHostKey(), Tracer: &client})
	require.NoError(t, err)
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.Output(t.Context(), "sh", "-c", "head -c 300000 /dev/zero; echo done >&2")
	require.NoError(t, err)
	assert.Len(t, out, 300000)
	require.NoError(t, c.Close())

	cs, cr := client.lists()
	require.Eventually(t, func() bool {
		_, sr := server.lists()
		return len(sr) >= len(cs)
	}, 5*time.Second, 10*time.Millisecond)
	ss, sr := server.lists()
	assert.Equal(t, cs, sr[:len(cs)], "the daemon received what rexec sent")
	assert.Equal(t, ss[:len(cr)], cr, "rexec received what the daemon sent")
	types := map[frame.Type]int{}
	for _, h := range cr {
		types[h.Type]++
	}
	assert.Equal(t, frame.Hello, cs[0].Type)
	assert.Positive(t, types[frame.Stdout])
	assert.Equal(t, 1, types[frame.Exit])
	var bytes uint32
	for _, h := range cr {
		if h.Type == frame.Stdout {
			bytes += h.Length
		}
	}
	assert.Equal(t, uint32(300000), bytes, "every stdout byte was traced")
}
