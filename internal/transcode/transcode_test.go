package transcode

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/simplifiedchinese"
)

func gbk(t testing.TB, s string) []byte {
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	require.NoError(t, err)
	return b
}

// chunks reads b in the given pieces, one per Read.
type chunks struct{ parts [][]byte }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func decodeAll(t *testing.T, r io.Reader, name string) string {
	t.Helper()
	d, err := Decoder(r, name)
	require.NoError(t, err)
	out, err := io.ReadAll(d)
	require.NoError(t, err)
	return string(out)
}

// A character split across two reads (two frames, two pipe reads) is
// never broken: every split point of a mixed text gives the same UTF-8.
func TestSplitAtEveryByte(t *testing.T) {
	text := "驱动器 C 中的卷没有标签。 Volume in drive C: 中文测试.txt 2024/01/01 €5\r\n"
	src := gbk(t, text)
	for i := 0; i <= len(src); i++ {
		for j := i; j <= len(src); j += 3 {
			got := decodeAll(t, &chunks{parts: [][]byte{bytes.Clone(src[:i]), bytes.Clone(src[i:j]), bytes.Clone(src[j:])}}, GBK)
			require.Equal(t, text, got, "split at %d and %d", i, j)
		}
	}
	// and one byte per read
	assert.Equal(t, text, decodeAll(t, iotest.OneByteReader(bytes.NewReader(src)), GBK))
}

func TestInvalidBytesBecomeReplacement(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"lead byte then a space", []byte("a\x81 b"), "a\ufffd b"},
		{"lone lead byte at the end", []byte("ok\xd6"), "ok\ufffd"},
		{"0xff", []byte("x\xffy"), "x\ufffdy"},
		{"euro sign at 0x80", []byte("\x80100"), "€100"},
		{"ascii only", []byte("dir /w\r\n"), "dir /w\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeAll(t, bytes.NewReader(tt.in), GBK)
			assert.Equal(t, tt.want, got)
			assert.True(t, utf8.ValidString(got))
		})
	}
}

func TestGB18030AndPassThrough(t *testing.T) {
	b, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte("𠀀 中文"))
	require.NoError(t, err)
	assert.Equal(t, "𠀀 中文", decodeAll(t, bytes.NewReader(b), GB18030))
	bin := []byte{0, 0xff, 0x80, 0xd6, '\n'}
	for _, n := range []string{UTF8, Raw} {
		d, err := Decoder(bytes.NewReader(bin), n)
		require.NoError(t, err)
		out, _ := io.ReadAll(d)
		assert.Equal(t, bin, out, "%s passes bytes untouched", n)
	}
	_, err = Decoder(bytes.NewReader(nil), "ebcdic")
	assert.ErrorIs(t, err, ErrUnknown)
}

func TestEncoderForStdin(t *testing.T) {
	e, err := Encoder(strings.NewReader("中文 ok €"), GBK)
	require.NoError(t, err)
	out, err := io.ReadAll(e)
	require.NoError(t, err)
	assert.Equal(t, gbk(t, "中文 ok €"), out)
	e, err = Encoder(strings.NewReader("emoji 😀 end"), GBK)
	require.NoError(t, err)
	out, err = io.ReadAll(e)
	require.NoError(t, err)
	assert.Contains(t, string(out), "emoji ", "a character GBK lacks is replaced, the rest kept")
	assert.Contains(t, string(out), " end")
}

func TestNames(t *testing.T) {
	for _, n := range []string{"", "auto", "UTF-8", "utf8", "GBK", "cp936", "gb18030", "raw"} {
		assert.NoError(t, Check(n), n)
	}
	assert.ErrorIs(t, Check("latin9"), ErrUnknown)
	assert.Equal(t, GBK, Normalize("CP936"))
	for cp, want := range map[uint32]string{936: GBK, 65001: UTF8, 1252: "windows-1252", 54936: GB18030} {
		got, err := ForCodePage(cp)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ForCodePage(12345)
	assert.ErrorIs(t, err, ErrUnknown)
}

// A 64 MiB stream goes through in bounded memory.
func TestLargeStreamBoundedMemory(t *testing.T) {
	line := gbk(t, "这是一行中文输出 line of output 0123456789\r\n")
	const total = 64 << 20
	src := io.LimitReader(&repeat{b: line}, total)
	d, err := Decoder(src, GBK)
	require.NoError(t, err)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]byte, 32<<10)
	var n int64
	var peak uint64
	for {
		k, err := d.Read(buf)
		n += int64(k)
		if n%(8<<20) < int64(k) {
			runtime.ReadMemStats(&after)
			peak = max(peak, after.HeapInuse)
		}
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	assert.Greater(t, n, int64(total), "UTF-8 is longer than GBK for Chinese")
	assert.Less(t, peak, before.HeapInuse+8<<20, "memory stays flat while 64 MiB stream through")
}

type repeat struct {
	b   []byte
	off int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}
