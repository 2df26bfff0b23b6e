package frame

import (
	"crypto/ed25519"
	"fmt"
	"unicode/utf8"
)

// Authentication methods a server's hello may list and an AuthMsg may use.
const (
	AuthPublicKey = "publickey" // an ed25519 signature over the session's proof bytes
	AuthPassword  = "password"  // a password, checked against an argon2id hash
)

// Limits of authentication messages.
const (
	ChallengeLen   = 32   // bytes of the server's challenge
	BindingLen     = 32   // bytes of TLS keying material a proof is bound to
	MaxUserLen     = 64   // bytes in a user name
	MaxPasswordLen = 1024 // bytes in a password
)

// BindingLabel is the TLS exporter label (RFC 8446 section 7.5) of the
// keying material a publickey proof signs: it differs in every TLS
// session, so a proof made for one session is worthless in another.
const BindingLabel = "EXPORTER-execd-auth"

// AuthMsg is one authentication attempt.
type AuthMsg struct {
	Method string `json:"method"`
	User   string `json:"user"`
	// Password is the password, for AuthPassword.
	Password string `json:"password,omitempty"`
	// Key is the raw 32-byte ed25519 public key and Sig the signature of
	// ProofBytes by its private key, for AuthPublicKey (base64 in JSON).
	Key []byte `json:"key,omitempty"`
	Sig []byte `json:"sig,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *AuthMsg) Validate() error {
	if err := ValidUser(m.User); err != nil {
		return err
	}
	switch m.Method {
	case AuthPassword:
		if m.Password == "" {
			return fmt.Errorf("%w: empty password", ErrInvalid)
		}
		if len(m.Password) > MaxPasswordLen {
			return fmt.Errorf("%w: password longer than %d bytes", ErrInvalid, MaxPasswordLen)
		}
		if len(m.Key) != 0 || len(m.Sig) != 0 {
			return fmt.Errorf("%w: password attempt with a key", ErrInvalid)
		}
	case AuthPublicKey:
		if len(m.Key) != ed25519.PublicKeySize || len(m.Sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: publickey needs a %d-byte ed25519 key and a %d-byte signature", ErrInvalid, ed25519.PublicKeySize, ed25519.SignatureSize)
		}
		if m.Password != "" {
			return fmt.Errorf("%w: publickey attempt with a password", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown auth method %q", ErrInvalid, m.Method)
	}
	return nil
}

// ValidUser checks a user name: 1 to MaxUserLen bytes of letters, digits,
// '.', '_' and '-', not starting with '-' or '.'.
func ValidUser(name string) error {
	if name == "" || len(name) > MaxUserLen || !utf8.ValidString(name) {
		return fmt.Errorf("%w: user name must have 1 to %d bytes", ErrInvalid, MaxUserLen)
	}
	for i, r := range name {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '.'))
		if !ok {
			return fmt.Errorf("%w: user name %q: only letters, digits, '_', and '-' or '.' after the first character", ErrInvalid, name)
		}
	}
	return nil
}

// AuthReplyMsg answers an AuthMsg.
type AuthReplyMsg struct {
	// OK is true when the user is authenticated; channels may open.
	OK bool `json:"ok"`
	// Methods lists the methods still worth trying after a refusal.
	Methods []string `json:"methods,omitempty"`
	// Message says why an attempt was refused, or greets the user.
	Message string `json:"message,omitempty"`
	// User is the authenticated user; Allow lists what they may do
	// ("exec", "get", "put"); Home is their directory as shown ("~").
	User  string   `json:"user,omitempty"`
	Allow []string `json:"allow,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *AuthReplyMsg) Validate() error {
	if len(m.Message) > MaxMessageLen {
		return fmt.Errorf("%w: auth reply message too long", ErrInvalid)
	}
	if m.OK && m.User == "" {
		return fmt.Errorf("%w: accepted auth reply without a user", ErrInvalid)
	}
	return nil
}

// ProofBytes is what a publickey proof signs: a fixed context string, the
// user name, the server's challenge and the TLS binding (BindingLabel
// keying material; 32 zero bytes on a plaintext connection, which has no
// binding), each length-prefixed.
func ProofBytes(user string, challenge, binding []byte) []byte {
	const ctx = "execd-auth-v1"
	b := make([]byte, 0, len(ctx)+len(user)+len(challenge)+len(binding)+4)
	for _, part := range [][]byte{[]byte(ctx), []byte(user), challenge, binding} {
		b = append(b, byte(len(part)))
		b = append(b, part...)
	}
	return b
}
