package userkey

import (
	"crypto"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Agent is a connection to an ssh-agent (SSH_AUTH_SOCK) and the ed25519
// keys it holds, each usable as a crypto.Signer; the private halves stay
// in the agent.
type Agent struct {
	conn    net.Conn
	Signers []crypto.Signer
}

// DialAgent connects to the agent listening on the Unix socket path and
// lists its ed25519 keys; keys of other types are left out. The timeout
// bounds connecting and listing.
func DialAgent(path string, timeout time.Duration) (*Agent, error) {
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout)) // best effort
	ag := agent.NewClient(conn)
	keys, err := ag.List()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ssh-agent at %s: %w", path, err)
	}
	_ = conn.SetDeadline(time.Time{}) // best effort
	a := &Agent{conn: conn}
	for _, k := range keys {
		pk, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			continue
		}
		ck, ok := pk.(ssh.CryptoPublicKey)
		if !ok {
			continue
		}
		if pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey); ok {
			a.Signers = append(a.Signers, &agentSigner{ag: ag, key: k, pub: pub, conn: conn})
		}
	}
	return a, nil
}

// Holds reports whether the agent holds pub.
func (a *Agent) Holds(pub ed25519.PublicKey) bool {
	for _, s := range a.Signers {
		if pub.Equal(s.Public()) {
			return true
		}
	}
	return false
}

// Close ends the connection to the agent.
func (a *Agent) Close() error { return a.conn.Close() }

// agentSigner signs with one key held by the agent.
type agentSigner struct {
	ag   agent.ExtendedAgent
	key  *agent.Key
	pub  ed25519.PublicKey
	conn net.Conn
}

func (s *agentSigner) Public() crypto.PublicKey { return s.pub }

// Sign asks the agent to sign msg; an ed25519 signature is the same
// whoever makes it, so the agent's serves as rexec's own. An agent that
// does not answer within 30 s (one asking for confirmation, say) fails.
func (s *agentSigner) Sign(_ io.Reader, msg []byte, _ crypto.SignerOpts) ([]byte, error) {
	_ = s.conn.SetDeadline(time.Now().Add(30 * time.Second)) // best effort
	defer func() { _ = s.conn.SetDeadline(time.Time{}) }()   // best effort
	sig, err := s.ag.Sign(s.key, msg)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	if sig.Format != ssh.KeyAlgoED25519 || len(sig.Blob) != ed25519.SignatureSize {
		return nil, fmt.Errorf("ssh-agent: unexpected %s signature of %d bytes", sig.Format, len(sig.Blob))
	}
	return sig.Blob, nil
}

// SSHKeyPath is ssh's own ed25519 key, ~/.ssh/id_ed25519, which rexec
// uses when it has no key of its own.
func SSHKeyPath(home string) string { return filepath.Join(home, ".ssh", FileName) }
