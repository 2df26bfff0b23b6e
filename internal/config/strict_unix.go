//go:build unix

package config

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Unsafe says why a file the daemon trusts (its configuration, its users)
// must not be used, as sshd's StrictModes does: writable by group or
// others, or owned by an account other than the daemon's or root.
// "" when it is safe, or not a regular file (/dev/null).
func Unsafe(fi fs.FileInfo) string {
	if !fi.Mode().IsRegular() {
		return ""
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Sprintf("writable by group or others (mode %04o): whoever can write it can change the daemon; chmod go-w it", m)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Sprintf("owned by uid %d, neither root nor the daemon's account: chown it", st.Uid)
	}
	return ""
}
