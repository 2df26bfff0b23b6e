//go:build !windows

package xfer

// platformNameProblem: every name other than the wire rules' is fine here.
func platformNameProblem(string) string { return "" }
