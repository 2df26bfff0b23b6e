package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/execd-project/execd/internal/userkey"
	"github.com/execd-project/execd/rexec"
)

// fileConfig is the client config file, config.toml in the config directory:
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
type fileConfig struct {
	Hosts  map[string]hostEntry `toml:"hosts"`
	Groups map[string][]string  `toml:"groups"`
}

type hostEntry struct {
	Host      string `toml:"host"`
	Port      int    `toml:"port"`
	Plaintext bool   `toml:"plaintext"`
	User      string `toml:"user"`
	// SSH: rexec called with this host takes ssh's command line (see
	// sshmode.go), so that a tool can run rexec where it runs ssh.
	SSH bool `toml:"ssh"`
}

// configDir is $XDG_CONFIG_HOME/rexec, or ~/.config/rexec.
func configDir(getenv func(string) string) (string, error) { return userkey.ConfigDir(getenv) }

func loadConfig(path string, mustExist bool) (*fileConfig, error) {
	var fc fileConfig
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

// target is where to connect.
type target struct {
	addr      string // host:port, as pinned in known_hosts
	plaintext bool
	user      string // from the config file, "" if none
}

// resolveTarget turns HOST, HOST:PORT, [V6]:PORT or an alias into an address.
// A port given with -p wins over everything else.
func resolveTarget(arg string, port int, fc *fileConfig) (target, error) {
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
				return target{}, fmt.Errorf("bad port in %q", arg)
			}
			p = n
		}
	case strings.Count(arg, ":") == 1:
		h, ps, _ := strings.Cut(arg, ":")
		n, err := strconv.Atoi(ps)
		if err != nil || n <= 0 || n > 65535 {
			return target{}, fmt.Errorf("bad port in %q", arg)
		}
		host, p = h, n
	}
	if host == "" {
		return target{}, fmt.Errorf("no host in %q", arg)
	}
	t := target{}
	if e, ok := fc.Hosts[host]; ok {
		if e.Host != "" {
			host = e.Host
		}
		if p == 0 {
			p = e.Port
		}
		t.plaintext = e.Plaintext
		t.user = e.User
	}
	if port != 0 {
		p = port
	}
	if p == 0 {
		p = rexec.DefaultPort
	}
	if p < 0 || p > 65535 {
		return target{}, fmt.Errorf("bad port %d", p)
	}
	t.addr = net.JoinHostPort(host, strconv.Itoa(p))
	return t, nil
}
