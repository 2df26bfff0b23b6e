//go:build unix

package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Keys kept as ssh users keep them: in ssh-agent, in ~/.ssh, behind a
// passphrase.
func TestE2EKeysAsSSHKeepsThem(t *testing.T) {
	t.Parallel()
	keygen := needTool(t, "ssh-keygen")
	agentProg := needTool(t, "ssh-agent")
	addProg := needTool(t, "ssh-add")
	state := t.TempDir()
	d := startDaemon(t, state)
	keys := t.TempDir()
	mk := func(name, kind, phrase string) string {
		p := filepath.Join(keys, name)
		out, err := exec.Command(keygen, "-q", "-t", kind, "-N", phrase, "-C", name, "-f", p).CombinedOutput()
		require.NoError(t, err, string(out))
		return p
	}
	inAgent := mk("in-agent", "ed25519", "")
	protected := mk("protected", "ed25519", "open sesame")
	rsa := mk("rsa", "rsa", "")
	// kim logs in with the first two keys only
	out, err := exec.Command(filepath.Join(binDir, "execd"), "--state-dir", state, "user", "add", "kim", "--allow", "exec", "--run-as", selfName(t),
		"--no-password", "--add-key", "@"+inAgent+".pub", "--add-key", "@"+protected+".pub").CombinedOutput()
	require.NoError(t, err, string(out))

	// an ssh-agent holding the first key and an RSA key, which rexec passes over
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command(agentProg, "-D", "-a", sock)
	require.NoError(t, agent.Start())
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 10*time.Second, 20*time.Millisecond)
	for _, k := range []string{inAgent, rsa} {
		add := exec.Command(addProg, k)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		out, err := add.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	askpass := filepath.Join(keys, "askpass")
	asked := filepath.Join(keys, "asked")
	require.NoError(t, os.WriteFile(askpass, []byte("#!/bin/sh\necho \"$1\" >> "+asked+"\necho 'open sesame'\n"), 0o755))

	// home builds a user's home: ~/.ssh/id_ed25519 from a key file, or none.
	home := func(t *testing.T, key string) string {
		h := t.TempDir()
		if key != "" {
			require.NoError(t, os.MkdirAll(filepath.Join(h, ".ssh"), 0o700))
			for _, suffix := range []string{"", ".pub"} {
				b, err := os.ReadFile(key + suffix)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(h, ".ssh", "id_ed25519"+suffix), b, 0o600))
			}
		}
		return h
	}
	tests := []struct {
		name      string
		key       string // ~/.ssh/id_ed25519
		env       []string
		wantCode  int
		wantErr   string
		wantAsked bool
	}{
		{name: "a key held by ssh-agent", env: []string{"SSH_AUTH_SOCK=" + sock}},
		{name: "a protected ~/.ssh key, the passphrase from SSH_ASKPASS", key: protected,
			env: []string{"SSH_ASKPASS=" + askpass, "SSH_ASKPASS_REQUIRE=force"}, wantAsked: true},
		{name: "a protected ~/.ssh key the agent holds is not asked for", key: inAgent + "-protected",
			env: []string{"SSH_AUTH_SOCK=" + sock, "SSH_ASKPASS=/bin/false", "SSH_ASKPASS_REQUIRE=force"}},
		{name: "a protected key and no way to ask", key: protected, wantCode: 255, wantErr: "protected by a passphrase"},
		{name: "no key at all", wantCode: 255, wantErr: "requires a login"},
	}
	// the agent's key, protected on disk by a passphrase nobody gives
	out, err = exec.Command("cp", inAgent, inAgent+"-protected").CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command("cp", inAgent+".pub", inAgent+"-protected.pub").CombinedOutput()
	require.NoError(t, err, string(out))
	out, err = exec.Command(keygen, "-q", "-p", "-P", "", "-N", "not given", "-f", inAgent+"-protected").CombinedOutput()
	require.NoError(t, err, string(out))

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(asked)
			c := &client{t: t, config: t.TempDir()} // no rexec key of its own
			h := home(t, tc.key)
			r := c.tool(30*time.Second, "", append([]string{"HOME=" + h}, tc.env...), "", filepath.Join(binDir, "rexec"),
				"-l", "kim", d.addr, "echo", "in")
			assert.Equal(t, tc.wantCode, r.code, r.stderr)
			if tc.wantCode == 0 {
				assert.Equal(t, "in\n", r.stdout)
			}
			assert.Contains(t, r.stderr, tc.wantErr)
			prompts, _ := os.ReadFile(asked)
			if tc.wantAsked {
				assert.Contains(t, string(prompts), "Enter passphrase for key '"+filepath.Join(h, ".ssh", "id_ed25519")+"'")
			} else {
				assert.Empty(t, prompts)
			}
			assert.LessOrEqual(t, strings.Count(r.stderr, "\n"), 3, r.stderr)
		})
	}
}
