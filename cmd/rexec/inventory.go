package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/execd-project/execd/internal/hostlist"
	"github.com/execd-project/execd/rexec"
)

// fanFlags choose the hosts of a fan-out: -H lists, @files and groups,
// -g groups, -x exclusions, -f how many at once.
type fanFlags struct {
	hosts   []string
	groups  []string
	exclude []string
	limit   int
}

func (ff *fanFlags) register(f *pflag.FlagSet) {
	f.StringArrayVarP(&ff.hosts, "hosts", "H", nil, "run on many hosts: a,b,node[01-40], @FILE (one per line) or a group of the config file (repeatable)")
	f.StringArrayVarP(&ff.groups, "group-name", "g", nil, "hosts of this config group (repeatable; same as -H GROUP)")
	f.StringArrayVarP(&ff.exclude, "exclude", "x", nil, "leave out these hosts (same notation as -H; repeatable)")
	f.IntVarP(&ff.limit, "fanout", "f", rexec.DefaultFanout, "hosts worked on at once")
}

// active reports whether hosts were chosen with -H or -g.
func (ff *fanFlags) active() bool { return len(ff.hosts)+len(ff.groups) > 0 }

// check refuses -x without -H or -g: it would leave nothing out, and the
// next word (a host to exclude) would be taken for something else.
func (ff *fanFlags) check() error {
	if len(ff.exclude) > 0 && !ff.active() {
		return fmt.Errorf("-x leaves hosts out of -H or -g, and neither was given")
	}
	return nil
}

// resolve expands the flags into host names, in order, each once.
func (ff *fanFlags) resolve(fc *fileConfig) ([]string, error) {
	if ff.limit < 1 {
		return nil, fmt.Errorf("-f wants at least 1, got %d", ff.limit)
	}
	inv := inventory{fc: fc, seen: map[string]bool{}}
	for _, g := range ff.groups {
		if _, ok := fc.Groups[g]; !ok {
			return nil, fmt.Errorf("no group %q in the config file", g)
		}
		if err := inv.add(g, nil); err != nil {
			return nil, err
		}
	}
	for _, h := range ff.hosts {
		if err := inv.add(h, nil); err != nil {
			return nil, err
		}
	}
	drop := inventory{fc: fc, seen: map[string]bool{}}
	for _, x := range ff.exclude {
		if err := drop.add(x, nil); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, h := range inv.names {
		if !drop.seen[h] {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no hosts left to work on")
	}
	return out, nil
}

// inventory collects host names.
type inventory struct {
	fc    *fileConfig
	names []string
	seen  map[string]bool
}

// add takes one -H value: @FILE, or a list whose items are groups or hosts
// in hostlist notation. via holds the groups being expanded, to refuse a
// group that contains itself.
func (inv *inventory) add(list string, via []string) error {
	if file, ok := strings.CutPrefix(list, "@"); ok {
		if len(via) > 0 {
			return fmt.Errorf("%q: a host file cannot name another (in %s)", list, via[len(via)-1])
		}
		return inv.addFile(file)
	}
	items, err := hostlist.Split(list)
	if err != nil {
		return err
	}
	for _, it := range items {
		if members, ok := inv.fc.Groups[it]; ok {
			for _, g := range via {
				if g == it {
					return fmt.Errorf("group %q contains itself (%s)", it, strings.Join(append(via, it), " -> "))
				}
			}
			for _, m := range members {
				if err := inv.add(m, append(via, it)); err != nil {
					return err
				}
			}
			continue
		}
		names, err := hostlist.ExpandItem(it, hostlist.MaxHosts-len(inv.names))
		if err != nil {
			return err
		}
		for _, n := range names {
			if !inv.seen[n] {
				inv.seen[n] = true
				inv.names = append(inv.names, n)
			}
		}
	}
	return nil
}

// addFile reads hosts from a file: items separated by spaces, commas or
// lines; '#' starts a comment.
func (inv *inventory) addFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("host file: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, field := range strings.Fields(line) {
			if err := inv.add(field, []string{"@" + path}); err != nil {
				return fmt.Errorf("%s:%d: %w", path, n, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("host file %s: %w", path, err)
	}
	return nil
}
