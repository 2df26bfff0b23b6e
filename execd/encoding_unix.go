//go:build unix

package execd

import (
	"os"
	"strings"

	"github.com/execd-project/execd/internal/transcode"
)

// autoEncoding is the charset of the daemon's locale (LC_ALL, LC_CTYPE,
// LANG): a legacy zh_CN.GBK system gets its output transcoded; anything
// else is taken to be UTF-8 and passed through untouched.
func autoEncoding(bool) string {
	for _, v := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		loc := os.Getenv(v)
		if loc == "" {
			continue
		}
		_, cs, _ := strings.Cut(loc, ".")
		cs, _, _ = strings.Cut(cs, "@")
		switch strings.ToLower(strings.ReplaceAll(cs, "-", "")) {
		case "gbk", "gb2312", "cp936", "euccn":
			return transcode.GBK
		case "gb18030":
			return transcode.GB18030
		}
		return transcode.UTF8
	}
	return transcode.UTF8
}
