// Package config reads execd's TOML files so that every problem can be
// reported with its line: the daemon's execd.toml, whose keys are the
// daemon's flags, and the line of any key or table in such a file.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// Problem is one thing wrong in a file, at a line (0: the whole file).
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Problems is every problem found in a file; as an error, one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Syntax is a TOML decoding error of the file at path as its problem,
// with its line when the decoder knows it.
func Syntax(path string, err error) Problems {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Problems{{File: path, Line: pe.Position.Line, Msg: pe.Message}}
	}
	return Problems{{File: path, Msg: err.Error()}}
}

// Lines maps each key of a TOML document (dotted: "users.alice.quota";
// a table header under its own name) to the line it is on. It reads the
// layout execd's files use (tables, keys, values on one line or arrays
// over several) and is only used to place messages.
func Lines(data []byte) map[string]int {
	lines := map[string]int{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case strings.HasPrefix(line, "["):
			name := strings.Trim(strings.TrimSpace(strings.SplitN(line, "]", 2)[0]), "[ ")
			table = unquoteKey(name)
			lines[table] = n
		default:
			key, _, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			full := unquoteKey(strings.TrimSpace(key))
			if table != "" {
				full = table + "." + full
			}
			if _, seen := lines[full]; !seen {
				lines[full] = n
			}
		}
	}
	return lines
}

// unquoteKey turns a dotted TOML key as written into the form
// toml.Key.String gives (quoted parts where not bare).
func unquoteKey(k string) string {
	var key toml.Key
	for rest := strings.TrimSpace(k); rest != ""; {
		var part string
		switch rest[0] {
		case '"', '\'':
			end := strings.IndexByte(rest[1:], rest[0])
			if end < 0 {
				return k
			}
			part = rest[1 : end+1]
			if rest[0] == '"' {
				if u, err := strconv.Unquote(rest[:end+2]); err == nil {
					part = u
				}
			}
			rest = rest[end+2:]
		default:
			i := strings.IndexByte(rest, '.')
			if i < 0 {
				i = len(rest)
			}
			part, rest = strings.TrimSpace(rest[:i]), rest[i:]
		}
		key = append(key, part)
		rest = strings.TrimPrefix(strings.TrimSpace(rest), ".")
		rest = strings.TrimSpace(rest)
	}
	return key.String()
}

// notSettings are flags that make no sense in a file.
var notSettings = map[string]bool{"config": true, "help": true, "version": true}

// Apply reads the daemon's configuration file at path and sets each of
// its keys on the flag of that name in fs, unless the flag was given on
// the command line (flags override the file). It returns every problem
// found: unknown keys (with the nearest flag's name), values of the wrong
// type or that the flag refuses, and TOML syntax errors. set names the
// flags the file set. A flag set from the file is not marked Changed:
// Changed stays the mark of the command line.
func Apply(path string, fs *pflag.FlagSet) (set map[string]bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil {
		if why := Unsafe(fi); why != "" {
			return nil, Problems{{File: path, Msg: why}}
		}
	}
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		return nil, Syntax(path, err)
	}
	set = map[string]bool{}
	at := Lines(data)
	var ps Problems
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue // inside a table: reported with the table
		}
		name := k[0]
		line := at[name]
		if _, table := doc[name].(map[string]any); table {
			ps = append(ps, Problem{path, line, fmt.Sprintf("[%s]: this file has no tables, only settings", name)})
			continue
		}
		f := fs.Lookup(name)
		if f == nil || notSettings[name] || f.Hidden {
			msg := fmt.Sprintf("unknown setting %q", name)
			if near := nearest(name, fs); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			ps = append(ps, Problem{path, line, msg})
			continue
		}
		s, err := valueText(doc[name], f.Value.Type())
		if err != nil {
			ps = append(ps, Problem{path, line, fmt.Sprintf("%s: %v", name, err)})
			continue
		}
		if f.Changed {
			set[name] = true
			continue
		}
		old := f.Value.String()
		if err := f.Value.Set(s); err != nil {
			_ = f.Value.Set(old) // a refused value may have left a zero behind
			ps = append(ps, Problem{path, line, fmt.Sprintf("%s: %v", name, err)})
			continue
		}
		set[name] = true
	}
	ps.Sort()
	if len(ps) > 0 {
		return set, ps
	}
	return set, nil
}

// valueText is a TOML value as the text a flag of type typ parses.
func valueText(v any, typ string) (string, error) {
	switch v := v.(type) {
	case string:
		if typ != "string" && typ != "duration" {
			return "", fmt.Errorf("want %s, not the string %q", article(typeWord(typ)), v)
		}
		return v, nil
	case bool:
		if typ != "bool" {
			return "", fmt.Errorf("want %s, not %v", article(typeWord(typ)), v)
		}
		return strconv.FormatBool(v), nil
	case int64:
		switch typ {
		case "int", "uint32", "int64":
			return strconv.FormatInt(v, 10), nil
		case "duration":
			return "", fmt.Errorf("want a duration with its unit, such as \"%ds\"", v)
		}
		return "", fmt.Errorf("want %s, not %d", article(typeWord(typ)), v)
	}
	return "", fmt.Errorf("want %s, not %T", article(typeWord(typ)), v)
}

func typeWord(typ string) string {
	switch typ {
	case "int", "int64", "uint32":
		return "whole number"
	case "duration":
		return "duration such as \"30s\""
	case "bool":
		return "true or false"
	}
	return typ
}

// article puts "a" before a type's words, except before "true or false".
func article(w string) string {
	if strings.HasPrefix(w, "true") {
		return w
	}
	return "a " + w
}

// nearest is the name of the flag closest to name, if close enough to be
// a typing slip.
func nearest(name string, fs *pflag.FlagSet) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if notSettings[f.Name] || f.Hidden {
			return
		}
		if d := distance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Sort orders problems by line.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
}
