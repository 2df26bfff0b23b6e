package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/rexec"
)

// Exit statuses of rexec itself, apart from the remote command's.
const (
	exitUsage     = 2
	exitNotFound  = rexec.StatusNotFound   // the command could not be started, as a shell reports it
	exitTransport = rexec.StatusConnection // connection, TLS, identity or protocol failure, as ssh
)

// exitError ends rexec with a status: a remote command's, or one of
// rexec's own after a one-line message. Commands return it; exitCode
// alone turns it into the process's exit status.
type exitError struct {
	status int
	msg    string // printed as "rexec: msg"; empty: nothing more to say
}

func (e *exitError) Error() string { return e.msg }

// fail is the error that ends rexec with status after one line.
func fail(status int, format string, args ...any) error {
	return &exitError{status: status, msg: fmt.Sprintf(format, args...)}
}

// exitWith ends rexec with status and no message (a remote command's
// status, or a failure already reported); nil for 0.
func exitWith(status int) error {
	if status == 0 {
		return nil
	}
	return &exitError{status: status}
}

// result is a subcommand's result as cobra's RunE returns it: nil or an
// *exitError, so that run tells it from cobra's complaints about the
// command line.
func result(err error) error {
	if err == nil {
		return nil
	}
	return asExit(err)
}

// asExit is a non-nil err as an *exitError: any other error is a
// failure of the connection, the daemon or the protocol (255), said in
// one line.
func asExit(err error) *exitError {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee
	}
	return &exitError{status: exitTransport, msg: strings.TrimPrefix(err.Error(), "rexec: ")}
}

// exitCode is the one place where a command's result becomes rexec's
// exit status: 0 for nil; else the error's status, after its message.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	ee := asExit(err)
	if ee.msg != "" {
		fmt.Fprintf(stderr, "rexec: %s\n", termsafe.String(ee.msg))
	}
	return ee.status
}
