//go:build !windows

package main

import "strings"

// hostDirName is the folder a fan-out get fills for host: its name as
// written, with slashes (and the names . and ..) made harmless.
func hostDirName(host string) string {
	n := strings.ReplaceAll(host, "/", "_")
	if n == "." || n == ".." || n == "" {
		n = "_" + n
	}
	return n
}
