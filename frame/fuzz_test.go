package frame_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/execd-project/execd/frame"
)

// FuzzReader feeds arbitrary bytes to the Reader: it must never panic,
// never hand out a payload over the limit, return io.EOF only at a frame
// boundary, and every frame it accepts must re-encode to the same bytes.
func FuzzReader(f *testing.F) {
	for _, b := range goldenFrames(&testing.T{}) {
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{1, 0x21, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2, 0x21, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})
	const limit = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		r := frame.NewReader(bytes.NewReader(in), limit)
		consumed := 0
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				if err == io.EOF && consumed != len(in) {
					t.Fatalf("io.EOF after %d of %d bytes", consumed, len(in))
				}
				return
			}
			if len(fr.Payload) > limit {
				t.Fatalf("payload %d over limit", len(fr.Payload))
			}
			var out bytes.Buffer
			if err := frame.NewWriter(&out, limit).WriteFrame(fr.Type, fr.Flags, fr.Channel, fr.Payload); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			n := frame.HeaderSize + len(fr.Payload)
			if !bytes.Equal(out.Bytes(), in[consumed:consumed+n]) {
				t.Fatalf("re-encoded frame differs")
			}
			consumed += n
		}
	})
}

// FuzzControl decodes arbitrary payloads as every control message: no
// panic, and whatever decodes re-encodes and decodes to the same value.
func FuzzControl(f *testing.F) {
	seeds := []string{
		`{"kind":"exec","argv":["ls","-l"],"env":["A=1"],"dir":"/tmp","pty":{"term":"xterm","cols":80,"rows":24},"timeout_ms":5,"window":65536}`,
		`{"kind":"exec","shell":"echo hi","window":1}`,
		`{"code":-1,"signal":"KILL","duration_ms":3,"timed_out":true,"message":"time limit"}`,
		`{"stream":"stdout","credit":4096}`,
		`{"signal":"INT"}`, `{"cols":80,"rows":24}`,
		`{"software":"execd/0.1","max_payload":262144,"keepalive_ms":15000}`,
		`{"code":"too_large","message":"x"}`, `{"window":1,"pid":1}`, `{"reason":"bye"}`,
		`{"kind":"get","path":"logs/a b.txt","offset":5000000000,"hash":"blake3","prefix_hash":"` + strings.Repeat("ab", 32) + `","window":4096}`,
		`{"kind":"put","path":"x","size":18446744073709551615,"mode":420,"mtime_ns":-5,"resume":true,"window":9}`,
		`{"kind":"fs","dir":"~/src","window":1}`,
		`{"kind":"exec","argv":["make"],"resume":true,"window":2097152}`,
		`{"kind":"attach","attach":{"job":"1ec2e26aabe52dcc","stdout":18446744073709551615,"stderr":0},"pty":{"cols":80,"rows":24},"window":1}`,
		`{"window":1,"job":"1ec2e26aabe52dcc","stdin_offset":5000000000,"stdin_eof":true}`,
		`{"window":1,"offset":3,"prefix_hash":"","info":{"name":"a","type":"file","size":3,"mode":420,"mtime_ns":1}}`,
		`{"size":0,"hash":"` + strings.Repeat("0", 64) + `"}`,
		`{"id":7,"op":"rename","path":"a","to":"b"}`, `{"id":8,"op":"checksum","path":"a","hash_name":"blake3"}`, `{"id":7,"op":"setattr","path":"d","mode":493,"has_mode":true,"mtime_ns":9}`,
		`{"id":7,"entries":[{"name":"l","type":"symlink","size":1,"mode":511,"mtime_ns":0,"target":"../x"}],"more":true}`,
		`{"id":7,"error":{"code":"not_found","message":"x: no such file"}}`,
		`{"method":"password","user":"alice","password":"pw"}`,
		`{"method":"publickey","user":"bob","key":"` + strings.Repeat("A", 43) + `=","sig":"` + strings.Repeat("A", 86) + `=="}`,
		`{"ok":false,"methods":["password"],"message":"wrong password"}`,
		`{"software":"execd","max_payload":262144,"auth":["publickey","password"],"challenge":"` + strings.Repeat("A", 43) + `="}`,
		`{`, `[]`, `null`, `{"argv":null}`,
		`{"KIND":"exec","ARGV":["id"],"WINDOW":1}`, `{"kind":"exec","argv":["true"],"argv":["rm"],"window":1}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	news := []func() frame.Message{
		func() frame.Message { return &frame.HelloMsg{} },
		func() frame.Message { return &frame.OpenMsg{} },
		func() frame.Message { return &frame.OpenOKMsg{} },
		func() frame.Message { return &frame.WindowMsg{} },
		func() frame.Message { return &frame.SignalMsg{} },
		func() frame.Message { return &frame.ResizeMsg{} },
		func() frame.Message { return &frame.ExitMsg{} },
		func() frame.Message { return &frame.ErrorMsg{} },
		func() frame.Message { return &frame.GoAwayMsg{} },
		func() frame.Message { return &frame.FileInfo{} },
		func() frame.Message { return &frame.DoneMsg{} },
		func() frame.Message { return &frame.FileRequest{} },
		func() frame.Message { return &frame.FileReply{} },
		func() frame.Message { return &frame.AuthMsg{} },
		func() frame.Message { return &frame.AuthReplyMsg{} },
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, mk := range news {
			m := mk()
			if err := frame.Unmarshal(in, m); err != nil {
				if !errors.Is(err, frame.ErrMalformed) && !errors.Is(err, frame.ErrInvalid) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				continue
			}
			p, err := frame.Marshal(m)
			if err != nil {
				t.Fatalf("re-encode %T: %v", m, err)
			}
			m2 := mk()
			if err := frame.Unmarshal(p, m2); err != nil {
				t.Fatalf("decode of re-encoded %T: %v", m, err)
			}
			p2, err := frame.Marshal(m2)
			if err != nil || !bytes.Equal(p, p2) {
				t.Fatalf("round trip differs: %s vs %s (%v)", p, p2, err)
			}
		}
	})
}
