// Package termsafe makes text that came from a peer harmless to print on
// a terminal.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// String makes text that came from a daemon (file names, link targets,
// error messages, the software it announces) harmless to print on a
// terminal: control characters, C1 controls, bidirectional overrides and
// bytes that are not UTF-8 are written as escapes (\033, \n, \u202e,
// \xff), as ls -b does, so that a hostile daemon cannot retitle the
// window, clear the screen or disguise a name. Printable text, Chinese
// included, is unchanged.
func String(s string) string {
	if !NeedsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\%03o`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// NeedsEscape reports whether String would change s.
func NeedsEscape(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || unsafeRune(r) {
			return true
		}
	}
	return false
}

// unsafeRune: C1 controls, and the format characters that reorder or hide
// text (bidirectional embeddings, overrides and isolates; zero-width marks).
func unsafeRune(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) ||
		r == 0x200e || r == 0x200f || r == 0x061c || r == 0xfeff
}
