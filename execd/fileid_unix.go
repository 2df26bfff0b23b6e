//go:build unix

package execd

import (
	"io/fs"
	"syscall"
)

// fileID is a file's identity: its device and inode.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino //nolint:unconvert // Dev is int32 on some systems
	}
	return 0, 0
}
