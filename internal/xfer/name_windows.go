package xfer

import "strings"

// platformNameProblem refuses names Windows cannot hold.
func platformNameProblem(el string) string { return windowsNameProblem(el) }

// platformSeparators lets a Windows user write remote paths their way:
// logs\app.log is logs/app.log (a backslash cannot be in a name there).
func platformSeparators(p string) string { return strings.ReplaceAll(p, `\`, "/") }
