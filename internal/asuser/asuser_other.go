//go:build !linux

package asuser

import "errors"

// Supported reports whether file work can be done as another account.
func Supported() bool { return false }

// errUnsupported is every call's error where a thread cannot take
// another account's identity.
var errUnsupported = errors.New("file operations as another account are supported on Linux only: run the daemon as that account")

func call[T any](Cred, func() (T, error)) (T, error) {
	var zero T
	return zero, errUnsupported
}
