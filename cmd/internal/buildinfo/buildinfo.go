// Package buildinfo says which build of execd or rexec is running: the
// release, and the commit and time the Go toolchain stamped into the
// binary (runtime/debug.ReadBuildInfo).
package buildinfo

import (
	"regexp"
	"runtime/debug"
	"strings"
)

// Release is the version of this source tree; a binary built by
// `go install module@vX.Y.Z` reports that tag instead.
const Release = "0.1.0"

// pseudo matches the pseudo-versions (v0.0.0-20261130231524-43061731f315,
// with +dirty after changes) the toolchain gives a build of an untagged
// commit: not a release, so Release stands.
var pseudo = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+-(0\.)?([0-9]+\.)?[0-9]{14}-[0-9a-f]{12}(\+dirty)?$|\(devel\)`)

// IsPseudo reports whether a module version is one the toolchain made up
// for an untagged build.
func IsPseudo(v string) bool { return pseudo.MatchString(v) }

// Info is what a binary knows of its build.
type Info struct {
	Version  string // Release, or the module's tag
	Commit   string // the VCS revision, "" when not stamped
	Time     string // the commit's time (RFC 3339), "" when not stamped
	Modified bool   // the tree had changes not committed
	Go       string // the Go toolchain
}

// Read returns the running binary's build information.
func Read() Info {
	info := Info{Version: Release}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.Go = bi.GoVersion
	if v := bi.Main.Version; strings.HasPrefix(v, "v") && !pseudo.MatchString(v) {
		info.Version = strings.TrimPrefix(v, "v")
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Short is the version with the commit's first 12 digits, as a hello and
// a log line give it: "0.1.0+0311492abcde", with "-dirty" after
// uncommitted changes.
func (i Info) Short() string {
	s := i.Version
	if i.Commit != "" {
		s += "+" + i.Commit[:min(12, len(i.Commit))]
	}
	if i.Modified {
		s += "-dirty"
	}
	return s
}

// Long is --version's text after the program's name: "0.1.0 (commit
// 0311492abcdef..., 2026-11-30T23:00:01Z, go1.26.8)".
func (i Info) Long() string {
	var parts []string
	if i.Commit != "" {
		c := "commit " + i.Commit
		if i.Modified {
			c += " with uncommitted changes"
		}
		parts = append(parts, c)
	}
	if i.Time != "" {
		parts = append(parts, i.Time)
	}
	if i.Go != "" {
		parts = append(parts, i.Go)
	}
	if len(parts) == 0 {
		return i.Version
	}
	return i.Version + " (" + strings.Join(parts, ", ") + ")"
}
