package execd_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/testmain"
	"github.com/execd-project/execd/rexec"
)

func TestMain(m *testing.M) { testmain.Main(m, testmain.Options{Goroutines: true}) }

// peer is a hand-driven client speaking raw frames.
type peer struct {
	t  *testing.T
	nc net.Conn
	w  *frame.Writer
	r  *frame.Reader
}

func connect(t *testing.T, addr string) *peer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &peer{t: t, nc: nc, w: frame.NewWriter(nc, frame.MaxMaxPayload), r: frame.NewReader(nc, frame.MaxMaxPayload)}
}

func (p *peer) raw(b []byte) {
	_, err := p.nc.Write(b)
	require.NoError(p.t, err)
}

func (p *peer) send(t frame.Type, flags frame.Flags, ch uint32, payload []byte) {
	require.NoError(p.t, p.w.WriteFrame(t, flags, ch, payload))
}

func (p *peer) sendJSON(t frame.Type, ch uint32, msg any) {
	require.NoError(p.t, p.w.WriteJSON(t, ch, msg))
}

func (p *peer) hello() {
	p.sendJSON(frame.Hello, 0, &frame.HelloMsg{Software: "test", MaxPayload: frame.DefaultMaxPayload})
	f, err := p.r.ReadFrame()
	require.NoError(p.t, err)
	require.Equal(p.t, frame.Hello, f.Type)
}

// next returns the next frame that is not a ping.
func (p *peer) next() (frame.Frame, error) {
	for {
		f, err := p.r.ReadFrame()
		if err != nil || f.Type != frame.Ping {
			return f, err
		}
	}
}

// expectError reads up to an Error frame on ch and checks its code.
func (p *peer) expectError(ch uint32, code frame.Code) *frame.ErrorMsg {
	p.t.Helper()
	for {
		f, err := p.next()
		require.NoError(p.t, err, "waiting for %s error", code)
		if f.Type != frame.Error {
			continue
		}
		var m frame.ErrorMsg
		require.NoError(p.t, frame.Unmarshal(f.Payload, &m))
		require.Equal(p.t, ch, f.Channel, "error %v", &m)
		require.Equal(p.t, code, m.Code, "message: %s", m.Message)
		assert.NotEmpty(p.t, m.Message)
		return &m
	}
}

// expectClosed checks that the daemon closes the connection.
func (p *peer) expectClosed() {
	p.t.Helper()
	_, err := io.Copy(io.Discard, p.nc)
	require.NoError(p.t, err, "connection should be closed cleanly by the daemon")
}

func (p *peer) open(ch uint32, argv ...string) {
	p.sendJSON(frame.Open, ch, &frame.OpenMsg{Kind: frame.KindExec, Argv: argv, Window: 1 << 20})
}

func hdr(version uint8, typ frame.Type, flags frame.Flags, reserved byte, ch, length uint32) []byte {
	b := frame.AppendHeader(nil, frame.Header{Version: version, Type: typ, Flags: flags, Channel: ch, Length: length})
	b[3] = reserved
	return b
}

// stillServes checks that a normal client still gets its command run.
func stillServes(t *testing.T, d *execdtest.Server) {
	t.Helper()
	c, err := rexec.Dial(t.Context(), d.Addr, &rexec.Config{Plaintext: true})
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.Output(t.Context(), "echo", "ok")
	require.NoError(t, err)
	require.Equal(t, "ok\n", string(out))
}

func TestFatalBadInput(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{KeepAlive: -1, HandshakeTimeout: 5 * time.Second}, true)
	tests := []struct {
		name      string
		sendHello bool
		send      func(p *peer)
		code      frame.Code
	}{
		{"length over the maximum", true, func(p *peer) { p.raw(hdr(1, frame.Stdin, 0, 0, 1, 0xFFFFFFFF)) }, frame.CodeTooLarge},
		{"length over the maximum before hello", false, func(p *peer) { p.raw(hdr(1, frame.Hello, 0, 0, 0, 0xFFFFFFFF)) }, frame.CodeTooLarge},
		{"truncated header", true, func(p *peer) {
			p.raw(hdr(1, frame.Ping, 0, 0, 0, 8)[:5])
			require.NoError(t, p.nc.(*net.TCPConn).CloseWrite())
		}, frame.CodeTruncated},
		{"truncated payload", true, func(p *peer) {
			p.raw(append(hdr(1, frame.Ping, 0, 0, 0, 8), 1, 2, 3))
			require.NoError(t, p.nc.(*net.TCPConn).CloseWrite())
		}, frame.CodeTruncated},
		{"unknown frame type", true, func(p *peer) { p.raw(hdr(1, 0x7e, 0, 0, 1, 0)) }, frame.CodeUnknownType},
		{"file data on a command channel", true, func(p *peer) {
			p.open(1, "sleep", "5")
			p.send(frame.Data, 0, 1, []byte("x"))
		}, frame.CodeUnexpected},
		{"malformed request on an fs channel", true, func(p *peer) {
			p.send(frame.Open, 0, 1, []byte(`{"kind":"fs","window":1}`))
			p.send(frame.Request, 0, 1, []byte(`{"id":1,"op":"format_disk","path":"x"}`))
		}, frame.CodeInvalid},
		{"wrong version", false, func(p *peer) { p.raw(append(hdr(2, frame.Hello, 0, 0, 0, 2), '{', '}')) }, frame.CodeVersion},
		{"wrong version after hello", true, func(p *peer) { p.raw(hdr(9, frame.Ping, 0, 0, 0, 0)) }, frame.CodeVersion},
		{"reserved byte set", true, func(p *peer) { p.raw(hdr(1, frame.Ping, 0, 7, 0, 0)) }, frame.CodeBadFrame},
		{"malformed JSON hello", false, func(p *peer) { p.send(frame.Hello, 0, 0, []byte(`{"software":`)) }, frame.CodeMalformed},
		{"hello with a tiny limit", false, func(p *peer) { p.send(frame.Hello, 0, 0, []byte(`{"software":"x","max_payload":1}`)) }, frame.CodeInvalid},
		{"frame before the hello", false, func(p *peer) { p.open(1, "true") }, frame.CodeHelloRequired},
		{"second hello", true, func(p *peer) {
			p.sendJSON(frame.Hello, 0, &frame.HelloMsg{Software: "x", MaxPayload: frame.DefaultMaxPayload})
		}, frame.CodeUnexpected},
		{"server-only frame from the client", true, func(p *peer) { p.send(frame.Stdout, 0, 1, []byte("x")) }, frame.CodeUnexpected},
		{"malformed window message", true, func(p *peer) {
			p.open(1, "sleep", "1")
			p.send(frame.Window, 0, 1, []byte(`{"stream":"stdout","credit":-5}`))
		}, frame.CodeMalformed},
		{"stdin beyond its window", true, func(p *peer) {
			p.open(1, "sleep", "5")
			f, err := p.next()
			require.NoError(t, err)
			require.Equal(t, frame.OpenOK, f.Type)
			var ok frame.OpenOKMsg
			require.NoError(t, frame.Unmarshal(f.Payload, &ok))
			chunk := make([]byte, 32<<10)
			for sent := 0; sent <= int(ok.Window); sent += len(chunk) {
				p.send(frame.Stdin, 0, 1, chunk)
			}
		}, frame.CodeFlowControl},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := connect(t, d.Addr)
			if tc.sendHello {
				p.hello()
			}
			tc.send(p)
			p.expectError(0, tc.code)
			p.expectClosed()
			stillServes(t, d)
		})
	}
}

func TestNonFatalBadInput(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{KeepAlive: -1}, true)
	tests := []struct {
		name string
		send func(p *peer)
		ch   uint32
		code frame.Code
	}{
		{"malformed JSON in open", func(p *peer) { p.send(frame.Open, 0, 1, []byte(`{"kind":"exec","argv":[`)) }, 1, frame.CodeMalformed},
		{"open that breaks a rule", func(p *peer) { p.send(frame.Open, 0, 1, []byte(`{"kind":"exec","argv":["ls"],"window":0}`)) }, 1, frame.CodeInvalid},
		{"stdin on a channel never opened", func(p *peer) { p.send(frame.Stdin, 0, 99, []byte("data")) }, 99, frame.CodeNoChannel},
		{"signal on a channel never opened", func(p *peer) { p.sendJSON(frame.Signal, 77, &frame.SignalMsg{Signal: "INT"}) }, 77, frame.CodeNoChannel},
		{"even channel id", func(p *peer) { p.open(2, "true") }, 2, frame.CodeInvalid},
		{"channel id reused", func(p *peer) {
			p.open(5, "true")
			for {
				f, err := p.next()
				require.NoError(t, err)
				if f.Type == frame.Exit {
					break
				}
			}
			p.open(5, "true")
		}, 5, frame.CodeChannelInUse},
		{"command that does not exist", func(p *peer) { p.open(1, "/nonexistent/cmd") }, 1, frame.CodeExecFailed},
		{"get with a NUL in the path", func(p *peer) {
			p.send(frame.Open, 0, 1, []byte(`{"kind":"get","path":"ok\u0000/../../etc/passwd","window":4096}`))
		}, 1, frame.CodeInvalid},
		{"get with an overlong path", func(p *peer) {
			p.send(frame.Open, 0, 1, []byte(`{"kind":"get","path":"`+strings.Repeat("a/", 2100)+`","window":4096}`))
		}, 1, frame.CodeInvalid},
		{"get of an absolute path", func(p *peer) {
			p.send(frame.Open, 0, 1, []byte(`{"kind":"get","path":"/etc/passwd","window":4096}`))
		}, 1, frame.CodeBadPath},
		{"put climbing out", func(p *peer) {
			p.send(frame.Open, 0, 1, []byte(`{"kind":"put","path":"../x","size":1,"window":4096}`))
		}, 1, frame.CodePathEscape},
		{"unknown channel kind", func(p *peer) { p.send(frame.Open, 0, 1, []byte(`{"kind":"tunnel","window":1}`)) }, 1, frame.CodeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := connect(t, d.Addr)
			p.hello()
			tc.send(p)
			p.expectError(tc.ch, tc.code)
			// the same connection goes on: a command on a fresh channel runs
			p.open(101, "echo", "alive")
			var out bytes.Buffer
			for {
				f, err := p.next()
				require.NoError(t, err)
				if f.Type == frame.Stdout {
					out.Write(f.Payload)
				}
				if f.Type == frame.Exit {
					break
				}
			}
			assert.Equal(t, "alive\n", out.String())
		})
	}
}

func TestSilentPeer(t *testing.T) {
	t.Run("plaintext gets an error frame", func(t *testing.T) {
		d := execdtest.Start(t, &execd.Server{HandshakeTimeout: 300 * time.Millisecond}, true)
		p := connect(t, d.Addr)
		begin := time.Now()
		p.expectError(0, frame.CodeHandshakeTimeout)
		p.expectClosed()
		assert.Less(t, time.Since(begin), 3*time.Second)
		stillServes(t, d)
	})
	t.Run("tls is closed", func(t *testing.T) {
		d := execdtest.Start(t, &execd.Server{HandshakeTimeout: 300 * time.Millisecond}, false)
		nc, err := net.Dial("tcp", d.Addr)
		require.NoError(t, err)
		defer func() { _ = nc.Close() }()
		begin := time.Now()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, nc)
		require.NoError(t, err)
		assert.Less(t, time.Since(begin), 3*time.Second)
	})
	t.Run("tls then silence", func(t *testing.T) {
		d := execdtest.Start(t, &execd.Server{HandshakeTimeout: 300 * time.Millisecond}, false)
		nc, err := tls.Dial("tcp", d.Addr, &tls.Config{InsecureSkipVerify: true}) // the test checks timeouts, not identity
		require.NoError(t, err)
		defer func() { _ = nc.Close() }()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		f, err := frame.NewReader(nc, 0).ReadFrame()
		require.NoError(t, err)
		require.Equal(t, frame.Error, f.Type)
		var m frame.ErrorMsg
		require.NoError(t, frame.Unmarshal(f.Payload, &m))
		assert.Equal(t, frame.CodeHandshakeTimeout, m.Code)
	})
}

func TestKeepaliveTimeout(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{KeepAlive: 100 * time.Millisecond}, true)
	p := connect(t, d.Addr)
	p.hello()
	pings := 0
	for {
		f, err := p.r.ReadFrame() // never answers
		require.NoError(t, err)
		if f.Type == frame.Ping {
			pings++
			continue
		}
		require.Equal(t, frame.Error, f.Type)
		var m frame.ErrorMsg
		require.NoError(t, frame.Unmarshal(f.Payload, &m))
		assert.Equal(t, frame.CodeKeepaliveTimeout, m.Code)
		break
	}
	assert.GreaterOrEqual(t, pings, 1)
	p.expectClosed()
	// a client that answers stays connected across many intervals
	c, err := rexec.Dial(t.Context(), d.Addr, &rexec.Config{Plaintext: true})
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.Run(t.Context(), "sleep", "0.6"))
}

func TestServeAfterClose(t *testing.T) {
	var s execd.Server
	require.NoError(t, s.Close())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.True(t, errors.Is(s.Serve(ln), execd.ErrServerClosed))
}

// Item 12: keys are matched exactly and once: a frame two implementations
// could read differently is refused, and nothing runs.
func TestLooseJSONRefused(t *testing.T) {
	home := t.TempDir()
	d := execdtest.Start(t, &execd.Server{Dir: home}, true)
	for i, payload := range []string{
		`{"KIND":"exec","ARGV":["touch","caps"],"WINDOW":1}`,
		`{"kind":"exec","argv":["touch","first"],"argv":["touch","second"],"window":1}`,
	} {
		p := connect(t, d.Addr)
		p.hello()
		p.send(frame.Open, 0, uint32(2*i+1), []byte(payload))
		em := p.expectError(uint32(2*i+1), frame.CodeMalformed)
		assert.Contains(t, em.Message, "key")
	}
	entries, err := os.ReadDir(home)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing ran")
}
