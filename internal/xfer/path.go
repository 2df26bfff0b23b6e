// Package xfer holds what both ends of a file transfer share: the rules
// for paths on the wire, partial files that are verified and renamed into
// place, resumable hashing, and the mapping of file system errors to
// protocol error codes.
package xfer

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"

	"github.com/execd-project/execd/frame"
)

// MaxNameLen is the longest path element accepted, as on common file systems.
const MaxNameLen = 255

// Errorf returns a protocol error with a code, usable as a Go error.
func Errorf(code frame.Code, format string, args ...any) *frame.ErrorMsg {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > frame.MaxMessageLen {
		msg = msg[:frame.MaxMessageLen]
	}
	return &frame.ErrorMsg{Code: code, Message: msg}
}

// Resolve turns a path from the wire into a clean path relative to the
// served directory, taking relative paths from cwd (itself clean). The
// served directory is "~" to the user and "." here: "~" and "~/x" name it
// and what is under it. Absolute paths, drive letters, backslashes and
// anything that climbs above the served directory are refused; os.Root
// then keeps symlinks from leading out.
func Resolve(cwd, p string) (string, error) {
	p = platformSeparators(p)
	if err := checkSyntax(p, false); err != nil {
		return "", err
	}
	typed := p
	switch {
	case p == "~":
		return ".", nil
	case strings.HasPrefix(p, "~/"):
		p = p[2:]
		cwd = "."
	}
	clean := path.Clean(path.Join(cwd, p))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", Errorf(frame.CodePathEscape, "%s: leads outside the served directory", quote(typed))
	}
	return clean, nil
}

// ResolveHost turns a path from the wire into a clean absolute path for
// a user who sees the whole file system as an account: absolute paths as
// they are, "~" and "~/x" under home, others from cwd (absolute, clean).
// Only the syntax is checked; what the account may reach is the kernel's
// to say.
func ResolveHost(cwd, home, p string) (string, error) {
	if err := checkSyntax(p, true); err != nil {
		return "", err
	}
	switch {
	case p == "~":
		return home, nil
	case strings.HasPrefix(p, "~/"):
		return path.Join(home, p[2:]), nil
	case strings.HasPrefix(p, "/"):
		return path.Clean(p), nil
	}
	return path.Join(cwd, p), nil
}

// checkSyntax checks what every path must be; host allows what a
// confined one may not (absolute paths, and names the host allows).
func checkSyntax(p string, host bool) error {
	switch {
	case p == "":
		return Errorf(frame.CodeBadPath, "empty path")
	case len(p) > frame.MaxPathLen:
		return Errorf(frame.CodeBadPath, "path longer than %d bytes", frame.MaxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return Errorf(frame.CodeBadPath, "NUL byte in path")
	case host:
		return nil
	case strings.HasPrefix(p, "/"):
		return Errorf(frame.CodeBadPath, "%s: absolute paths are not served to a confined user; paths are relative to your home (~)", quote(p))
	case strings.IndexByte(p, '\\') >= 0:
		return Errorf(frame.CodeBadPath, "%s: backslash in path; the separator is /", quote(p))
	case len(p) >= 2 && p[1] == ':' && (p[0]|0x20 >= 'a' && p[0]|0x20 <= 'z'):
		return Errorf(frame.CodeBadPath, "%s: drive letters are not served; paths are relative to your home (~)", quote(p))
	}
	for _, el := range strings.Split(p, "/") {
		if len(el) > MaxNameLen {
			return Errorf(frame.CodeBadPath, "path element longer than %d bytes", MaxNameLen)
		}
		if problem := platformNameProblem(el); problem != "" {
			return Errorf(frame.CodeBadPath, "%s: %s", quote(p), problem)
		}
	}
	return nil
}

// windowsNameProblem says why Windows cannot hold a file named el, or "".
// Reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9) are refused
// with any extension and in any case: "con.txt" opens the console there.
func windowsNameProblem(el string) string {
	if el == "." || el == ".." || el == "~" {
		return ""
	}
	if i := strings.IndexAny(el, `<>:"|?*`); i >= 0 {
		return fmt.Sprintf("%q cannot be in a file name on Windows", el[i])
	}
	for _, r := range el {
		if r < 0x20 {
			return "control characters cannot be in a file name on Windows"
		}
	}
	if strings.HasSuffix(el, ".") || strings.HasSuffix(el, " ") {
		return fmt.Sprintf("%q: Windows drops a trailing dot or space, so the name would not be what it seems", el)
	}
	base, _, _ := strings.Cut(el, ".")
	switch u := strings.ToUpper(strings.TrimRight(base, " ")); {
	case u == "CON", u == "PRN", u == "AUX", u == "NUL", u == "CONIN$", u == "CONOUT$",
		len(u) == 4 && (strings.HasPrefix(u, "COM") || strings.HasPrefix(u, "LPT")) && u[3] >= '1' && u[3] <= '9':
		return fmt.Sprintf("%q is a reserved device name on Windows", el)
	}
	return ""
}

// Display shows a clean served path as the user sees it: "~" or "~/a/b"
// for a confined user's, the path itself for an absolute one.
func Display(clean string) string {
	if strings.HasPrefix(clean, "/") {
		return clean
	}
	if clean == "." || clean == "" {
		return "~"
	}
	return "~/" + clean
}

// ValidName reports whether name may be an entry of a directory listing
// received from a peer: one element, not "." or "..", no separator. A
// client checks this before creating anything a server named.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= MaxNameLen &&
		!strings.ContainsAny(name, "/\\\x00")
}

func quote(p string) string {
	if len(p) > 80 {
		p = p[:80] + "..."
	}
	return fmt.Sprintf("%q", p)
}

// Root's error for a path that leaves it; not exported by package os, so
// matched by text (TestEscapeErrorText pins it).
const escapeText = "path escapes from parent"

// IsEscape reports whether err is os.Root refusing a path that leads outside it.
func IsEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), escapeText)
}

// CodeOf maps a file system error to a protocol code.
func CodeOf(err error) frame.Code {
	var em *frame.ErrorMsg
	switch {
	case errors.As(err, &em):
		return em.Code
	case IsEscape(err):
		return frame.CodePathEscape
	case errors.Is(err, fs.ErrNotExist):
		return frame.CodeNotFound
	case errors.Is(err, fs.ErrExist):
		return frame.CodeExists
	case errors.Is(err, fs.ErrPermission):
		return frame.CodePermission
	case errors.Is(err, syscall.ENOTDIR):
		return frame.CodeNotDir
	case errors.Is(err, syscall.EISDIR):
		return frame.CodeIsDir
	case errors.Is(err, syscall.ENOTEMPTY):
		return frame.CodeNotEmpty
	case errors.Is(err, syscall.ENOSPC), isQuota(err):
		return frame.CodeNoSpace
	case errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.EINVAL):
		return frame.CodeBadPath
	}
	return frame.CodeIO
}

// ErrorFor turns a file system error about the served path p into a
// one-line protocol error that names the path as the user sees it and never
// the server's own directory layout.
func ErrorFor(p string, err error) *frame.ErrorMsg {
	var em *frame.ErrorMsg
	if errors.As(err, &em) {
		return em
	}
	code := CodeOf(err)
	what := map[frame.Code]string{
		frame.CodePathEscape: "leads outside the served directory",
		frame.CodeNotFound:   "no such file or directory",
		frame.CodeExists:     "already exists",
		frame.CodePermission: "permission denied",
		frame.CodeNotDir:     "not a directory",
		frame.CodeIsDir:      "is a directory",
		frame.CodeNotEmpty:   "directory not empty",
		frame.CodeNoSpace:    "no space left (disk or quota full)",
		frame.CodeBadPath:    "invalid name",
	}[code]
	if what == "" {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		what = err.Error()
	}
	return Errorf(code, "%s: %s", Display(p), what)
}

// SafeLink reports whether a symlink at the clean served path link with
// the given target stays inside the served tree, judged by the names
// alone: the target is relative, and its ".." come first, before any name
// (a ".." after a name climbs out of whatever that name is, and a name may
// be, or become, a link: "b/b/../.." with b -> "." climbs two levels
// more than it reads), and they climb no higher than the link's depth.
// SafeLinkIn judges against the real tree.
func SafeLink(link, target string) bool {
	_, ok := linkClimb(link, target)
	return ok
}

// linkClimb checks a target's form and returns how many levels its
// leading ".." climb.
func linkClimb(link, target string) (int, bool) {
	if target == "" || strings.HasPrefix(target, "/") || strings.IndexByte(target, '\\') >= 0 {
		return 0, false
	}
	if len(target) >= 2 && target[1] == ':' {
		return 0, false
	}
	dir := path.Dir(link)
	depth := 0
	if dir != "." {
		depth = strings.Count(dir, "/") + 1
	}
	climb, named := 0, false
	for _, el := range strings.Split(target, "/") {
		switch el {
		case "", ".":
		case "..":
			if named {
				return 0, false
			}
			climb++
		default:
			named = true
		}
	}
	return climb, climb <= depth
}

// maxLinkHops bounds the symlinks followed while resolving one path, as
// the kernel's ELOOP does.
const maxLinkHops = 40

// SafeLinkIn is SafeLink judged against the real tree under root: the
// link's directory is resolved through the symlinks that exist (so that a
// directory reached through "b -> ." counts at its real depth), and the
// leading ".." of target may climb no higher than that.
func SafeLinkIn(root FS, link, target string) bool {
	climb, ok := linkClimb(link, target)
	if !ok {
		return false
	}
	real, ok := resolveIn(root, path.Dir(link))
	return ok && climb <= len(real)
}

// resolveIn follows p inside root as the kernel would, reading the
// symlinks it meets, and returns the real components; false when it
// leaves root, meets an absolute link, or loops.
func resolveIn(root FS, p string) ([]string, bool) {
	var stack []string
	comps := strings.Split(p, "/")
	hops := 0
	for i := 0; i < len(comps); i++ {
		switch c := comps[i]; c {
		case "", ".":
		case "..":
			if len(stack) == 0 {
				return nil, false
			}
			stack = stack[:len(stack)-1]
		default:
			cand := path.Join(append(append([]string{}, stack...), c)...)
			fi, err := root.Lstat(cand)
			if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				stack = append(stack, c)
				continue
			}
			if hops++; hops > maxLinkHops {
				return nil, false
			}
			t, err := root.Readlink(cand)
			if err != nil || t == "" || strings.HasPrefix(t, "/") {
				return nil, false
			}
			comps = append(strings.Split(t, "/"), comps[i+1:]...)
			i = -1
		}
	}
	return stack, true
}
