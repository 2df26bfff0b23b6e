//go:build unix

package execd

import "golang.org/x/sys/unix"

// openFileLimit is the soft limit on open files, or 0 when unknown.
func openFileLimit() int {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil || r.Cur == unix.RLIM_INFINITY || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}
