package execdtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
)

// Proxy forwards loopback connections to a daemon and can cut them after a
// number of bytes, or (with a plaintext daemon) change frames on the way.
// It stops when the test ends.
type Proxy struct {
	Addr string
	// ToClient and ToServer count the bytes forwarded in each direction,
	// over all connections.
	ToClient, ToServer atomic.Int64

	target string
	mu     sync.Mutex
	cut    [2]int64 // bytes after which the next connection is cut, per direction (0: never)
	reset  bool     // the next cut is a reset (RST), not a close (FIN)
	tamper func(toClient bool, f *frame.Frame)
	stall  chan struct{} // closed by Stall
	ended  chan struct{} // closed when the test ends

	openMu sync.Mutex
	open   []net.Conn // both ends of every connection forwarded so far
}

// StartProxy listens on 127.0.0.1 and forwards to target.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return StartProxyAt(t, "127.0.0.1:0", target)
}

// StartProxyAt is StartProxy listening on a given loopback address.
func StartProxyAt(t testing.TB, addr, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	p := &Proxy{Addr: ln.Addr().String(), target: target, stall: make(chan struct{}), ended: make(chan struct{})}
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.openMu.Lock()
			p.open = append(p.open, c, s)
			p.openMu.Unlock()
			p.mu.Lock()
			cut, tamper, reset := p.cut, p.tamper, p.reset
			p.cut, p.reset = [2]int64{}, false
			if reset {
				for _, nc := range []net.Conn{c, s} {
					_ = nc.(*net.TCPConn).SetLinger(0) // close sends RST
				}
			}
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(s, c, true, cut[0], tamper) }()
			go func() { defer wg.Done(); p.pipe(c, s, false, cut[1], tamper) }()
		}
	}()
	t.Cleanup(func() {
		close(p.ended)
		_ = ln.Close()
		<-done
		p.openMu.Lock()
		for _, c := range p.open {
			_ = c.Close()
		}
		p.openMu.Unlock()
		wg.Wait()
	})
	return p
}

// CutNext makes the next connection end abruptly once n bytes have gone
// toward the client (toClient) or toward the daemon.
func (p *Proxy) CutNext(toClient bool, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if toClient {
		p.cut[0] = n
	} else {
		p.cut[1] = n
	}
}

// ResetNext is CutNext with a reset: both sides of the next connection
// see ECONNRESET, as after a middlebox drops its state.
func (p *Proxy) ResetNext(toClient bool, n int64) {
	p.CutNext(toClient, n)
	p.mu.Lock()
	p.reset = true
	p.mu.Unlock()
}

// ResetOpen resets every connection forwarded so far, now: both sides see
// ECONNRESET, wherever they are in their exchange. It returns how many
// were still open.
func (p *Proxy) ResetOpen() int {
	p.openMu.Lock()
	defer p.openMu.Unlock()
	n := 0
	for _, c := range p.open {
		tc := c.(*net.TCPConn)
		_ = tc.SetLinger(0)
		if tc.Close() == nil {
			n++
		}
	}
	p.open = p.open[:0]
	return n / 2
}

// Stall stops forwarding on every connection, from now until the test
// ends, with the sockets left open: a peer that went silent, as behind a
// link that died without a reset.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stall:
	default:
		close(p.stall)
	}
}

// Tamper parses the frames of later connections and lets fn change them
// before they are forwarded. Only for plaintext daemons.
func (p *Proxy) Tamper(fn func(toClient bool, f *frame.Frame)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = fn
}

func (p *Proxy) pipe(src, dst net.Conn, toClient bool, cut int64, tamper func(bool, *frame.Frame)) {
	counter := &p.ToServer
	if toClient {
		counter = &p.ToClient
	}
	var err error
	switch {
	case tamper != nil:
		r := frame.NewReader(src, frame.MaxMaxPayload)
		w := frame.NewWriter(dst, frame.MaxMaxPayload)
		for {
			var f frame.Frame
			if f, err = r.ReadFrame(); err != nil {
				break
			}
			tamper(toClient, &f)
			if err = w.WriteFrame(f.Type, f.Flags, f.Channel, f.Payload); err != nil {
				break
			}
			counter.Add(int64(frame.HeaderSize + len(f.Payload)))
		}
	case cut > 0:
		_, err = io.CopyN(countingWriter{dst, counter}, src, cut)
		if err == nil {
			err = errors.New("cut")
		}
	default:
		_, err = io.Copy(stallingWriter{countingWriter{dst, counter}, p}, src)
	}
	if err != nil && cut > 0 {
		// An abrupt end in both directions, as a dropped link looks.
		_ = src.Close()
		_ = dst.Close()
		return
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite() // pass the half-close on
	}
}

// stallingWriter forwards until the proxy stalls, then holds every
// write until the test ends.
type stallingWriter struct {
	w io.Writer
	p *Proxy
}

func (s stallingWriter) Write(b []byte) (int, error) {
	select {
	case <-s.p.stall:
		<-s.p.ended
		return 0, errors.New("stalled")
	default:
	}
	return s.w.Write(b)
}

// countingWriter counts what it forwards as it goes.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// SilentConns opens n TCP connections to addr from the loopback address
// src that never send a byte, as an attacker's sockets do, and closes
// them when the test ends.
func SilentConns(t testing.TB, addr, src string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for range n {
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	return conns
}
