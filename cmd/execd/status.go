package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// exitError ends execd with a status (1 for a failure, 2 for a usage
// error) after a one-line message, when there is one. Commands return
// it; exitCode alone turns it into the process's exit status.
type exitError struct {
	status int
	msg    string
}

func (e *exitError) Error() string { return e.msg }

// fail is the error that ends execd with status after one line.
func fail(status int, format string, args ...any) error {
	return &exitError{status: status, msg: fmt.Sprintf(format, args...)}
}

// exitWith ends execd with status and no message (one already logged).
func exitWith(status int) error { return &exitError{status: status} }

// asExit is a non-nil err as an *exitError: any other error is a failure (1).
func asExit(err error) *exitError {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee
	}
	return &exitError{status: 1, msg: err.Error()}
}

// commandResults makes every command of the tree return nil or an
// *exitError, so that execute tells a command's failure (1) from cobra's
// complaints about the command line (2).
func commandResults(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return asExit(err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		commandResults(sub)
	}
}

// exitCode is the one place where a result becomes execd's exit status:
// 0 for nil; else the error's status, after its message.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	ee := asExit(err)
	if ee.msg != "" {
		fmt.Fprintf(stderr, "execd: %s\n", ee.msg)
	}
	return ee.status
}

// reportTo writes err's message to w (the log file of a daemon with no
// console) and returns err with nothing more to say.
func reportTo(w io.Writer, err error) error {
	if err == nil {
		return nil
	}
	ee := asExit(err)
	if ee.msg != "" {
		fmt.Fprintf(w, "execd: %s\n", ee.msg)
	}
	return exitWith(ee.status)
}
