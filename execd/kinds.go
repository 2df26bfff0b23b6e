package execd

import (
	"fmt"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// kindHandler is how the daemon serves one channel kind: the permission
// it needs (and what for, in a refusal) and its handler.
type kindHandler struct {
	perm, what string
	orPut      bool // put grants it too (a file session: either suffices)
	open       func(*serverConn, mux.NewChannel)
}

// kindHandlers is the daemon's table of channel kinds: one row for each
// of frame.Kinds() (TestEveryKindServed). A kind without a row is refused
// as unknown, never granted by default.
var kindHandlers = map[string]kindHandler{
	frame.KindExec:   {perm: PermExec, what: "run commands", open: (*serverConn).openExec},
	frame.KindAttach: {perm: PermExec, what: "run commands", open: (*serverConn).openAttach},
	frame.KindJobs:   {perm: PermExec, what: "run commands", open: (*serverConn).openJobs},
	frame.KindGet:    {perm: PermGet, what: "read files", open: (*serverConn).openGet},
	frame.KindPut:    {perm: PermPut, what: "write files", open: (*serverConn).openPut},
	frame.KindFS:     {perm: PermGet, what: "read files", orPut: true, open: (*serverConn).openFS},
	frame.KindTail:   {perm: PermGet, what: "read files", open: (*serverConn).openTail},
}

// mayOpen says why the account may not open a channel of kind, or nil.
func (a *account) mayOpen(kind string) error {
	k, ok := kindHandlers[kind]
	switch {
	case !ok:
		return fmt.Errorf("unknown channel kind %q", kind)
	case a.can(k.perm), k.orPut && a.can(PermPut):
		return nil
	}
	return a.denied(k.perm, k.what)
}

// servedKind is kind when the protocol defines it (the daemon serves
// every such kind), else "other" (the client names it): a metric's label.
func servedKind(kind string) string {
	if _, ok := frame.LookupKind(kind); ok {
		return kind
	}
	return "other"
}

// filesKind reports whether a channel kind works on the user's files.
func filesKind(kind string) bool {
	k, _ := frame.LookupKind(kind)
	return k.Files
}
