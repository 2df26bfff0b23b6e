package rexec_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/rexec"
)

// A legacy program writing GBK on a daemon told so (--encoding gbk) arrives
// as UTF-8, even with a character split across two writes and a pause;
// raw keeps the bytes; stdin goes the other way.
func TestEncodingGBK(t *testing.T) {
	d := execdtest.Start(t, &execd.Server{Encoding: "gbk"}, false)
	c := dial(t, d)
	run := func(enc, stdin, shell string) ([]byte, *rexec.Exit) {
		t.Helper()
		s, err := c.NewSession()
		require.NoError(t, err)
		s.Encoding = enc
		if stdin != "" {
			s.Stdin = bytes.NewBufferString(stdin)
		}
		var out bytes.Buffer
		s.Stdout = &out
		require.NoError(t, s.StartShell(t.Context(), shell))
		require.NoError(t, s.Wait())
		return out.Bytes(), s.Exit()
	}
	// 中文 in GBK is d6 d0 ce c4; the first character is split over two writes.
	out, exit := run("", "", `printf '\326'; sleep 0.2; printf '\320\316\304 \200\n'`)
	assert.Equal(t, "中文 €\n", string(out))
	assert.Equal(t, "gbk", exit.Encoding)

	out, exit = run("raw", "", `printf '\326\320\316\304'`)
	assert.Equal(t, []byte{0xd6, 0xd0, 0xce, 0xc4}, out)
	assert.Equal(t, "raw", exit.Encoding)

	out, _ = run("", "", `printf 'ok\201 \377'`)
	assert.Equal(t, "ok\ufffd \ufffd", string(out), "invalid bytes become U+FFFD")

	out, _ = run("", "中文", `od -An -tx1 | tr -d ' \n'`)
	assert.Equal(t, "d6d0cec4", string(out), "stdin typed as UTF-8 reaches the command in its code page")

	// utf-8 passes bytes through untouched.
	d2 := execdtest.Start(t, &execd.Server{Encoding: "utf-8"}, false)
	c2 := dial(t, d2)
	s, err := c2.NewSession()
	require.NoError(t, err)
	var o bytes.Buffer
	s.Stdout = &o
	require.NoError(t, s.Run(t.Context(), "printf", `\326\320\377`))
	assert.Equal(t, []byte{0xd6, 0xd0, 0xff}, o.Bytes())
	assert.Equal(t, "utf-8", s.Exit().Encoding)

	// An encoding the protocol does not know is refused before anything runs.
	s, err = c.NewSession()
	require.NoError(t, err)
	s.Encoding = "ebcdic"
	err = s.Run(t.Context(), "true")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "encoding")
}
