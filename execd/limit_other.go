//go:build !unix

package execd

// openFileLimit is 0: no per-process limit on open handles to respect.
func openFileLimit() int { return 0 }
