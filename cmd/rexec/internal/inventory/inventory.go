// Package inventory is what the client knows of hosts: config.toml's
// aliases and groups, how a HOST argument resolves to an address, and
// how host lists (-H, -g, -x: pdsh's notation, @files and groups) expand
// to names. It reads files and nothing else; the command line is the
// caller's.
package inventory

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/execd-project/execd/cmd/rexec/internal/hostlist"
	"github.com/execd-project/execd/rexec"
)

// Config is the client's config file, config.toml in its config directory:
//
//	[hosts.lab1]
//	host = "127.0.0.1"
//	port = 7022
//	plaintext = false
//	user = "alice"
//	ssh = false
//
//	[groups]
//	lab = ["node[01-40]", "bob@web1:7023", "lab1"]
//
// The zero value is an empty configuration.
type Config struct {
	Hosts  map[string]Host     `toml:"hosts"`
	Groups map[string][]string `toml:"groups"`
}

// Host is one alias of the config file.
type Host struct {
	Host      string `toml:"host"`
	Port      int    `toml:"port"`
	Plaintext bool   `toml:"plaintext"`
	User      string `toml:"user"`
	// SSH: rexec called with this host takes ssh's command line, so that
	// a tool can run rexec where it runs ssh.
	SSH bool `toml:"ssh"`
}

// Load reads a config file. A missing file is an empty configuration
// unless mustExist; an unknown setting, a bad group name or a name that
// is both a host and a group is an error naming the file.
func Load(path string, mustExist bool) (*Config, error) {
	var fc Config
	md, err := toml.DecodeFile(path, &fc)
	if errors.Is(err, fs.ErrNotExist) && !mustExist {
		return &fc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config %s: unknown setting %q", path, und[0].String())
	}
	for name := range fc.Groups {
		if _, ok := fc.Hosts[name]; ok {
			return nil, fmt.Errorf("config %s: %q is both a host and a group", path, name)
		}
		if name == "" || strings.ContainsAny(name, "[],@: \t") {
			return nil, fmt.Errorf("config %s: bad group name %q", path, name)
		}
	}
	return &fc, nil
}

// Target is where to connect.
type Target struct {
	Addr      string // host:port, as pinned in known_hosts
	Plaintext bool
	User      string // from the config file, "" if none
}

// Resolve turns HOST, HOST:PORT, [V6]:PORT or an alias into an address.
// A port other than 0 (given with -p) wins over everything else.
func (c *Config) Resolve(arg string, port int) (Target, error) {
	host, p := arg, 0
	switch {
	case strings.HasPrefix(arg, "["):
		h, ps, err := net.SplitHostPort(arg)
		if err != nil {
			h, ps = strings.Trim(arg, "[]"), ""
		}
		host = h
		if ps != "" {
			n, err := strconv.Atoi(ps)
			if err != nil {
				return Target{}, fmt.Errorf("bad port in %q", arg)
			}
			p = n
		}
	case strings.Count(arg, ":") == 1:
		h, ps, _ := strings.Cut(arg, ":")
		n, err := strconv.Atoi(ps)
		if err != nil || n <= 0 || n > 65535 {
			return Target{}, fmt.Errorf("bad port in %q", arg)
		}
		host, p = h, n
	}
	if host == "" {
		return Target{}, fmt.Errorf("no host in %q", arg)
	}
	t := Target{}
	if e, ok := c.Hosts[host]; ok {
		if e.Host != "" {
			host = e.Host
		}
		if p == 0 {
			p = e.Port
		}
		t.Plaintext = e.Plaintext
		t.User = e.User
	}
	if port != 0 {
		p = port
	}
	if p == 0 {
		p = rexec.DefaultPort
	}
	if p < 0 || p > 65535 {
		return Target{}, fmt.Errorf("bad port %d", p)
	}
	t.Addr = net.JoinHostPort(host, strconv.Itoa(p))
	return t, nil
}

// Selection names hosts as -H, -g and -x do: lists in hostlist notation
// whose items may be groups, @FILE for a file of them, group names, and
// lists to leave out.
type Selection struct {
	Hosts   []string
	Groups  []string
	Exclude []string
}

// Expand turns a selection into host names, in order, each once.
func (c *Config) Expand(sel Selection) ([]string, error) {
	inv := expansion{c: c, seen: map[string]bool{}}
	for _, g := range sel.Groups {
		if _, ok := c.Groups[g]; !ok {
			return nil, fmt.Errorf("no group %q in the config file", g)
		}
		if err := inv.add(g, nil); err != nil {
			return nil, err
		}
	}
	for _, h := range sel.Hosts {
		if err := inv.add(h, nil); err != nil {
			return nil, err
		}
	}
	drop := expansion{c: c, seen: map[string]bool{}}
	for _, x := range sel.Exclude {
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

// expansion collects host names.
type expansion struct {
	c     *Config
	names []string
	seen  map[string]bool
}

// add takes one -H value: @FILE, or a list whose items are groups or hosts
// in hostlist notation. via holds the groups being expanded, to refuse a
// group that contains itself.
func (inv *expansion) add(list string, via []string) error {
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
		if members, ok := inv.c.Groups[it]; ok {
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
func (inv *expansion) addFile(path string) error {
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
