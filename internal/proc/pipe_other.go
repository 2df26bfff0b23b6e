//go:build unix && !linux

package proc

import "os"

// growPipe is a no-op where pipe sizes cannot be set.
func growPipe(*os.File) {}
