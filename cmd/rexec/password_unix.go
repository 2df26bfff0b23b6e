//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// readPassword turns the terminal's echo off, then prints the prompt and
// reads a line, as ssh does: nothing typed after the prompt appears can
// be echoed, however fast it is typed.
func readPassword(tty *os.File, prompt string) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &quiet); err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer func() { _ = unix.IoctlSetTermios(fd, ioctlSetTermios, old) }() // echo back on, whatever happens
	fmt.Fprint(tty, prompt)
	var b strings.Builder
	one := make([]byte, 1)
	for {
		n, err := tty.Read(one)
		if n == 1 {
			if one[0] == '\n' || one[0] == '\r' {
				break
			}
			b.WriteByte(one[0])
			continue
		}
		if errors.Is(err, io.EOF) || err == nil {
			break
		}
		fmt.Fprintln(tty)
		return "", err
	}
	fmt.Fprintln(tty)
	return b.String(), nil
}
