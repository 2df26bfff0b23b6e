package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Knobs make a lesson reproducible.
type Knobs struct {
	// ReadBuffer is the most bytes one read() takes (recv(1024)); 0 means 1024.
	ReadBuffer int
	// ReaderDelay is a pause before each read(): a slow receiver lets
	// messages pile up in the socket buffer.
	ReaderDelay time.Duration
	// Batch sends every message in one write().
	Batch bool
	// Trickle, when above 0, writes at most this many bytes per write(),
	// with TricklePause between writes: one message arrives in pieces.
	Trickle      int
	TricklePause time.Duration
	// SplitHeader writes a message's header and body as two write()s.
	SplitHeader bool
	// Nagle switches Nagle's algorithm on at the sender (Go turns it off).
	Nagle bool
	// Pause is the sleep strategy's pause between messages; 0 means 50ms.
	Pause time.Duration
	// Reply makes each message a request: the receiver answers it with
	// one byte and the sender waits for that before the next message (the
	// ack strategy always does).
	Reply bool
}

// replies reports whether the receiver answers each message.
func (k Knobs) replies(s Strategy) bool { return s == Ack || k.Reply }

func (k Knobs) readBuffer() int {
	if k.ReadBuffer <= 0 {
		return 1024
	}
	return k.ReadBuffer
}

func (k Knobs) pause() time.Duration {
	if k.Pause <= 0 {
		return 50 * time.Millisecond
	}
	return k.Pause
}

// Read is one read() of the receiver.
type Read struct {
	Start, End int64         // byte range in the stream
	At         time.Duration // since the sender's first write
}

// Span is where one message lies in the stream: its header (if any) and
// its own bytes.
type Span struct {
	Start, BodyStart, BodyEnd, End int64
}

// Verdict says how a message reached the receiver.
type Verdict string

// Verdicts.
const (
	Intact Verdict = "intact" // recovered exactly, as one message
	Glued  Verdict = "glued"  // recovered together with (part of) another message
	Split  Verdict = "split"  // its bytes came in several messages
	Broken Verdict = "broken" // recovered wrong (a delimiter inside binary data)
	Lost   Verdict = "lost"   // never recovered
)

// Result is what one run showed.
type Result struct {
	Label    string // names the run in a comparison; empty: the strategy
	Strategy Strategy
	Knobs    Knobs
	Sent     [][]byte
	Spans    []Span
	Reads    []Read
	Got      [][]byte  // messages as the receiver's application saw them
	Verdicts []Verdict // one per sent message
	// Latencies, per message recovered intact: from the sender's first
	// write of it to the receiver having it whole.
	Latencies []time.Duration
	Elapsed   time.Duration
	Bytes     int64  // bytes on the wire
	Wire      []byte // those bytes
	Err       error  // a failure of the strategy itself (a header overflow, a decode error)
}

// Recovered counts the messages recovered intact.
func (r *Result) Recovered() int {
	n := 0
	for _, v := range r.Verdicts {
		if v == Intact {
			n++
		}
	}
	return n
}

// Percentile returns the p-th percentile (0..100) of the latencies.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	l := slices.Clone(r.Latencies)
	slices.Sort(l)
	i := int(float64(len(l)-1) * p / 100)
	return l[i]
}

// Throughput is the message bytes per second that arrived intact.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	var n int
	for i, v := range r.Verdicts {
		if v == Intact {
			n += len(r.Sent[i])
		}
	}
	return float64(n) / r.Elapsed.Seconds()
}

// Run sends msgs under strategy s over a fresh loopback TCP connection and
// records what the receiver saw.
func Run(ctx context.Context, s Strategy, msgs [][]byte, k Knobs) (*Result, error) {
	res := &Result{Strategy: s, Knobs: k, Sent: msgs}
	parts, err := res.encode(s, msgs)
	if err != nil {
		res.Err = err
		return res, nil
	}
	sender, receiver, err := loopbackPair(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = receiver.Close() }()
	if err := sender.SetNoDelay(!k.Nagle); err != nil {
		_ = sender.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = sender.Close(); _ = receiver.Close() })
	defer stop()

	start := time.Now()
	rec := &recorder{c: receiver, max: k.readBuffer(), delay: k.ReaderDelay, start: start}
	var sendErr error
	var sentAt []time.Time
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { _ = sender.CloseWrite() }() // the receiver sees the end
		sentAt, sendErr = send(sender, s, parts, k)
	}()
	gotAt, recvErr := res.receive(s.newDecoder(rec), receiver, k.replies(s))
	res.Elapsed = time.Since(start)
	_, _ = io.Copy(io.Discard, receiver) // let the sender finish
	wg.Wait()
	_ = sender.Close()
	res.Reads = rec.reads
	if err := errors.Join(sendErr, recvErr); err != nil && ctx.Err() == nil {
		res.Err = err
	}
	res.judge(sentAt, gotAt)
	return res, ctx.Err()
}

// encode encodes every message first, as the bytes on the wire and their
// spans: a header that cannot hold a length fails here, before a byte is
// sent, as struct.pack would.
func (res *Result) encode(s Strategy, msgs [][]byte) ([][]part, error) {
	var parts [][]part
	var off int64
	for _, m := range msgs {
		p, err := s.encode(m, int64(len(m)))
		if err != nil {
			return nil, err
		}
		sp := Span{Start: off}
		for _, q := range p {
			if !q.header {
				sp.BodyStart = off
				sp.BodyEnd = off + int64(len(q.b))
			}
			off += int64(len(q.b))
			res.Wire = append(res.Wire, q.b...)
		}
		sp.End = off
		res.Spans = append(res.Spans, sp)
		parts = append(parts, p)
	}
	res.Bytes = off
	return parts, nil
}

// loopbackPair is one TCP connection over loopback, both its ends.
func loopbackPair(ctx context.Context) (sender, receiver *net.TCPConn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = ln.Close() }() // one connection only
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	dialer := net.Dialer{}
	cc, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		_ = ln.Close()
		if c, ok := <-accepted; ok {
			_ = c.Close()
		}
		return nil, nil, err
	}
	sc, ok := <-accepted
	if !ok {
		_ = cc.Close()
		return nil, nil, errors.New("lab: accept failed")
	}
	return cc.(*net.TCPConn), sc.(*net.TCPConn), nil
}

// receive reads messages until the end, answering each with a byte when
// the strategy waits for replies, and gives when each arrived.
func (res *Result) receive(dec decoder, receiver net.Conn, replies bool) ([]time.Time, error) {
	var gotAt []time.Time
	for {
		m, err := dec.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return gotAt, err
		}
		res.Got = append(res.Got, m)
		gotAt = append(gotAt, time.Now())
		if replies {
			if _, err := receiver.Write([]byte{'k'}); err != nil {
				return gotAt, err
			}
		}
	}
}

// send writes the parts as the knobs say and returns when each message's
// first byte was written.
func send(c *net.TCPConn, s Strategy, parts [][]part, k Knobs) ([]time.Time, error) {
	at := make([]time.Time, len(parts))
	w := &trickleWriter{c: c, n: k.Trickle, pause: k.TricklePause}
	if k.Batch && !k.replies(s) && s != Sleep {
		var all bytes.Buffer
		for _, p := range parts {
			for _, q := range p {
				all.Write(q.b)
			}
		}
		now := time.Now()
		for i := range at {
			at[i] = now
		}
		_, err := w.Write(all.Bytes())
		return at, err
	}
	ack := bufio.NewReader(c)
	for i, p := range parts {
		if s == Sleep && i > 0 {
			time.Sleep(k.pause())
		}
		at[i] = time.Now()
		if k.SplitHeader {
			for _, q := range p {
				if _, err := w.Write(q.b); err != nil {
					return at, err
				}
			}
		} else {
			var b []byte
			for _, q := range p {
				b = append(b, q.b...)
			}
			if _, err := w.Write(b); err != nil {
				return at, err
			}
		}
		if k.replies(s) {
			if _, err := ack.ReadByte(); err != nil {
				return at, fmt.Errorf("waiting for the ack: %w", err)
			}
		}
	}
	return at, nil
}

// trickleWriter writes at most n bytes per write(), pausing in between.
type trickleWriter struct {
	c     *net.TCPConn
	n     int
	pause time.Duration
	wrote bool
}

func (w *trickleWriter) Write(b []byte) (int, error) {
	if w.n <= 0 {
		return w.c.Write(b)
	}
	done := 0
	for done < len(b) {
		if w.wrote && w.pause > 0 {
			time.Sleep(w.pause)
		}
		n, err := w.c.Write(b[done:min(done+w.n, len(b))])
		done += n
		w.wrote = true
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// recorder is the receiver's socket: every read() takes at most max bytes,
// after delay, and is written down.
type recorder struct {
	c     net.Conn
	max   int
	delay time.Duration
	start time.Time
	off   int64
	reads []Read
	buf   []byte
}

// Read implements io.Reader for the decoders that parse a stream.
func (r *recorder) Read(p []byte) (int, error) {
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	n, err := r.c.Read(p[:min(len(p), r.max)])
	if n > 0 {
		r.reads = append(r.reads, Read{Start: r.off, End: r.off + int64(n), At: time.Since(r.start)})
		r.off += int64(n)
	}
	return n, err
}

// readOnce is one recv(max), as the naive receiver does.
func (r *recorder) readOnce() ([]byte, error) {
	if r.buf == nil {
		r.buf = make([]byte, r.max)
	}
	n, err := r.Read(r.buf)
	return slices.Clone(r.buf[:n]), err
}

// judge gives each sent message its verdict and latency.
func (r *Result) judge(sentAt, gotAt []time.Time) {
	r.Verdicts = make([]Verdict, len(r.Sent))
	naive := r.Strategy == Raw || r.Strategy == Sleep || r.Strategy == Ack
	for i, m := range r.Sent {
		switch {
		case i < len(r.Got) && bytes.Equal(r.Got[i], m) && (!naive || r.readAligned(r.Spans[i])):
			r.Verdicts[i] = Intact
			if i < len(gotAt) && i < len(sentAt) && !sentAt[i].IsZero() {
				r.Latencies = append(r.Latencies, gotAt[i].Sub(sentAt[i]))
			}
		case naive:
			r.Verdicts[i] = r.byReads(r.Spans[i])
		case i < len(r.Got):
			r.Verdicts[i] = Broken
		default:
			r.Verdicts[i] = Lost
		}
	}
}

// readAligned reports whether one read holds exactly the span.
func (r *Result) readAligned(sp Span) bool {
	for _, rd := range r.Reads {
		if rd.Start == sp.Start && rd.End == sp.End {
			return true
		}
	}
	return false
}

// byReads judges a naive receiver's message by the reads over its span.
func (r *Result) byReads(sp Span) Verdict {
	var holders []Read
	for _, rd := range r.Reads {
		if rd.End > sp.Start && rd.Start < sp.End {
			holders = append(holders, rd)
		}
	}
	switch {
	case len(holders) == 0:
		if sp.Start == sp.End {
			return Intact
		}
		return Lost
	case len(holders) > 1:
		return Split
	case holders[0].Start < sp.Start || holders[0].End > sp.End:
		return Glued
	}
	return Intact
}
