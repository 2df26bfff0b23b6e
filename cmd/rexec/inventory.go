package main

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/spf13/pflag"

	"github.com/execd-project/execd/cmd/rexec/internal/inventory"
	"github.com/execd-project/execd/internal/userkey"
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
func (ff *fanFlags) resolve(fc *inventory.Config) ([]string, error) {
	if ff.limit < 1 {
		return nil, fmt.Errorf("-f wants at least 1, got %d", ff.limit)
	}
	return fc.Expand(inventory.Selection{Hosts: ff.hosts, Groups: ff.groups, Exclude: ff.exclude})
}

// knownHosts are the names shell completion offers for a HOST: the
// config file's groups, and its host aliases too when hosts is set. An
// unreadable config file offers nothing.
func knownHosts(e env, configPath string, hosts bool) []string {
	if configPath == "" {
		dir, err := userkey.ConfigDir(e.getenv)
		if err != nil {
			return nil
		}
		configPath = filepath.Join(dir, "config.toml")
	}
	fc, err := inventory.Load(configPath, false)
	if err != nil {
		return nil
	}
	var names []string
	if hosts {
		for name := range fc.Hosts {
			names = append(names, name)
		}
	}
	for name := range fc.Groups {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
