package proc

import (
	"bytes"
	"os"
	"strconv"
)

// sessionGroups returns the process groups with a member in session sid,
// read from /proc: with a pty, a shell's background jobs each have their
// own group, and all of them end with the session.
func sessionGroups(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	seen := map[int]bool{}
	var groups []int
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp session ...: comm may hold spaces
		// and parentheses, so fields are counted after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 4 {
			continue
		}
		pgrp, err1 := strconv.Atoi(string(f[2]))
		sess, err2 := strconv.Atoi(string(f[3]))
		if err1 != nil || err2 != nil || sess != sid || seen[pgrp] {
			continue
		}
		seen[pgrp] = true
		groups = append(groups, pgrp)
	}
	return groups
}
