package execd

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/execd-project/execd/frame"
)

// The daemon serves every kind of the protocol's table, and only those:
// a kind added to frame's table without a handler here fails this test,
// not a user (a kind without a row is refused, never granted).
func TestEveryKindServed(t *testing.T) {
	names := map[string]bool{}
	for _, k := range frame.Kinds() {
		names[k.Name] = true
		h, ok := kindHandlers[k.Name]
		if assert.True(t, ok, "no handler for %s", k.Name) {
			assert.NotNil(t, h.open, k.Name)
			assert.Contains(t, AllPerms(), h.perm, k.Name)
		}
	}
	for name := range kindHandlers {
		assert.True(t, names[name], "%s is served but not in the protocol's table", name)
	}
	all := &account{user: User{Name: "u", Allow: AllPerms()}, st: &userState{}}
	none := &account{user: User{Name: "u"}, st: &userState{}}
	putOnly := &account{user: User{Name: "u", Allow: []string{PermPut}}, st: &userState{}}
	for name := range kindHandlers {
		assert.NoError(t, all.mayOpen(name))
		assert.Error(t, none.mayOpen(name), name)
	}
	assert.NoError(t, putOnly.mayOpen(frame.KindFS), "a file session needs get or put")
	assert.Error(t, all.mayOpen("forward"), "an unknown kind is refused, whatever the permissions")
	assert.Equal(t, "other", servedKind("forward"))
	assert.Equal(t, frame.KindJobs, servedKind(frame.KindJobs), "every served kind has its label")
}
