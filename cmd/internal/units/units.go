// Package units formats byte counts for people, the same way in rexec and
// execd.
package units

import "fmt"

// Bytes shows n with one decimal in binary units ("1.5" sep "MiB"); below
// 1 KiB it shows whole bytes ("512" sep "B").
func Bytes(n uint64, sep string) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d%sB", n, sep)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%s%ciB", float64(n)/float64(div), sep, "KMGTPE"[exp])
}
