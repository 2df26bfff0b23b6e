package inventory_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/cmd/rexec/internal/inventory"
)

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name, text, err string
	}{
		{"hosts and groups", "[hosts.lab1]\nhost = \"127.0.0.1\"\nport = 7023\nuser = \"alice\"\n[groups]\nlab = [\"lab1\", \"node[1-2]\"]\n", ""},
		{"unknown setting", "[hosts.lab1]\nhots = \"x\"\n", `unknown setting "hosts.lab1.hots"`},
		{"host and group", "[hosts.lab]\nhost = \"x\"\n[groups]\nlab = [\"a\"]\n", `"lab" is both a host and a group`},
		{"bad group name", "[groups]\n\"a,b\" = [\"x\"]\n", `bad group name "a,b"`},
		{"not toml", "[hosts\n", "config "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := inventory.Load(write(t, "config.toml", tc.text), true)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, 7023, c.Hosts["lab1"].Port)
		})
	}
	t.Run("missing", func(t *testing.T) {
		c, err := inventory.Load(filepath.Join(t.TempDir(), "none.toml"), false)
		require.NoError(t, err)
		assert.Empty(t, c.Hosts)
		_, err = inventory.Load(filepath.Join(t.TempDir(), "none.toml"), true)
		require.Error(t, err, "a file named on the command line must exist")
	})
}

func TestResolve(t *testing.T) {
	c := &inventory.Config{Hosts: map[string]inventory.Host{
		"lab1": {Host: "10.0.0.1", Port: 7023, User: "alice", Plaintext: true},
		"bare": {},
	}}
	tests := []struct {
		arg  string
		port int
		want inventory.Target
		err  string
	}{
		{"lab1", 0, inventory.Target{Addr: "10.0.0.1:7023", User: "alice", Plaintext: true}, ""},
		{"lab1", 9000, inventory.Target{Addr: "10.0.0.1:9000", User: "alice", Plaintext: true}, ""},
		{"lab1:7100", 0, inventory.Target{Addr: "10.0.0.1:7100", User: "alice", Plaintext: true}, ""},
		{"bare", 0, inventory.Target{Addr: "bare:7022"}, ""},
		{"host.example", 0, inventory.Target{Addr: "host.example:7022"}, ""},
		{"[::1]:7024", 0, inventory.Target{Addr: "[::1]:7024"}, ""},
		{"[::1]", 0, inventory.Target{Addr: "[::1]:7022"}, ""},
		{"::1", 0, inventory.Target{Addr: "[::1]:7022"}, ""},
		{"h:0", 0, inventory.Target{}, "bad port"},
		{"h:70000", 0, inventory.Target{}, "bad port"},
		{"h:x", 0, inventory.Target{}, "bad port"},
		{":7022", 0, inventory.Target{}, "no host"},
		{"h", 70000, inventory.Target{}, "bad port"},
	}
	for _, tc := range tests {
		t.Run(tc.arg, func(t *testing.T) {
			got, err := c.Resolve(tc.arg, tc.port)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestExpand(t *testing.T) {
	file := write(t, "hosts.txt", "# lab\nnode1 node2,web1\n\nnode1 # again\n")
	c := &inventory.Config{Groups: map[string][]string{
		"lab":   {"node[1-3]", "web"},
		"web":   {"web[1-2]"},
		"loop":  {"a", "loop2"},
		"loop2": {"loop"},
		"files": {"@" + file},
	}}
	tests := []struct {
		name string
		sel  inventory.Selection
		want []string
		err  string
	}{
		{"list", inventory.Selection{Hosts: []string{"b,a,node[01-03]"}}, []string{"b", "a", "node01", "node02", "node03"}, ""},
		{"nested groups", inventory.Selection{Groups: []string{"lab"}}, []string{"node1", "node2", "node3", "web1", "web2"}, ""},
		{"group in -H, once each", inventory.Selection{Hosts: []string{"web,web1,x"}}, []string{"web1", "web2", "x"}, ""},
		{"exclusion", inventory.Selection{Groups: []string{"lab"}, Exclude: []string{"node[2-3],web"}}, []string{"node1"}, ""},
		{"file", inventory.Selection{Hosts: []string{"@" + file}}, []string{"node1", "node2", "web1"}, ""},
		{"group with a file", inventory.Selection{Groups: []string{"files"}}, nil, "cannot name another"},
		{"self", inventory.Selection{Groups: []string{"loop"}}, nil, `group "loop" contains itself (loop -> loop2 -> loop)`},
		{"unknown group", inventory.Selection{Groups: []string{"nope"}}, nil, `no group "nope"`},
		{"nothing left", inventory.Selection{Hosts: []string{"a"}, Exclude: []string{"a"}}, nil, "no hosts left"},
		{"missing file", inventory.Selection{Hosts: []string{"@/no/such/file"}}, nil, "host file"},
		{"bad syntax", inventory.Selection{Hosts: []string{"node[1-"}}, nil, "hostlist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Expand(tc.sel)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
