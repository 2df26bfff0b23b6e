package frame_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestWireValuesPinned(t *testing.T) {
	assert.Equal(t, 12, frame.HeaderSize)
	assert.Equal(t, uint8(1), frame.Version)
	assert.Equal(t, 1, frame.VersionSize)
	assert.Equal(t, 4, frame.ChannelSize)
	assert.Equal(t, 4, frame.LengthSize)
	assert.Equal(t, frame.Flags(1), frame.FlagEOF)
	want := map[frame.Type]uint8{
		frame.Hello: 0x01, frame.Ping: 0x02, frame.Pong: 0x03, frame.GoAway: 0x04, frame.Error: 0x05, frame.Auth: 0x06, frame.AuthReply: 0x07,
		frame.Open: 0x10, frame.OpenOK: 0x11, frame.Close: 0x12,
		frame.Stdin: 0x20, frame.Stdout: 0x21, frame.Stderr: 0x22, frame.Data: 0x23,
		frame.Window: 0x30, frame.Signal: 0x31, frame.Resize: 0x32, frame.Exit: 0x33, frame.Done: 0x34,
		frame.Request: 0x40, frame.Reply: 0x41,
	}
	for typ, v := range want {
		t.Run(typ.String(), func(t *testing.T) {
			assert.Equal(t, v, uint8(typ))
			assert.True(t, typ.Known())
		})
	}
	for v := 0; v < 256; v++ {
		if _, ok := want[frame.Type(v)]; !ok {
			assert.False(t, frame.Type(v).Known(), "type %#x", v)
		}
	}
	h := frame.AppendHeader(nil, frame.Header{Version: 1, Type: frame.Stdout, Flags: frame.FlagEOF, Channel: 0x01020304, Length: 0x0a0b0c0d})
	assert.Equal(t, "01210100010203040a0b0c0d", hex.EncodeToString(h))
}

// goldenFrames is one frame of every type, as the daemon and client send them.
func goldenFrames(t *testing.T) map[string][]byte {
	t.Helper()
	enc := func(typ frame.Type, flags frame.Flags, ch uint32, msg any) []byte {
		var buf bytes.Buffer
		w := frame.NewWriter(&buf, 0)
		var err error
		switch m := msg.(type) {
		case []byte:
			err = w.WriteFrame(typ, flags, ch, m)
		case nil:
			err = w.WriteFrame(typ, flags, ch, nil)
		default:
			err = w.WriteJSON(typ, ch, m)
		}
		require.NoError(t, err)
		return buf.Bytes()
	}
	return map[string][]byte{
		"hello": enc(frame.Hello, 0, 0, &frame.HelloMsg{Software: "rexec/0.1", MaxPayload: frame.DefaultMaxPayload}),
		"auth":  enc(frame.Auth, 0, 0, &frame.AuthMsg{Method: frame.AuthPassword, User: "alice", Password: "correct horse"}),
		"auth_reply": enc(frame.AuthReply, 0, 0, &frame.AuthReplyMsg{OK: true, User: "alice", Allow: []string{"exec", "get", "put"},
			Message: "welcome, alice"}),
		"ping":    enc(frame.Ping, 0, 0, []byte{0, 0, 0, 0, 0, 0, 0, 1}),
		"pong":    enc(frame.Pong, 0, 0, []byte{0, 0, 0, 0, 0, 0, 0, 1}),
		"goaway":  enc(frame.GoAway, 0, 0, &frame.GoAwayMsg{Reason: "server shutting down"}),
		"error":   enc(frame.Error, 0, 3, &frame.ErrorMsg{Code: frame.CodeExecFailed, Message: "exec: \"nope\": executable file not found in $PATH"}),
		"open":    enc(frame.Open, 0, 1, &frame.OpenMsg{Kind: frame.KindExec, Argv: []string{"echo", "hi"}, Window: 1 << 20}),
		"open_ok": enc(frame.OpenOK, 0, 1, &frame.OpenOKMsg{Window: 256 << 10, PID: 4242}),
		"close":   enc(frame.Close, 0, 1, nil),
		"stdin":   enc(frame.Stdin, frame.FlagEOF, 1, []byte("abc\n")),
		"stdout":  enc(frame.Stdout, 0, 1, []byte("hi\n")),
		"stderr":  enc(frame.Stderr, frame.FlagEOF, 1, nil),
		"window":  enc(frame.Window, 0, 1, &frame.WindowMsg{Stream: frame.Stdout, Credit: 512 << 10}),
		"signal":  enc(frame.Signal, 0, 1, &frame.SignalMsg{Signal: "INT"}),
		"resize":  enc(frame.Resize, 0, 1, &frame.ResizeMsg{Cols: 132, Rows: 43}),
		"exit":    enc(frame.Exit, 0, 1, &frame.ExitMsg{Code: 0, DurationMS: 3}),
		"data":    enc(frame.Data, frame.FlagEOF, 3, []byte("file bytes\n")),
		"done": enc(frame.Done, 0, 3, &frame.DoneMsg{Size: 11,
			Hash: "d5c8a2b6a2c6f1a0a4f0c6e1b7b1d9d5f7e3c6a2b1c0d9e8f7a6b5c4d3e2f1a0"}),
		"request": enc(frame.Request, 0, 5, &frame.FileRequest{ID: 1, Op: frame.OpList, Path: "logs"}),
		"reply": enc(frame.Reply, 0, 5, &frame.FileReply{ID: 1, Entries: []frame.FileInfo{
			{Name: "日志 1.txt", Type: frame.FileRegular, Size: 5 << 30, Mode: 0o644, MtimeNS: 1700000000123456789}}}),
	}
}

func TestGoldenFrames(t *testing.T) {
	frames := goldenFrames(t)
	assert.Len(t, frames, 21, "one golden frame per type")
	for name, got := range frames {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "golden", name+".hex")
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./frame -update to create")
			assert.Equal(t, strings.TrimSpace(string(want)), hex.EncodeToString(got))
			// and it decodes back to a frame of that type
			f, err := frame.NewReader(bytes.NewReader(got), 0).ReadFrame()
			require.NoError(t, err)
			assert.Equal(t, name, f.Type.String())
		})
	}
}

func TestReaderErrors(t *testing.T) {
	valid := frame.AppendHeader(nil, frame.Header{Version: 1, Type: frame.Stdout, Channel: 1, Length: 3})
	valid = append(valid, "abc"...)
	hdr := func(v, typ, flags, res byte, ch, length uint32) []byte {
		b := []byte{v, typ, flags, res, byte(ch >> 24), byte(ch >> 16), byte(ch >> 8), byte(ch), byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty stream is clean EOF", nil, io.EOF},
		{"truncated header", valid[:5], io.ErrUnexpectedEOF},
		{"truncated payload", valid[:frame.HeaderSize+1], io.ErrUnexpectedEOF},
		{"header only, payload missing", valid[:frame.HeaderSize], io.ErrUnexpectedEOF},
		{"huge length", hdr(1, 0x21, 0, 0, 1, 0xFFFFFFFF), frame.ErrTooLarge},
		{"wrong version", hdr(2, 0x21, 0, 0, 1, 0), frame.ErrVersion},
		{"version zero", hdr(0, 0x21, 0, 0, 1, 0), frame.ErrVersion},
		{"unknown type", hdr(1, 0x7f, 0, 0, 1, 0), frame.ErrUnknownType},
		{"reserved set", hdr(1, 0x21, 0, 1, 1, 0), frame.ErrReserved},
		{"unknown flag", hdr(1, 0x21, 0x80, 0, 1, 0), frame.ErrFlags},
		{"eof flag on control", hdr(1, 0x33, 1, 0, 1, 0), frame.ErrFlags},
		{"hello on a channel", hdr(1, 0x01, 0, 0, 5, 0), frame.ErrChannel},
		{"stdout on channel 0", hdr(1, 0x21, 0, 0, 0, 0), frame.ErrChannel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := frame.NewReader(bytes.NewReader(tc.in), 1024).ReadFrame()
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestReaderSequence(t *testing.T) {
	var buf bytes.Buffer
	w := frame.NewWriter(&buf, 0)
	require.NoError(t, w.WriteFrame(frame.Stdout, 0, 1, []byte("one")))
	require.NoError(t, w.WriteFrame(frame.Stderr, frame.FlagEOF, 1, []byte("two")))
	require.NoError(t, w.WriteJSON(frame.Exit, 1, &frame.ExitMsg{Code: 3}))
	r := frame.NewReader(&buf, 0)
	f, err := r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, "one", string(f.Payload))
	f, err = r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, frame.Stderr, f.Type)
	assert.Equal(t, frame.FlagEOF, f.Flags)
	f, err = r.ReadFrame()
	require.NoError(t, err)
	var m frame.ExitMsg
	require.NoError(t, frame.Unmarshal(f.Payload, &m))
	assert.Equal(t, int64(3), m.Code)
	_, err = r.ReadFrame()
	assert.Equal(t, io.EOF, err)
}

func TestHugeLengthAllocatesNothing(t *testing.T) {
	in := frame.AppendHeader(nil, frame.Header{Version: 1, Type: frame.Stdout, Channel: 1, Length: 0xFFFFFFFF})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		_, err := frame.NewReader(bytes.NewReader(in), 0).ReadFrame()
		require.ErrorIs(t, err, frame.ErrTooLarge)
	}
	runtime.ReadMemStats(&after)
	perRead := (after.TotalAlloc - before.TotalAlloc) / 100
	t.Logf("%d bytes allocated per refused frame", perRead)
	assert.Less(t, perRead, uint64(2048), "nothing sized by the declared length")
}

func TestWriterRefusesOversize(t *testing.T) {
	var buf bytes.Buffer
	w := frame.NewWriter(&buf, 8)
	require.ErrorIs(t, w.WriteFrame(frame.Stdout, 0, 1, make([]byte, 9)), frame.ErrTooLarge)
	assert.Zero(t, buf.Len(), "nothing written")
}

func TestStreamWriterSplits(t *testing.T) {
	var buf bytes.Buffer
	sw := frame.NewStreamWriter(frame.NewWriter(&buf, 4096), frame.Stdout, 7)
	data := bytes.Repeat([]byte("x"), 10000)
	n, err := sw.Write(data)
	require.NoError(t, err)
	assert.Equal(t, len(data), n)
	r := frame.NewReader(&buf, 4096)
	var got []byte
	var sizes []uint32
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		assert.Equal(t, uint32(7), f.Channel)
		sizes = append(sizes, f.Length)
		got = append(got, f.Payload...)
	}
	assert.Equal(t, []uint32{4096, 4096, 1808}, sizes)
	assert.Equal(t, data, got)
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want frame.Code
	}{
		{frame.ErrTooLarge, frame.CodeTooLarge},
		{frame.ErrVersion, frame.CodeVersion},
		{frame.ErrUnknownType, frame.CodeUnknownType},
		{frame.ErrReserved, frame.CodeBadFrame},
		{frame.ErrFlags, frame.CodeBadFrame},
		{io.ErrUnexpectedEOF, frame.CodeTruncated},
		{frame.ErrMalformed, frame.CodeMalformed},
		{frame.ErrInvalid, frame.CodeInvalid},
		{errors.New("other"), frame.CodeInternal},
	}
	for _, tc := range tests {
		t.Run(string(tc.want), func(t *testing.T) {
			assert.Equal(t, tc.want, frame.CodeOf(tc.err))
		})
	}
}
