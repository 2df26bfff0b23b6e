package mux_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// sessions connects a client and a daemon Session over loopback TCP,
// plaintext; handlers are registered on the daemon before it starts.
func sessions(t *testing.T, cfg mux.Config, handlers map[string]mux.Handler) (client, daemon *mux.Session) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type accepted struct {
		s   *mux.Session
		err error
	}
	got := make(chan accepted, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			got <- accepted{nil, err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := mux.Accept(ctx, nc, nil, cfg)
		if err == nil {
			err = s.SendHello(&frame.HelloMsg{Software: "test-daemon"})
		}
		if err != nil {
			_ = nc.Close()
		}
		got <- accepted{s, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	client, err = mux.Dial(ctx, nc, nil, mux.Config{}, &frame.HelloMsg{Software: "test-client"})
	require.NoError(t, err)
	a := <-got
	require.NoError(t, a.err)
	daemon = a.s
	for kind, h := range handlers {
		daemon.Handle(kind, h)
	}
	daemon.Start(context.Background())
	client.Start(context.Background())
	t.Cleanup(func() {
		_ = client.Close()
		_ = daemon.Close()
		<-client.Done()
		<-daemon.Done()
	})
	assert.Equal(t, "test-daemon", client.Peer().Software)
	assert.Equal(t, "test-client", daemon.Peer().Software)
	return client, daemon
}

// echo accepts a get-kind channel that sends back, on Data, what its
// opener's Open path names, then finishes with done.
func echo(nc mux.NewChannel) {
	out := nc.Outbound(frame.Data, nc.OpenMsg().Window)
	ch, err := nc.Accept(&frame.OpenOKMsg{Window: 1})
	if err != nil {
		return
	}
	go func() {
		_, _ = out.Write([]byte(nc.OpenMsg().Path))
		_ = out.Close()
		_ = ch.SendJSON(frame.Done, &frame.DoneMsg{Size: uint64(len(nc.OpenMsg().Path)), Hash: strings.Repeat("0", 64)})
		ch.Finish()
	}()
}

func TestSessionOpenDataFinish(t *testing.T) {
	client, daemon := sessions(t, mux.Config{}, map[string]mux.Handler{frame.KindGet: echo})
	var done frame.DoneMsg
	ch, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindGet, Path: "hello over the mux", Window: 1 << 16}, func(ch *mux.Channel) {
		ch.Inbound(frame.Data, 1<<16)
		ch.OnControl(frame.Done, mux.On(func(ch *mux.Channel, m *frame.DoneMsg) error {
			done = *m
			ch.Finish()
			return nil
		}))
	})
	require.NoError(t, err)
	assert.Equal(t, uint32(1), ch.ID(), "a client's first channel is 1")
	assert.Equal(t, frame.KindGet, ch.Kind())
	require.NotNil(t, ch.OpenOK())
	b, err := io.ReadAll(ch.ReaderOf(frame.Data))
	require.NoError(t, err)
	assert.Equal(t, "hello over the mux", string(b))
	require.NoError(t, ch.Wait())
	st, err := ch.State()
	assert.Equal(t, mux.Finished, st)
	assert.NoError(t, err)
	assert.Equal(t, uint64(18), done.Size)
	assert.ErrorIs(t, context.Cause(ch.Context()), mux.ErrChannelClosed, "its context ends with it")
	require.Eventually(t, func() bool { return client.NumChannels() == 0 && daemon.NumChannels() == 0 }, 5*time.Second, time.Millisecond,
		"both tables forget a finished channel")
}

func TestSessionRefusals(t *testing.T) {
	reject := func(nc mux.NewChannel) { nc.Reject(frame.CodeNotPermitted, "not for you") }
	client, _ := sessions(t, mux.Config{MaxChannels: 1}, map[string]mux.Handler{
		frame.KindPut: reject,
		frame.KindFS:  func(nc mux.NewChannel) { _, _ = nc.Accept(&frame.OpenOKMsg{Window: 1}) },
	})
	tests := []struct {
		name string
		kind string
		code frame.Code
	}{
		{"handler rejects", frame.KindPut, frame.CodeNotPermitted},
		{"no handler", frame.KindExec, frame.CodeNotSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &frame.OpenMsg{Kind: tc.kind, Path: "x", Argv: []string{"true"}, Window: 1}
			_, err := client.Open(t.Context(), m, nil)
			var re *frame.RemoteError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.code, re.Code)
			var em *frame.ErrorMsg
			require.ErrorAs(t, err, &em, "the wire message is found through it")
			assert.Equal(t, tc.code, em.Code)
		})
	}
	t.Run("channel limit", func(t *testing.T) {
		_, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindFS, Window: 1}, nil)
		require.NoError(t, err, "the first channel stays open")
		_, err = client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindFS, Window: 1}, nil)
		var re *frame.RemoteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, frame.CodeTooManyChannels, re.Code)
	})
}

func TestSessionLossFailsEveryChannel(t *testing.T) {
	opened := make(chan mux.NewChannel, 4)
	client, daemon := sessions(t, mux.Config{}, map[string]mux.Handler{frame.KindExec: func(nc mux.NewChannel) {
		nc.Inbound(frame.Stdin, 1<<16)
		out := nc.Outbound(frame.Stdout, nc.OpenMsg().Window)
		if _, err := nc.Accept(&frame.OpenOKMsg{Window: 1 << 16}); err == nil {
			_, _ = out.Write([]byte("before the cut"))
		}
		opened <- nc
	}})
	var chans []*mux.Channel
	for range 3 {
		ch, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindExec, Argv: []string{"x"}, Window: 1 << 16}, func(ch *mux.Channel) {
			ch.Inbound(frame.Stdout, 1<<16)
			ch.Sends(frame.Stdin)
		})
		require.NoError(t, err)
		require.NotNil(t, ch.Out(frame.Stdin), "a declared stream exists once the open is confirmed")
		chans = append(chans, ch)
	}
	var served []mux.NewChannel
	for range 3 {
		served = append(served, <-opened)
	}
	// Every channel has its output buffered when the connection drops.
	for _, ch := range chans {
		require.Eventually(t, func() bool { return ch.ReaderOf(frame.Stdout).(*mux.Inbound).Buffered() == 14 }, 5*time.Second, time.Millisecond)
	}
	_ = daemon.Close()
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := io.ReadAll(ch.ReaderOf(frame.Stdout))
			assert.Equal(t, "before the cut", string(b), "what arrived is delivered")
			assert.ErrorIs(t, err, mux.ErrLost)
			assert.ErrorIs(t, ch.Wait(), mux.ErrLost)
			st, _ := ch.State()
			assert.Equal(t, mux.Lost, st)
			_, err = ch.Out(frame.Stdin).Write([]byte("x"))
			assert.ErrorIs(t, err, mux.ErrLost, "writers fail too")
		}()
	}
	wg.Wait()
	for _, nc := range served {
		<-nc.Done()
		assert.ErrorIs(t, context.Cause(nc.Context()), mux.ErrLost)
	}
	<-client.Done()
	assert.ErrorIs(t, client.Wait(), mux.ErrPeerClosed)
	_, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindExec, Argv: []string{"x"}, Window: 1}, nil)
	assert.Error(t, err, "no open on an ended session")
}

func TestSessionPeerCloseAndGoAway(t *testing.T) {
	opened := make(chan mux.NewChannel, 1)
	closed := errors.New("daemon stopped")
	client, daemon := sessions(t, mux.Config{}, map[string]mux.Handler{frame.KindFS: func(nc mux.NewChannel) {
		if _, err := nc.Accept(&frame.OpenOKMsg{Window: 1}); err == nil {
			opened <- nc
		}
	}})
	ch, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindFS, Window: 1}, nil)
	require.NoError(t, err)
	served := <-opened
	daemon.GoAway("maintenance", closed)
	require.Eventually(t, func() bool { return client.GoneAway() == "maintenance" }, 5*time.Second, time.Millisecond)
	_, err = client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindFS, Window: 1}, nil)
	require.ErrorIs(t, err, mux.ErrGoAway)

	ch.Close(nil) // the client abandons its channel: the last one
	<-served.Done()
	assert.ErrorIs(t, context.Cause(served.Context()), mux.ErrAbandoned)
	<-daemon.Done()
	assert.ErrorIs(t, daemon.Wait(), closed, "after go-away, the last channel's end closes the connection")
	<-client.Done()
}

func TestSessionIdleTimeout(t *testing.T) {
	idle := errors.New("idle")
	client, daemon := sessions(t, mux.Config{IdleTimeout: 100 * time.Millisecond, IdleError: idle}, nil)
	start := time.Now()
	<-client.Done()
	var re *frame.RemoteError
	require.ErrorAs(t, client.Wait(), &re)
	assert.Equal(t, frame.CodeIdleTimeout, re.Code)
	assert.ErrorIs(t, daemon.Wait(), idle)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestSessionViolation(t *testing.T) {
	opened := make(chan *mux.Channel, 1)
	client, daemon := sessions(t, mux.Config{}, map[string]mux.Handler{frame.KindFS: func(nc mux.NewChannel) {
		if ch, err := nc.Accept(&frame.OpenOKMsg{Window: 1}); err == nil {
			opened <- ch
		}
	}})
	_, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindFS, Window: 1}, nil)
	require.NoError(t, err)
	ch := <-opened
	// Stdout is not the daemon's to receive: the client's session ends
	// the connection with unexpected_frame, and tells the daemon why.
	require.NoError(t, ch.Send(frame.Stdout, []byte("x")))
	<-client.Done()
	var v *mux.Violation
	require.ErrorAs(t, client.Wait(), &v)
	assert.Equal(t, frame.CodeUnexpected, v.Code)
	<-daemon.Done()
	var re *frame.RemoteError
	require.ErrorAs(t, daemon.Wait(), &re)
	assert.Equal(t, frame.CodeUnexpected, re.Code)
}

// TestSessionDataAfterLocalEnd has the daemon end channels while the
// client still sends their stdin and its EOF: what crosses the end on the
// wire is dropped, never taken for a violation (a bench run once saw a
// command's late EOF end the whole connection).
func TestSessionDataAfterLocalEnd(t *testing.T) {
	client, _ := sessions(t, mux.Config{}, map[string]mux.Handler{frame.KindExec: func(nc mux.NewChannel) {
		in := nc.Inbound(frame.Stdin, 1<<16)
		ch, err := nc.Accept(&frame.OpenOKMsg{Window: 1 << 16})
		if err != nil {
			return
		}
		in.CloseWithError(io.ErrClosedPipe) // as a command that exits without reading does
		_ = ch.SendJSON(frame.Exit, &frame.ExitMsg{})
		ch.Finish()
	}})
	for i := range 300 {
		ch, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindExec, Argv: []string{"true"}, Window: 1 << 16}, func(ch *mux.Channel) {
			ch.Sends(frame.Stdin)
			ch.OnControl(frame.Exit, mux.On(func(ch *mux.Channel, _ *frame.ExitMsg) error { ch.Finish(); return nil }))
		})
		require.NoError(t, err, "open %d", i)
		_, _ = ch.Out(frame.Stdin).Write([]byte("late"))
		_ = ch.Out(frame.Stdin).Close()
		require.NoError(t, ch.Wait(), "channel %d", i)
	}
	require.NoError(t, client.Err(), "the connection survived every late frame")
}

// An open confirmed and then lost at once (a reset right behind the
// open_ok) succeeds; the loss is the channel's end, found by Wait. The
// daemon closes right after confirming, so that in many of the rounds the
// loss reaches the client before its opener wakes.
func TestSessionOpenConfirmedThenLost(t *testing.T) {
	for range 100 {
		var daemon *mux.Session
		accepted := make(chan struct{})
		client, d := sessions(t, mux.Config{}, map[string]mux.Handler{frame.KindFS: func(nc mux.NewChannel) {
			<-accepted // daemon is set
			if _, err := nc.Accept(&frame.OpenOKMsg{Window: 1}); err == nil {
				_ = daemon.Close()
			}
		}})
		daemon = d
		close(accepted)
		ch, err := client.Open(t.Context(), &frame.OpenMsg{Kind: frame.KindFS, Window: 1}, nil)
		require.NoError(t, err, "confirmed, then lost: the open succeeded")
		assert.ErrorIs(t, ch.Wait(), mux.ErrLost)
	}
}
