package execd

import "io/fs"

// fileID is zero on Windows: a followed file's rotation is noticed by its
// size and first bytes alone.
func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }

// linkCount is 1 on Windows: its hard links are not looked at.
func linkCount(fs.FileInfo) uint64 { return 1 }
