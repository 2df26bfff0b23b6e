package mux_test

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// downPeer is a hand-driven peer of a Downstream: raw frames both ways.
type downPeer struct {
	t *testing.T
	w *frame.Writer
	r *frame.Reader
}

func (p *downPeer) send(typ frame.Type, ch uint32, msg any) {
	p.t.Helper()
	b, err := frame.Marshal(msg)
	require.NoError(p.t, err)
	require.NoError(p.t, p.w.WriteFrame(typ, 0, ch, b))
}

// next reads the peer's next frame, within a bound.
func (p *downPeer) next() frame.Frame {
	p.t.Helper()
	type read struct {
		f   frame.Frame
		err error
	}
	got := make(chan read, 1)
	go func() {
		f, err := p.r.ReadFrame()
		got <- read{f, err}
	}()
	select {
	case r := <-got:
		require.NoError(p.t, r.err)
		return r.f
	case <-time.After(10 * time.Second):
		p.t.Fatal("no frame from the downstream")
		return frame.Frame{}
	}
}

func (p *downPeer) nextError(ch uint32) frame.ErrorMsg {
	p.t.Helper()
	f := p.next()
	require.Equal(p.t, frame.Error, f.Type, "%s on %d: %s", f.Type, f.Channel, f.Payload)
	require.Equal(p.t, ch, f.Channel)
	var em frame.ErrorMsg
	require.NoError(p.t, frame.Unmarshal(f.Payload, &em))
	return em
}

// A Downstream relays a peer's channels over an upstream session and
// keeps the session's rules for the peer itself: pings, ids, channel 0,
// the frames a client may send, kinds its owner answers.
func TestDownstreamRelays(t *testing.T) {
	up, _ := sessions(t, mux.Config{}, map[string]mux.Handler{frame.KindGet: echo})
	a, b := net.Pipe()
	conn := mux.NewConn(a, nil, 0, 5*time.Second)
	conn.SetPeerMax(frame.DefaultMaxPayload)
	var mu sync.Mutex
	var finished []uint32
	opened := map[uint32]uint32{}
	d := mux.NewDownstream(conn, up, mux.DownstreamHooks{
		Answer: func(id uint32, kind string) (bool, error) {
			if kind != "mine" {
				return false, nil
			}
			p, err := frame.Marshal(&frame.OpenOKMsg{Window: 1, PID: 42})
			require.NoError(t, err)
			_ = conn.Send(frame.OpenOK, 0, id, p) // the peer reads it below
			return true, nil
		},
		Opened: func(id, upID uint32) {
			mu.Lock()
			opened[id] = upID
			mu.Unlock()
		},
		Finished: func(id uint32) {
			mu.Lock()
			finished = append(finished, id)
			mu.Unlock()
		},
	})
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	t.Cleanup(func() { _ = b.Close(); <-served })
	p := &downPeer{t: t, w: frame.NewWriter(b, frame.DefaultMaxPayload), r: frame.NewReader(b, frame.DefaultMaxPayload)}

	require.NoError(t, p.w.WriteFrame(frame.Ping, 0, 0, []byte("12345678")))
	f := p.next()
	assert.Equal(t, frame.Pong, f.Type, "answered by the downstream itself")
	assert.Equal(t, "12345678", string(f.Payload))

	// A relayed get: open_ok, the data and done come back on the peer's id.
	p.send(frame.Open, 5, &frame.OpenMsg{Kind: frame.KindGet, Path: "relayed", Window: 1 << 16})
	var data []byte
	for done := false; !done; {
		f := p.next()
		require.Equal(t, uint32(5), f.Channel)
		switch f.Type {
		case frame.OpenOK:
		case frame.Data:
			data = append(data, f.Payload...)
		case frame.Done:
			done = true
		default:
			t.Fatalf("unexpected %s", f.Type)
		}
	}
	assert.Equal(t, "relayed", string(data))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(finished) == 1 && finished[0] == 5 && opened[5] == 1
	}, 5*time.Second, time.Millisecond, "the channel is told opened (upstream id 1) and finished")

	// A late frame for it is relayed (the upstream drops it), not refused.
	require.NoError(t, p.w.WriteFrame(frame.Close, 0, 5, nil))
	// Ids: even, or not above the last, are refused; a frame for a channel
	// never opened is answered no_such_channel.
	p.send(frame.Open, 4, &frame.OpenMsg{Kind: frame.KindGet, Path: "x", Window: 1})
	assert.Equal(t, frame.CodeChannelInUse, p.nextError(4).Code)
	p.send(frame.Open, 3, &frame.OpenMsg{Kind: frame.KindGet, Path: "x", Window: 1})
	assert.Equal(t, frame.CodeChannelInUse, p.nextError(3).Code)
	require.NoError(t, p.w.WriteFrame(frame.Stdin, 0, 99, []byte("x")))
	assert.Equal(t, frame.CodeNoChannel, p.nextError(99).Code)

	// A kind the owner answers never goes upstream; another it does not
	// know is refused as the protocol refuses it.
	p.send(frame.Open, 7, map[string]any{"kind": "mine", "window": 1})
	f = p.next()
	assert.Equal(t, frame.OpenOK, f.Type)
	assert.Equal(t, uint32(7), f.Channel)
	p.send(frame.Open, 9, map[string]any{"kind": "theirs", "window": 1})
	assert.Equal(t, frame.CodeInvalid, p.nextError(9).Code)
	assert.Equal(t, 0, up.NumChannels(), "nothing of them upstream")

	// A frame a client may not send ends the peer's connection, told why.
	require.NoError(t, p.w.WriteFrame(frame.Stdout, 0, 5, []byte("x")))
	assert.Equal(t, frame.CodeUnexpected, p.nextError(0).Code)
	_ = b.Close()
	select {
	case err := <-served:
		var v *mux.Violation
		assert.True(t, errors.As(err, &v), "%v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	served <- nil // for the cleanup
}
