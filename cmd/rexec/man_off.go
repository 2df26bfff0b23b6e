//go:build !manpage

package main

import "github.com/spf13/cobra"

// manCommand: the everyday rexec leaves the man page writer out, so that
// it does not initialise its packages at every start (a third of a
// millisecond of a one-shot command's time here).
func manCommand() *cobra.Command { return nil }
