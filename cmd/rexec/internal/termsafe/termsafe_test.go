package termsafe_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain name.txt", "plain name.txt"},
		{"数据 2024.csv", "数据 2024.csv"},
		{"\x1b]0;pwned\x07", `\033]0;pwned\007`},
		{"\x1b[2J\x1b[5mblink", `\033[2J\033[5mblink`},
		{"a\nb\tc\rd", `a\nb\tc\rd`},
		{"bad \xff byte", `bad \xff byte`},
		{"\u009b31m", `\u009b31m`},
		{"gpj.\u202eexe", `gpj.\u202eexe`},
		{"del\x7f", `del\177`},
		{`C:\Users\a`, `C:\Users\a`},
	} {
		assert.Equal(t, tc.want, termsafe.String(tc.in), "%q", tc.in)
	}
}
