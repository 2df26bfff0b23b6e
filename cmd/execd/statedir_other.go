//go:build !windows

package main

// platformStateDir: elsewhere the XDG rules apply.
func platformStateDir() string { return "" }
