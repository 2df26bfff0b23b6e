package main

import "strings"

// hostDirName is the folder a fan-out get fills for host: its name as
// written, with the characters Windows refuses in names made '_'.
func hostDirName(host string) string {
	n := strings.Map(func(r rune) rune {
		if strings.ContainsRune(`/\:*?"<>|`, r) {
			return '_'
		}
		return r
	}, host)
	if n == "." || n == ".." || n == "" {
		n = "_" + n
	}
	return n
}
