//go:build !unix

package xfer

import "os"

const openNonblock = 0

// renameOpen: Windows cannot rename a file that is open; the partial copy
// is closed first.
const renameOpen = false

// tryLockFile always succeeds: partial copies are locked within one
// process only (Locks).
func tryLockFile(*os.File) (bool, error) { return true, nil }
