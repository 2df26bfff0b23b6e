package frame

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every kind of the table has its own rules in OpenMsg.Validate (an open
// of it is not refused as an unknown kind), and a kind not in the table
// is refused.
func TestKindsAreValidated(t *testing.T) {
	for _, k := range Kinds() {
		err := (&OpenMsg{Kind: k.Name, Window: 1}).Validate()
		if err != nil {
			assert.NotContains(t, err.Error(), "unknown channel kind", k.Name)
		}
		assert.True(t, len(k.Receives) > 0 || len(k.Sends) > 0 || k.Name == KindFS, "%s moves no stream", k.Name)
	}
	err := (&OpenMsg{Kind: "forward", Window: 1}).Validate()
	assert.True(t, errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), "unknown channel kind"), "%v", err)
	_, ok := LookupKind("forward")
	assert.False(t, ok)
}

func TestReceivesFor(t *testing.T) {
	assert.Equal(t, []Type{Stdout, Stderr}, ReceivesFor(&OpenMsg{Kind: KindExec}))
	assert.Equal(t, []Type{Stdout}, ReceivesFor(&OpenMsg{Kind: KindExec, Pty: &PtyRequest{}}), "a pty merges stderr")
	assert.Equal(t, []Type{Data}, ReceivesFor(&OpenMsg{Kind: KindTail}))
	assert.Empty(t, ReceivesFor(&OpenMsg{Kind: KindPut}))
	assert.Empty(t, ReceivesFor(&OpenMsg{Kind: "nope"}))
}
