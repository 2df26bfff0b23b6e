//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"fmt"
	"os"

	"golang.org/x/term"
)

// readPassword prints the prompt and reads a line without echo.
func readPassword(tty *os.File, prompt string) (string, error) {
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	return string(b), err
}
