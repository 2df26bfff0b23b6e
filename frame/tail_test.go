package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTailRecordsRoundTrip(t *testing.T) {
	recs := []*TailRecord{
		{File: &TailFile{TailPos: TailPos{Dev: 1, Ino: 2, Offset: 3}, Reason: "start"}},
		{Offset: 3, Data: []byte("line 1\n")},
		{Offset: 10, Data: []byte{}},
		{File: &TailFile{TailPos: TailPos{Dev: 1, Ino: 9}, Reason: "rotated"}},
		{Offset: 0, Data: bytes.Repeat([]byte("x"), MaxTailData)},
	}
	var b []byte
	for _, r := range recs {
		b = AppendTailRecord(b, r)
	}
	tr := NewTailReader(bytes.NewReader(b))
	for _, want := range recs {
		got, err := tr.Next()
		require.NoError(t, err)
		if want.File != nil {
			assert.Equal(t, want.File, got.File)
			continue
		}
		assert.Nil(t, got.File)
		assert.Equal(t, want.Offset, got.Offset)
		assert.Equal(t, len(want.Data), len(got.Data))
		assert.True(t, bytes.Equal(want.Data, got.Data))
	}
	_, err := tr.Next()
	assert.Equal(t, io.EOF, err)
}

func TestTailRecordsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"unknown type":  {'X'},
		"file cut":      {'F', 0, 0},
		"data cut":      append(AppendTailRecord(nil, &TailRecord{Data: []byte("abc")}), 0)[:14],
		"data too long": {'D', 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff},
		"reason":        {'F', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff},
		"past the end":  {'D', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 'x'},
	} {
		_, err := NewTailReader(bytes.NewReader(b)).Next()
		assert.True(t, errors.Is(err, ErrMalformed), "%s: %v", name, err)
	}
}

func TestTailRequestValidate(t *testing.T) {
	m := &OpenMsg{Kind: KindTail, Window: 1, Path: "log", Tail: &TailRequest{Grep: "("}}
	assert.ErrorIs(t, m.Validate(), ErrInvalid)
	m.Tail.Grep = "ERROR|WARN"
	assert.NoError(t, m.Validate())
	m.Tail = nil
	assert.ErrorIs(t, m.Validate(), ErrInvalid)
}

// FuzzTailRecords: any bytes decode to records or an error, never a
// panic, and what decodes encodes back to the same bytes.
func FuzzTailRecords(f *testing.F) {
	f.Add(AppendTailRecord(AppendTailRecord(nil, &TailRecord{File: &TailFile{Reason: "start"}}), &TailRecord{Offset: 5, Data: []byte("hi\n")}))
	f.Add([]byte{'D', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := NewTailReader(bytes.NewReader(b))
		var again []byte
		for {
			rec, err := tr.Next()
			if err != nil {
				if err == io.EOF {
					assert.True(t, bytes.Equal(b, again), "%x re-encodes as %x", b, again)
				}
				return
			}
			again = AppendTailRecord(again, rec)
		}
	})
}
