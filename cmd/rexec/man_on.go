//go:build manpage

package main

import (
	"github.com/spf13/cobra"

	"github.com/execd-project/execd/internal/manpage"
)

// manCommand is the hidden __man DIR, in the build that writes the man
// pages (make man: go build -tags manpage).
func manCommand() *cobra.Command { return manpage.Command() }
