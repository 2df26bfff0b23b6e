package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// MaxUDPPayload is the most an IPv4 UDP datagram carries: 65,535 minus the
// 20-byte IP header and the 8-byte UDP header.
const MaxUDPPayload = 65507

// UDPResult is what the UDP contrast showed.
type UDPResult struct {
	// Kept: small datagrams sent back to back and read late each arrived
	// as one read, boundaries kept.
	Sent, Got [][]byte
	// Truncated: a datagram larger than the read buffer gave only the
	// buffer's worth; the rest is gone (the next read gets the next datagram).
	BigSent, BigGot int
	AfterBig        []byte
	// Limit: a datagram of MaxUDPPayload bytes is sent, one byte more is refused.
	MaxOK     error
	OverLimit error
}

// UDP runs the UDP contrast over 127.0.0.1: the same small messages as the
// TCP lessons, read after a delay with a buffer of buf bytes; a datagram
// larger than buf; and the size limit.
func UDP(ctx context.Context, buf int) (*UDPResult, error) {
	if buf <= 0 {
		buf = 1024
	}
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }() // a test socket
	if err := rc.SetReadBuffer(4 << 20); err != nil {
		return nil, err
	}
	sc, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		return nil, err
	}
	defer func() { _ = sc.Close() }() // a test socket
	stop := context.AfterFunc(ctx, func() { _ = rc.Close(); _ = sc.Close() })
	defer stop()

	res := &UDPResult{Sent: Numbered("hello", 5)}
	for _, m := range res.Sent {
		if _, err := sc.Write(m); err != nil {
			return nil, err
		}
	}
	time.Sleep(30 * time.Millisecond) // a slow reader: with TCP this glues
	b := make([]byte, buf)
	read := func() ([]byte, error) {
		if err := rc.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			return nil, err
		}
		n, _, err := rc.ReadFromUDP(b)
		return bytes.Clone(b[:n]), err
	}
	for range res.Sent {
		m, err := read()
		if err != nil {
			return nil, err
		}
		res.Got = append(res.Got, m)
	}

	big := bytes.Repeat([]byte("0123456789"), (buf*2)/10+1)
	res.BigSent = len(big)
	if _, err := sc.Write(big); err != nil {
		return nil, err
	}
	if _, err := sc.Write([]byte("next")); err != nil {
		return nil, err
	}
	m, err := read()
	if err != nil {
		return nil, err
	}
	res.BigGot = len(m)
	if res.AfterBig, err = read(); err != nil {
		return nil, err
	}

	_, res.MaxOK = sc.Write(make([]byte, MaxUDPPayload))
	_, res.OverLimit = sc.Write(make([]byte, MaxUDPPayload+1))
	return res, nil
}

// ViewUDP prints the UDP contrast.
func ViewUDP(w io.Writer, r *UDPResult, buf int) {
	fmt.Fprintf(w, "== udp: datagrams keep their boundaries (recv buffer %d)\n", buf)
	for i, m := range r.Got {
		fmt.Fprintf(w, "   read #%d  %2d B  %q\n", i+1, len(m), m)
	}
	fmt.Fprintf(w, "   %d datagrams sent back to back, read 30ms late: %d reads, one datagram each\n", len(r.Sent), len(r.Got))
	fmt.Fprintf(w, "   a %d-byte datagram read with a %d-byte buffer: got %d bytes; the other %d are gone, and the next read got %q\n",
		r.BigSent, buf, r.BigGot, r.BigSent-r.BigGot, r.AfterBig)
	if r.MaxOK == nil {
		fmt.Fprintf(w, "   a %d-byte datagram: sent\n", MaxUDPPayload)
	} else {
		fmt.Fprintf(w, "   a %d-byte datagram: %v\n", MaxUDPPayload, r.MaxOK)
	}
	fmt.Fprintf(w, "   a %d-byte datagram: %v\n", MaxUDPPayload+1, r.OverLimit)
	fmt.Fprintln(w, "   (UDP keeps boundaries but may lose, reorder or duplicate datagrams; off loopback nothing is guaranteed)")
	fmt.Fprintln(w)
}
