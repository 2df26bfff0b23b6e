//go:build !unix

package execd

// lockFile is a no-op where flock is missing: concurrent "execd user"
// edits there may lose one of them (each write is still whole).
func lockFile(string) (func(), error) { return func() {}, nil }
