// Package manpage writes the man pages of a command tree (section 1),
// generated from its cobra commands: one page per command, as packages
// install them.
package manpage

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/execd-project/execd/internal/buildinfo"
)

// Command is a hidden "__man DIR" command that writes the pages of the
// tree it is added to into DIR. It is named as cobra's hidden "__complete"
// is, so that it takes no host name from rexec. The pages' date is
// SOURCE_DATE_EPOCH when set (reproducible builds), else today.
func Command() *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "Write the man pages into DIR (for packages)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return Write(cmd.Root(), args[0])
		},
	}
}

// Write writes the pages of root's tree into dir.
func Write(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	date := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		date = time.Unix(sec, 0).UTC()
	}
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{
		Section: "1",
		Date:    &date,
		Source:  root.Name() + " " + buildinfo.Read().Short(),
		Manual:  "execd and rexec",
	}
	return doc.GenManTree(root, header, dir)
}
