//go:build !unix

package execd

import "os"

// lockFile is a no-op where flock is missing: concurrent "execd user"
// edits there may lose one of them (each write is still whole).
func lockFile(string) (func(), error) { return func() {}, nil }

// tryLock: no flock here, so a second daemon on the same state directory
// could take a live daemon's jobs for records.
func tryLock(*os.File) (bool, error) { return true, nil }
