// Command rexec runs a command on an execd daemon, as ssh does on sshd:
//
//	rexec [flags] HOST[:PORT] [--] COMMAND [ARGS...]
//
// Called as ssh (a link), or as "rexec --ssh", it takes ssh's command line
// instead (see sshmode.go).
//
// Its exit status is the remote command's (128+N for a signal), 255 for a
// connection or protocol failure, 2 for a usage error.
package main

import (
	"context"
	"os"
)

func main() {
	sigs := make(chan os.Signal, 8)
	notifySignals(sigs)
	exe, _ := os.Executable() // none: no control masters
	err := start(context.Background(), os.Args[0], os.Args[1:], env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		signals: sigs, getenv: os.Getenv, listEnv: os.Environ, exe: exe,
	})
	os.Exit(exitCode(err, os.Stderr))
}
