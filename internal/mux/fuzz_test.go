package mux_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// frames encodes a sequence of frames, for seeds.
func frames(fs ...frame.Frame) []byte {
	var b bytes.Buffer
	w := frame.NewWriter(&b, frame.MaxMaxPayload)
	for _, f := range fs {
		_ = w.WriteFrame(f.Type, f.Flags, f.Channel, f.Payload)
	}
	return b.Bytes()
}

func jsonFrame(t frame.Type, ch uint32, msg any) frame.Frame {
	p, _ := frame.Marshal(msg)
	return frame.Frame{Header: frame.Header{Type: t, Channel: ch}, Payload: p}
}

// FuzzSessionFrames feeds a daemon's Session whatever a client may send
// after its hello: the session must neither panic nor hang, and must end
// when the client's bytes do.
func FuzzSessionFrames(f *testing.F) {
	open := jsonFrame(frame.Open, 1, &frame.OpenMsg{Kind: frame.KindExec, Argv: []string{"x"}, Window: 1 << 16})
	f.Add(frames(open, frame.Frame{Header: frame.Header{Type: frame.Stdin, Channel: 1}, Payload: []byte("data")},
		frame.Frame{Header: frame.Header{Type: frame.Stdin, Flags: frame.FlagEOF, Channel: 1}}))
	f.Add(frames(open, jsonFrame(frame.Window, 1, &frame.WindowMsg{Stream: frame.Stdout, Credit: 10}),
		jsonFrame(frame.Signal, 1, &frame.SignalMsg{Signal: "INT"}), frame.Frame{Header: frame.Header{Type: frame.Close, Channel: 1}}))
	f.Add(frames(open, open, jsonFrame(frame.Open, 3, &frame.OpenMsg{Kind: frame.KindGet, Path: "x", Window: 1}),
		frame.Frame{Header: frame.Header{Type: frame.Ping}, Payload: []byte("12345678")}))
	f.Add(frames(jsonFrame(frame.Error, 1, &frame.ErrorMsg{Code: frame.CodeInternal, Message: "x"}),
		frame.Frame{Header: frame.Header{Type: frame.Stdin, Channel: 7}, Payload: []byte("?")}))
	f.Add(frames(open, frame.Frame{Header: frame.Header{Type: frame.Data, Channel: 1}, Payload: []byte("no such stream")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() {
			// The client: hello, the fuzzer's bytes, then its end; the
			// daemon's output is drained so that it never blocks.
			go func() { _, _ = io.Copy(io.Discard, b) }()
			_, _ = b.Write(frames(jsonFrame(frame.Hello, 0, &frame.HelloMsg{Software: "fuzz", MaxPayload: frame.DefaultMaxPayload})))
			_, _ = b.Write(data)
			_ = b.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := mux.Accept(ctx, a, nil, mux.Config{MaxChannels: 4})
		if err != nil {
			return
		}
		accept := func(nc mux.NewChannel) {
			nc.Inbound(frame.Stdin, 1<<16)
			nc.Outbound(frame.Stdout, nc.OpenMsg().Window)
			nc.OnControl(frame.Signal, mux.On(func(*mux.Channel, *frame.SignalMsg) error { return nil }))
			_, _ = nc.Accept(&frame.OpenOKMsg{Window: 1 << 16})
		}
		s.Handle(frame.KindExec, accept)
		s.Handle(frame.KindGet, func(nc mux.NewChannel) { nc.Reject(frame.CodeNotFound, "none") })
		s.Start(context.Background())
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the session did not end when its peer did")
		}
	})
}
