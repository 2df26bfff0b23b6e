package mux

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
)

// BufConn buffers a raw connection below TLS: records written by one frame
// leave in one system call at Flush, and reads fetch many records at once.
// The Conn that owns it flushes after every frame.
// Until Buffer is called it writes through, so that a TLS handshake's
// flights leave at once, and reads through a small buffer: a peer that has
// not logged in costs a few KiB, not the full buffers.
type BufConn struct {
	net.Conn
	r         *bufio.Reader
	mu        sync.Mutex // TLS may write from its read path (alerts, key updates)
	w         *bufio.Writer
	buffering bool
}

// bufSize holds a full frame of the default limit plus TLS record overhead;
// smallBufSize is the read buffer before Buffer.
const (
	bufSize      = 512 << 10
	smallBufSize = 4 << 10
)

// NewBufConn wraps nc.
func NewBufConn(nc net.Conn) *BufConn {
	return &BufConn{Conn: nc, r: bufio.NewReaderSize(nc, smallBufSize)}
}

// Read reads through the buffer.
func (b *BufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Write buffers p once Buffer was called (Flush sends it), and writes it
// through before.
func (b *BufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.buffering {
		return b.Conn.Write(p)
	}
	return b.w.Write(p)
}

// Buffer gives the connection its full buffers and starts buffering
// writes. Call it once, after the TLS handshake (a daemon: after the
// login), from the goroutine that reads, while no Read is in progress.
func (b *BufConn) Buffer() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buffering {
		return
	}
	b.buffering = true
	b.w = bufio.NewWriterSize(b.Conn, bufSize)
	var src io.Reader = b.Conn
	if n := b.r.Buffered(); n > 0 {
		held, _ := b.r.Peek(n) // cannot fail: n bytes are buffered
		src = io.MultiReader(bytes.NewReader(bytes.Clone(held)), b.Conn)
	}
	b.r = bufio.NewReaderSize(src, bufSize)
}

// Flush sends what was written.
func (b *BufConn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil {
		return nil
	}
	return b.w.Flush()
}

// CloseWrite flushes, then half-closes the connection when it can.
func (b *BufConn) CloseWrite() error {
	if err := b.Flush(); err != nil {
		return err
	}
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
