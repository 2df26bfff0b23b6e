package mux

import (
	"bufio"
	"net"
	"sync"
)

// BufConn buffers a raw connection below TLS: records written by one frame
// leave in one system call at Flush, and reads fetch many records at once.
// The Conn that owns it flushes after every frame.
// Until Buffer is called it writes through, so that a TLS handshake's
// flights leave at once.
type BufConn struct {
	net.Conn
	r         *bufio.Reader
	mu        sync.Mutex // TLS may write from its read path (alerts, key updates)
	w         *bufio.Writer
	buffering bool
}

// bufSize holds a full frame of the default limit plus TLS record overhead.
const bufSize = 512 << 10

// NewBufConn wraps nc.
func NewBufConn(nc net.Conn) *BufConn {
	return &BufConn{Conn: nc, r: bufio.NewReaderSize(nc, bufSize), w: bufio.NewWriterSize(nc, bufSize)}
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

// Buffer starts buffering writes; call it after the TLS handshake, from
// the goroutine that owns writing.
func (b *BufConn) Buffer() {
	b.mu.Lock()
	b.buffering = true
	b.mu.Unlock()
}

// Flush sends what was written.
func (b *BufConn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
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
