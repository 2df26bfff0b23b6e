package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSSH(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		host    string
		user    string
		port    int
		command []string
		opts    []sshOpt
		ttys    int
		err     string
	}{
		{name: "git's probe", args: []string{"-G", "-o", "SendEnv=GIT_PROTOCOL", "-p", "7023", "lab1"},
			host: "lab1", opts: []sshOpt{{"sendenv", "GIT_PROTOCOL"}, {"port", "7023"}}},
		{name: "git's command", args: []string{"-o", "SendEnv=GIT_PROTOCOL", "lab1", "git-upload-pack '/srv/a b.git'"},
			host: "lab1", command: []string{"git-upload-pack '/srv/a b.git'"}, opts: []sshOpt{{"sendenv", "GIT_PROTOCOL"}}},
		{name: "rsync's", args: []string{"-l", "bob", "lab1", "rsync", "--server", "-logDtpre.iLsfxCIvu", ".", "dst\\ x/"},
			host: "lab1", command: []string{"rsync", "--server", "-logDtpre.iLsfxCIvu", ".", "dst\\ x/"}, opts: []sshOpt{{"user", "bob"}}},
		{name: "Ansible's", args: []string{"-vvv", "-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o", `User="alice"`,
			"-o", "ConnectTimeout=10", "-tt", "lab1", "/bin/sh -c 'echo ~ && sleep 0'"},
			host: "lab1", command: []string{"/bin/sh -c 'echo ~ && sleep 0'"}, ttys: 2,
			opts: []sshOpt{{"controlmaster", "auto"}, {"controlpersist", "60s"}, {"user", "alice"}, {"connecttimeout", "10"}}},
		{name: "values attached and options after the host", args: []string{"-p2222", "-oPort=1", "u@lab1", "-l", "x", "--", "ls", "-l"},
			host: "lab1", user: "u", command: []string{"ls", "-l"}, opts: []sshOpt{{"port", "2222"}, {"port", "1"}, {"user", "u"}, {"user", "x"}}},
		{name: "-l before USER@HOST wins, as the first value", args: []string{"-l", "bob", "alice@lab1"},
			host: "lab1", user: "alice", opts: []sshOpt{{"user", "bob"}, {"user", "alice"}}},
		{name: "-- before the host", args: []string{"--", "lab1", "-x"}, host: "lab1", command: []string{"-x"}},
		{name: "ssh:// with user and port", args: []string{"ssh://bob@[::1]:7023/"}, host: "::1", user: "bob", port: 7023,
			opts: []sshOpt{{"user", "bob"}, {"port", "7023"}}},
		{name: "Key Value with spaces", args: []string{"-o", "Port = 7023", "lab1"}, host: "lab1", opts: []sshOpt{{"port", "7023"}}},
		{name: "unknown letter", args: []string{"-Z", "lab1"}, err: "unknown option -- Z"},
		{name: "missing value", args: []string{"lab1", "-p"}, err: "option requires an argument -- p"},
		{name: "unknown -o", args: []string{"-o", "Frobnicate=yes", "lab1"}, err: "Bad configuration option: Frobnicate"},
		{name: "no host", args: []string{"-v"}, err: "a HOST is needed"},
		{name: "a path in ssh://", args: []string{"ssh://lab1/x"}, err: "no path"},
		{name: "bad port in ssh://", args: []string{"ssh://lab1:99999"}, err: "bad port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseSSH(tc.args)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.host, c.host)
			assert.Equal(t, tc.user, c.user)
			assert.Equal(t, tc.port, c.port)
			assert.Equal(t, tc.command, c.command)
			assert.Equal(t, tc.opts, c.opts)
			assert.Equal(t, tc.ttys, c.ttys)
		})
	}
}

func TestSSHSettings(t *testing.T) {
	st := &sshSettings{first: map[string]string{}, lists: map[string][]string{}}
	for _, o := range []sshOpt{{"port", "1"}, {"port", "2"}, {"sendenv", "A B*"}, {"setenv", "X=1 Y=2"}, {"identityfile", "k1"}, {"identityfile", "k2"}} {
		st.add(o)
	}
	assert.Equal(t, "1", st.get("port"), "the first value wins, as in ssh")
	assert.Equal(t, []string{"k1", "k2"}, st.lists["identityfile"])
	envs, err := sshEnvs(st, []string{"A=a", "BB=b", "C=c", "B=", "=x"})
	require.NoError(t, err)
	assert.Equal(t, []string{"A=a", "BB=b", "B=", "X=1", "Y=2"}, envs)
	st.add(sshOpt{"setenv", "NOVALUE"})
	_, err = sshEnvs(st, nil)
	assert.ErrorContains(t, err, "SetEnv wants KEY=VALUE")
}

func TestReadSSHConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(f, []byte(`# a comment
Port 1
Host lab* !lab9
  User alice
  IdentityFile ~/.ssh/lab
Host *
  User nobody
  Port 2
Match exec "true"
  User matched
`), 0o600))
	read := func(host string) map[string][]string {
		got := map[string][]string{}
		require.NoError(t, readSSHConfig(f, host, func(o sshOpt) { got[o.key] = append(got[o.key], o.value) }))
		return got
	}
	assert.Equal(t, map[string][]string{"port": {"1", "2"}, "user": {"alice", "nobody"}, "identityfile": {"~/.ssh/lab"}}, read("lab1"))
	assert.Equal(t, map[string][]string{"port": {"1", "2"}, "user": {"nobody"}}, read("lab9"))
	require.NoError(t, os.WriteFile(f, []byte("Include other\n"), 0o600))
	assert.ErrorContains(t, readSSHConfig(f, "x", func(sshOpt) {}), "Include is not supported")
	assert.ErrorContains(t, readSSHConfig(filepath.Join(t.TempDir(), "none"), "x", func(sshOpt) {}), "Can't open user config file")
}

// FuzzParseSSH: no command line makes the parser panic, and a parsed one
// always has a host.
func FuzzParseSSH(f *testing.F) {
	f.Add("-o\x00Port=1\x00lab1\x00ls")
	f.Add("-tt\x00ssh://u@[::1]:22\x00--\x00x")
	f.Add("-p\x00")
	f.Fuzz(func(t *testing.T, joined string) {
		var args []string
		start := 0
		for i := 0; i <= len(joined); i++ {
			if i == len(joined) || joined[i] == 0 {
				args = append(args, joined[start:i])
				start = i + 1
			}
		}
		c, err := parseSSH(args)
		if err == nil && !c.version && c.host == "" {
			t.Fatalf("parsed %q with no host", args)
		}
	})
}
