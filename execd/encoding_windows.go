package execd

import (
	"golang.org/x/sys/windows"

	"github.com/execd-project/execd/internal/transcode"
)

// autoEncoding is the code page a command writes in: the console's output
// code page when the daemon has a console, else the ANSI code page (a
// service, or output to a pipe). A ConPTY speaks UTF-8.
func autoEncoding(pty bool) string {
	if pty {
		return transcode.UTF8
	}
	cp, _ := windows.GetConsoleOutputCP()
	if cp == 0 {
		cp = windows.GetACP()
	}
	name, err := transcode.ForCodePage(cp)
	if err != nil {
		return transcode.Raw // a code page with no transcoder: bytes as they are
	}
	return name
}
