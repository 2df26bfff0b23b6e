// Package manpage writes the man pages of a command tree (section 1),
// generated from its cobra commands: one page per command, as packages
// install them.
package manpage

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
)

// Section is a section of the root command's page that cobra does not
// write: ENVIRONMENT, FILES, EXIT STATUS. Items are a term and its text.
type Section struct {
	Title string
	Items [][2]string
}

// Command is a hidden "__man DIR" command that writes the pages of the
// tree it is added to into DIR, with the extra sections on the root's
// page. It is named as cobra's hidden "__complete" is, so that it takes
// no host name from rexec. The pages' date is SOURCE_DATE_EPOCH when set
// (reproducible builds), else today.
func Command(extra ...Section) *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "Write the man pages into DIR (for packages)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return Write(cmd.Root(), args[0], extra...)
		},
	}
}

// Write writes the pages of root's tree into dir, the extra sections on
// root's page before SEE ALSO.
func Write(root *cobra.Command, dir string, extra ...Section) error {
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
	if err := doc.GenManTree(root, header, dir); err != nil {
		return err
	}
	if len(extra) == 0 {
		return nil
	}
	page := filepath.Join(dir, root.Name()+".1")
	b, err := os.ReadFile(page)
	if err != nil {
		return err
	}
	var sb strings.Builder
	for _, sec := range extra {
		fmt.Fprintf(&sb, ".SH %s\n", sec.Title)
		for _, it := range sec.Items {
			fmt.Fprintf(&sb, ".TP\n\\fB%s\\fP\n%s\n", roff(it[0]), roff(it[1]))
		}
		sb.WriteString("\n")
	}
	text := string(b)
	if i := strings.Index(text, ".SH SEE ALSO"); i >= 0 {
		text = text[:i] + sb.String() + text[i:]
	} else {
		text += sb.String()
	}
	return os.WriteFile(page, []byte(text), 0o644)
}

// roff escapes text for a man page: backslashes, and a leading dot or
// quote that roff would take for a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
