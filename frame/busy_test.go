package frame

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBusyLine(t *testing.T) {
	for _, b := range []Busy{
		{RetryAfter: 250 * time.Millisecond, Reason: "too many connections from this address still logging in"},
		{RetryAfter: 0, Reason: ""},
		{RetryAfter: time.Second, Reason: "a\nb\x00c"},
	} {
		line := AppendBusy(nil, b)
		assert.Equal(t, byte('E'), line[0])
		assert.Equal(t, byte('\n'), line[len(line)-1])
		got, err := ParseBusy(line)
		require.NoError(t, err)
		assert.Equal(t, b.RetryAfter, got.RetryAfter)
		assert.NotContains(t, got.Reason, "\n")
	}
	for _, bad := range []string{"", "EXECD-BUSY", "EXECD-BUSY x y", "EXECD-BUSY -1 y", "HELLO 1 x"} {
		_, err := ParseBusy([]byte(bad))
		assert.ErrorIs(t, err, ErrMalformed, bad)
	}
}

func FuzzParseBusy(f *testing.F) {
	f.Add([]byte("EXECD-BUSY 250 too many\n"))
	f.Add([]byte("EXECD-BUSY 99999999999 x"))
	f.Fuzz(func(t *testing.T, line []byte) {
		b, err := ParseBusy(line)
		if err != nil {
			return
		}
		again, err := ParseBusy(AppendBusy(nil, b))
		if err != nil || again.RetryAfter != b.RetryAfter {
			t.Fatalf("round trip of %q: %v %v", line, again, err)
		}
	})
}
