//go:build !windows

package xfer

// platformNameProblem: every name other than the wire rules' is fine here.
func platformNameProblem(string) string { return "" }

// platformSeparators: a backslash is a character of a name here.
func platformSeparators(p string) string { return p }
