package xfer

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWindowsNames(t *testing.T) {
	for _, el := range []string{"CON", "con", "con.txt", "Nul.tar.gz", "COM1", "lpt9.log", "aux", "PRN.", "CONIN$",
		"a:b", "what?", "x*y", "trailing.", "trailing ", "tab\there"} {
		assert.NotEmpty(t, windowsNameProblem(el), el)
	}
	for _, el := range []string{"console", "COM10", "com0", "LPT", "数据.txt", "report 2024.pdf", ".hidden", "..", ".", "~", "a.b.c"} {
		assert.Empty(t, windowsNameProblem(el), el)
	}
}
