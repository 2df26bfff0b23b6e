package lab

import (
	"net"
	"testing"
	"time"
)

// FuzzDecoders feeds arbitrary bytes to every strategy's receiver: no
// input may crash it or make it hang, whatever its headers claim.
func FuzzDecoders(f *testing.F) {
	for _, s := range Strategies() {
		for _, m := range [][]byte{[]byte("hello"), {}, Listing(2)} {
			parts, _ := s.encode(m, int64(len(m)))
			var b []byte
			for _, p := range parts {
				b = append(b, p.b...)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 9, '{', '"', 's', 'i', 'z', 'e', '"', ':', '9'})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range Strategies() {
			a, b := net.Pipe()
			go func() {
				_, _ = a.Write(data)
				_ = a.Close()
			}()
			_ = b.SetDeadline(time.Now().Add(5 * time.Second))
			dec := s.newDecoder(&recorder{c: b, max: 7, start: time.Now()})
			total := 0
			for i := 0; ; i++ {
				m, err := dec.next()
				if err != nil {
					break
				}
				total += len(m)
				if total > len(data) || i > len(data)+1 {
					t.Fatalf("%s: %d bytes of messages from %d bytes of input", s, total, len(data))
				}
			}
			_ = b.Close()
		}
	})
}
