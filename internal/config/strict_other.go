//go:build !unix

package config

import "io/fs"

// Unsafe: Windows keeps rights in ACLs, which this does not read.
func Unsafe(fs.FileInfo) string { return "" }
