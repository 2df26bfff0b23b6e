package frame

import "slices"

// KindSpec is what the protocol says of a channel kind: the one list of
// kinds both ends (and a control master between them) read, so that a
// kind added here is known everywhere or refused.
type KindSpec struct {
	Name string
	// Receives lists the streams the daemon sends the client under the
	// credit the open grants (OpenMsg.Window) and window messages renew.
	// A pty merges stderr into stdout (ReceivesFor).
	Receives []Type
	// Sends lists the streams the client sends under the daemon's credit.
	Sends []Type
	// Files: the channel works on the user's files, resolved as get and
	// put resolve paths.
	Files bool
}

// kindSpecs is the table of kinds, in the order they are shown.
var kindSpecs = []KindSpec{
	{Name: KindExec, Receives: []Type{Stdout, Stderr}, Sends: []Type{Stdin}},
	{Name: KindAttach, Receives: []Type{Stdout, Stderr}, Sends: []Type{Stdin}},
	{Name: KindJobs, Receives: []Type{Stdout}},
	{Name: KindGet, Receives: []Type{Data}, Files: true},
	{Name: KindPut, Sends: []Type{Data}, Files: true},
	{Name: KindFS, Files: true},
	{Name: KindTail, Receives: []Type{Data}, Files: true},
}

// Kinds returns every channel kind of the protocol.
func Kinds() []KindSpec {
	out := slices.Clone(kindSpecs)
	for i := range out {
		out[i].Receives, out[i].Sends = slices.Clone(out[i].Receives), slices.Clone(out[i].Sends)
	}
	return out
}

// LookupKind returns the spec of a kind; false for a kind the protocol
// does not define (a daemon refuses it).
func LookupKind(name string) (KindSpec, bool) {
	for _, k := range kindSpecs {
		if k.Name == name {
			return k, true
		}
	}
	return KindSpec{}, false
}

// ReceivesFor is the streams the daemon sends on the channel m opens.
func ReceivesFor(m *OpenMsg) []Type {
	k, ok := LookupKind(m.Kind)
	if !ok {
		return nil
	}
	if m.Pty != nil {
		return slices.DeleteFunc(slices.Clone(k.Receives), func(t Type) bool { return t == Stderr })
	}
	return slices.Clone(k.Receives)
}
