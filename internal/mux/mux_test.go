package mux_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/testmain"
)

func TestMain(m *testing.M) { testmain.Main(m, testmain.Options{Goroutines: true}) }

// pair returns a Conn and a frame reader of what it sends.
func pair(t *testing.T) (*mux.Conn, *frame.Reader, net.Conn) {
	a, b := net.Pipe()
	c := mux.NewConn(a, nil, 0, time.Second)
	c.SetPeerMax(frame.DefaultMaxPayload)
	t.Cleanup(func() { _ = c.Close(); _ = b.Close() })
	return c, frame.NewReader(b, 0), b
}

func TestOutboundWaitsForCredit(t *testing.T) {
	c, r, _ := pair(t)
	o := mux.NewOutbound(c, 1, frame.Stdout, 10)
	wrote := make(chan error, 1)
	go func() {
		_, err := o.Write([]byte("0123456789abcdefghijklmno"))
		wrote <- err
	}()
	f, err := r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(f.Payload))
	select {
	case <-wrote:
		t.Fatal("write finished without credit")
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, o.AddCredit(100))
	f, err = r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, "abcdefghijklmno", string(f.Payload))
	require.NoError(t, <-wrote)

	go func() { wrote <- o.Close() }()
	f, err = r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, frame.FlagEOF, f.Flags)
	assert.Empty(t, f.Payload)
	require.NoError(t, <-wrote)
	_, err = o.Write([]byte("x"))
	require.ErrorIs(t, err, io.ErrClosedPipe, "no data after EOF")
}

func TestOutboundAbortUnblocksWriter(t *testing.T) {
	c, _, _ := pair(t)
	o := mux.NewOutbound(c, 1, frame.Stdout, 0)
	wrote := make(chan error, 1)
	go func() {
		_, err := o.Write([]byte("x"))
		wrote <- err
	}()
	cause := errors.New("gone")
	o.Abort(cause)
	require.ErrorIs(t, <-wrote, cause)
}

func TestOutboundCreditOverflow(t *testing.T) {
	c, _, _ := pair(t)
	o := mux.NewOutbound(c, 1, frame.Stdout, frame.MaxWindow)
	require.NoError(t, o.AddCredit(frame.MaxWindow))
	require.ErrorIs(t, o.AddCredit(1), mux.ErrFlowControl)
}

func TestInboundWindow(t *testing.T) {
	c, r, _ := pair(t)
	in := mux.NewInbound(c, 3, frame.Stdin, 100)
	require.NoError(t, in.Push(make([]byte, 60), false))
	require.ErrorIs(t, in.Push(make([]byte, 41), false), mux.ErrFlowControl, "over the window")
	require.NoError(t, in.Push(make([]byte, 40), false), "exactly the window")
	assert.Equal(t, 100, in.Buffered())

	// reading half the window returns that credit
	got := make(chan frame.Frame, 1)
	go func() {
		f, err := r.ReadFrame()
		if err == nil {
			got <- f
		}
	}()
	buf := make([]byte, 60)
	n, err := in.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 60, n)
	f := <-got
	require.Equal(t, frame.Window, f.Type)
	var m frame.WindowMsg
	require.NoError(t, frame.Unmarshal(f.Payload, &m))
	assert.Equal(t, frame.WindowMsg{Stream: frame.Stdin, Credit: 60}, m)
	require.NoError(t, in.Push(make([]byte, 60), true), "the returned credit can be used")
	require.ErrorIs(t, in.Push([]byte("x"), false), mux.ErrAfterEOF)

	rest, err := io.ReadAll(in)
	require.NoError(t, err)
	assert.Len(t, rest, 100, "buffered data drains before EOF")
}

func TestInboundCloseWithError(t *testing.T) {
	c, _, _ := pair(t)
	in := mux.NewInbound(c, 1, frame.Stdout, 10)
	read := make(chan error, 1)
	go func() {
		_, err := in.Read(make([]byte, 1))
		read <- err
	}()
	cause := errors.New("abandoned")
	in.CloseWithError(cause)
	require.ErrorIs(t, <-read, cause)
	require.NoError(t, in.Push([]byte("late"), false), "late data is dropped, not an error")
}

// Interrupt keeps what has arrived: it drains before the cause, later data
// is dropped, and reading grants no more credit.
func TestInboundInterruptDrains(t *testing.T) {
	c, r, _ := pair(t)
	in := mux.NewInbound(c, 1, frame.Data, 100)
	require.NoError(t, in.Push([]byte("arrived "), false))
	require.NoError(t, in.Push(make([]byte, 60), false))
	cause := errors.New("connection closed")
	in.Interrupt(cause)
	require.NoError(t, in.Push([]byte("late"), false), "late data is dropped, not an error")
	var got bytes.Buffer
	n, err := io.Copy(&got, in)
	require.ErrorIs(t, err, cause)
	assert.Equal(t, int64(68), n, "everything that arrived before the interruption")
	assert.True(t, bytes.HasPrefix(got.Bytes(), []byte("arrived ")))
	// no window frame was sent for the 68 bytes read
	frames := make(chan frame.Frame, 1)
	go func() {
		if f, err := r.ReadFrame(); err == nil {
			frames <- f
		}
	}()
	select {
	case f := <-frames:
		t.Fatalf("credit granted after the interruption: %s", f.Type)
	case <-time.After(100 * time.Millisecond):
	}
}

// An end of this side's (SetEOF) drops what the peer sent before it
// learnt of it; an EOF the peer sent twice is still a violation.
func TestInboundDataAfterEnds(t *testing.T) {
	c, _, _ := pair(t)
	in := mux.NewInbound(c, 1, frame.Stdin, 100)
	require.NoError(t, in.Push([]byte("kept"), false))
	in.SetEOF()
	require.NoError(t, in.Push([]byte("late"), false), "crossed this side's end on the wire: dropped")
	require.NoError(t, in.Push(nil, true), "the peer's own EOF, crossing ours")
	b, err := io.ReadAll(in)
	require.NoError(t, err)
	assert.Equal(t, "kept", string(b))
	require.ErrorIs(t, in.Push([]byte("x"), false), mux.ErrAfterEOF, "data after the peer's EOF")

	peer := mux.NewInbound(c, 3, frame.Stdin, 100)
	require.NoError(t, peer.Push(nil, true))
	require.ErrorIs(t, peer.Push(nil, true), mux.ErrAfterEOF, "a second EOF from the peer")
}

// failingConn accepts n bytes, then fails every write.
type failingConn struct {
	net.Conn
	n int
}

func (f *failingConn) Write(p []byte) (int, error) {
	if len(p) > f.n {
		w := f.n
		f.n = 0
		return w, errors.New("disk on fire")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestSendFailureClosesConn(t *testing.T) {
	a, b := net.Pipe()
	defer func() { _ = b.Close() }()
	c := mux.NewConn(&failingConn{Conn: a, n: frame.HeaderSize + 3}, nil, 0, time.Second)
	require.NoError(t, c.Send(frame.Stdout, 0, 1, []byte("abc")))
	err := c.Send(frame.Stdout, 0, 1, []byte("def"))
	require.Error(t, err)
	select {
	case <-c.Done():
	default:
		t.Fatal("a failed write must close the connection")
	}
	require.Error(t, c.Send(frame.Stdout, 0, 1, nil), "nothing is sent after a failure")
	require.ErrorContains(t, c.Err(), "disk on fire")
}

func TestPingPong(t *testing.T) {
	a, b := net.Pipe()
	ca := mux.NewConn(a, nil, 0, time.Second)
	cb := mux.NewConn(b, nil, 0, time.Second)
	ca.SetPeerMax(frame.DefaultMaxPayload)
	cb.SetPeerMax(frame.DefaultMaxPayload)
	defer func() { _ = ca.Close(); _ = cb.Close() }()
	done := make(chan struct{})
	go func() { // b's read loop answers pings
		defer close(done)
		for {
			f, err := cb.ReadFrame()
			if err != nil {
				return
			}
			if f.Type == frame.Ping {
				_ = cb.HandlePing(f.Payload)
			}
		}
	}()
	go func() { // a's read loop delivers pongs
		for {
			f, err := ca.ReadFrame()
			if err != nil {
				return
			}
			ca.HandlePong(f.Payload)
		}
	}()
	rtt, err := ca.Ping(t.Context())
	require.NoError(t, err)
	assert.Positive(t, rtt)
	_ = ca.Close()
	_ = cb.Close()
	<-done
}

// A connection that ends wakes every stream on it: buffered data is still
// read, then reads fail with ErrLost; a writer waiting for credit fails.
func TestConnEndWakesStreams(t *testing.T) {
	c, _, _ := pair(t)
	in := mux.NewInbound(c, 1, frame.Stdout, 1<<10)
	idle := mux.NewInbound(c, 1, frame.Stderr, 1<<10)
	o := mux.NewOutbound(c, 1, frame.Stdin, 0)
	require.NoError(t, in.Push([]byte("kept"), false))
	got := make(chan []byte, 1)
	errs := make(chan error, 3)
	go func() { b, err := io.ReadAll(in); got <- b; errs <- err }()
	go func() { _, err := io.ReadAll(idle); errs <- err }()
	go func() { _, err := o.Write([]byte("x")); errs <- err }()
	c.CloseWithError(errors.New("read tcp: connection reset by peer"))
	for range 3 {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, mux.ErrLost)
			assert.Contains(t, err.Error(), "connection reset by peer")
		case <-time.After(5 * time.Second):
			t.Fatal("a stream still waits after its connection ended")
		}
	}
	assert.Equal(t, "kept", string(<-got))
	late := mux.NewInbound(c, 3, frame.Stdout, 1<<10)
	_, err := late.Read(make([]byte, 1))
	require.ErrorIs(t, err, mux.ErrLost, "a stream of a dead connection fails at once")
}

// A write that fails while other streams are taking credit closes the
// connection without deadlocking: closing fails every stream, and no
// stream holds its lock while waiting for the connection's.
func TestFailedWriteWithBusyStreams(t *testing.T) {
	for range 20 {
		a, b := net.Pipe()
		c := mux.NewConn(a, nil, 0, time.Second)
		c.SetPeerMax(frame.DefaultMaxPayload)
		go func() { _, _ = io.CopyN(io.Discard, b, 64<<10); _ = b.Close() }()
		done := make(chan struct{})
		for i := range 16 {
			o := mux.NewOutbound(c, uint32(2*i+1), frame.Stdout, 1<<30)
			go func() {
				defer func() { done <- struct{}{} }()
				chunk := make([]byte, 1024)
				for {
					if _, err := o.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
		for range 16 {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("writers deadlocked on a failed connection")
			}
		}
		_ = c.Close()
	}
}
