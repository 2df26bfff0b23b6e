package execd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sort"

	"github.com/BurntSushi/toml"

	"github.com/execd-project/execd/internal/config"
)

// A Problem is one thing wrong in a file, at a line (0: the file as a
// whole).
type Problem struct {
	File string
	Line int
	Msg  string
}

// String is the problem as "file:line: message".
func (p Problem) String() string { return config.Problem(p).String() }

// Problems is every problem found in a file; as an error, one per line.
type Problems []Problem

func (ps Problems) Error() string {
	c := make(config.Problems, len(ps))
	for i, p := range ps {
		c[i] = config.Problem(p)
	}
	return c.Error()
}

// CheckUsers reports every problem of the users database at path, each
// with its line: TOML syntax, unknown settings, invalid records, users
// who can never log in, and a file others may read while it holds
// password hashes, and users who could not run commands or reach their
// home on a daemon with the given default-run-as (see AccessOf). A
// missing file has no problem (no users yet).
func CheckUsers(path, defaultRunAs string) (Problems, error) {
	ps, err := checkUsers(path, defaultRunAs)
	if len(ps) == 0 {
		return nil, err
	}
	out := make(Problems, len(ps))
	for i, p := range ps {
		out[i] = Problem(p)
	}
	return out, err
}

func checkUsers(path, defaultRunAs string) (config.Problems, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil {
		if why := config.Unsafe(fi); why != "" {
			return config.Problems{{File: path, Msg: why}}, nil
		}
	}
	var f usersFile
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		return config.Syntax(path, err), nil
	}
	at := config.Lines(b)
	var ps config.Problems
	for _, k := range md.Undecoded() {
		ps = append(ps, config.Problem{File: path, Line: at[k.String()], Msg: fmt.Sprintf("unknown setting %q", k.String())})
	}
	names := make([]string, 0, len(f.Users))
	for name := range f.Users {
		names = append(names, name)
	}
	sort.Strings(names)
	passwords := false
	for _, name := range names {
		u := f.Users[name]
		line := at[toml.Key{"users", name}.String()]
		if u == nil {
			continue
		}
		u.Name = name
		if err := u.Validate(); err != nil {
			ps = append(ps, config.Problem{File: path, Line: line, Msg: err.Error()})
			continue
		}
		if len(u.Keys) == 0 && u.Password == "" {
			ps = append(ps, config.Problem{File: path, Line: line,
				Msg: fmt.Sprintf("user %s can never log in: no key and no password (add one with \"execd user set %s --add-key\" or \"execd user passwd %s\")", name, name, name)})
		}
		if acc := AccessOf(*u, defaultRunAs); acc.Problem != "" {
			ps = append(ps, config.Problem{File: path, Line: line, Msg: fmt.Sprintf("user %s: %s", name, acc.Problem)})
		}
		passwords = passwords || u.Password != ""
	}
	if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && passwords && fi.Mode().Perm()&0o077 != 0 {
		ps = append(ps, config.Problem{File: path,
			Msg: fmt.Sprintf("others may read this file (mode %04o) and it holds password hashes: chmod 600 %s", fi.Mode().Perm(), path)})
	}
	ps.Sort()
	return ps, nil
}
