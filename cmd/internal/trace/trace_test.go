package trace

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
)

func TestText(t *testing.T) {
	var b bytes.Buffer
	tr := New(&b, "rexec", false)
	tr.TraceFrame(true, frame.Header{Version: 1, Type: frame.Open, Channel: 1, Length: 16}, []byte(`{"kind":"exec"}`))
	tr.TraceFrame(false, frame.Header{Version: 1, Type: frame.Stdout, Channel: 1, Length: 7}, []byte("中文\n"))
	out := b.String()
	assert.Regexp(t, `ms rexec -> open +ch=1 +flags=00 len=16 +\[01 10 00 00 00 00 00 01 00 00 00 10\]\n    \{\n      "kind": "exec"\n    \}\n`, out)
	assert.Regexp(t, `ms rexec <- stdout +ch=1 .*\[01 21 00 00 00 00 00 01 00 00 00 07\] "中文\\n"\n`, out)
}

func TestJSONAndMask(t *testing.T) {
	var b bytes.Buffer
	tr := New(&b, "rexec", true).For("rexec lab1")
	tr.TraceFrame(true, frame.Header{Version: 1, Type: frame.Auth, Length: 50}, []byte(`{"method":"password","user":"alice","password":"s3cret"}`))
	tr.TraceFrame(false, frame.Header{Version: 1, Type: frame.Data, Channel: 3, Length: 200}, bytes.Repeat([]byte{0xff}, 200))
	assert.NotContains(t, b.String(), "s3cret", "passwords never reach a trace")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	var r Record
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &r))
	assert.Equal(t, "rexec lab1", r.Side)
	assert.Equal(t, "send", r.Dir)
	assert.Equal(t, "auth", r.Type)
	assert.Equal(t, "010600000000000000000032", r.Header)
	assert.JSONEq(t, `{"method":"password","user":"alice","password":"********"}`, string(r.JSON))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &r))
	assert.Equal(t, "recv", r.Dir)
	assert.Equal(t, uint32(200), r.Length)
	assert.Equal(t, strings.Repeat(`\xff`, 64), strings.Trim(strings.TrimSuffix(r.Preview, "…"), `"`), "a short preview")
}

func TestTee(t *testing.T) {
	assert.Nil(t, Tee(nil, nil))
	assert.Nil(t, Pair{}.For("x"))
	var a, b bytes.Buffer
	tr := Pair{Text: New(&a, "x", false), File: New(&b, "x", true)}.For("execd 1.2.3.4:5")
	tr.TraceFrame(true, frame.Header{Version: 1, Type: frame.Ping, Length: 0}, nil)
	assert.Contains(t, a.String(), "execd 1.2.3.4:5 -> ping")
	assert.Contains(t, b.String(), `"side":"execd 1.2.3.4:5"`)
}

// FuzzTraceFrame: any payload of any type is traced without a crash, and a
// password never shows.
func FuzzTraceFrame(f *testing.F) {
	f.Add(uint8(frame.Auth), []byte(`{"method":"password","user":"a","password":"pw-secret"}`))
	f.Add(uint8(frame.Stdout), []byte("\xff\xfe中"))
	f.Add(uint8(frame.Open), []byte(`{"kind":"exec","argv":["ls"]}`))
	f.Fuzz(func(t *testing.T, typ uint8, payload []byte) {
		var b bytes.Buffer
		for _, js := range []bool{false, true} {
			New(&b, "x", js).TraceFrame(true, frame.Header{Version: 1, Type: frame.Type(typ), Length: uint32(len(payload))}, payload)
		}
		if typ == uint8(frame.Auth) && bytes.Contains(payload, []byte(`"password":"pw-secret"`)) && bytes.Contains(b.Bytes(), []byte("pw-secret")) && json.Valid(payload) {
			var m map[string]any
			if json.Unmarshal(payload, &m) == nil {
				t.Fatalf("the password leaked: %s", b.String())
			}
		}
	})
}
