package rexec

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/userkey"
)

// AuthMethod is one way to log in to a daemon that asks for it: see
// PublicKey, Password and PasswordCallback. An AuthMethod keeps no state
// between logins: one Config serves any number of Dials, concurrently.
type AuthMethod interface {
	// method is the wire name: frame.AuthPublicKey or frame.AuthPassword.
	method() string
	// attempts returns the attempts of one login, afresh for each login.
	attempts() attempts
}

// attempts returns the next attempt of one login, or ok false when there
// is none.
type attempts func(user string, challenge, binding []byte) (m *frame.AuthMsg, ok bool, err error)

// ErrNoAuth is returned by Dial when the daemon asks for a login and the
// Config offers no method it accepts.
var ErrNoAuth = errors.New("rexec: the daemon requires a login (publickey or password) and no key or password was given")

// AuthError is returned by Dial when every attempt was refused.
type AuthError struct {
	Addr, User string
	// Reasons holds the daemon's answer to each attempt.
	Reasons []string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("rexec: %s refused the login as %s: %s", e.Addr, e.User, strings.Join(e.Reasons, "; "))
}

type keyAuth struct {
	signers []crypto.Signer
}

// PublicKey logs in with an ed25519 key: the client signs the daemon's
// challenge together with keying material of this TLS session, so the
// proof is worthless on any other connection.
func PublicKey(key ed25519.PrivateKey) AuthMethod { return &keyAuth{signers: []crypto.Signer{key}} }

// PublicKeySigners logs in with ed25519 keys held elsewhere (an ssh-agent,
// a token), tried in order, one attempt each. A signer whose public key
// is not ed25519 is skipped.
func PublicKeySigners(signers ...crypto.Signer) AuthMethod {
	var ed []crypto.Signer
	for _, s := range signers {
		if _, ok := s.Public().(ed25519.PublicKey); ok {
			ed = append(ed, s)
		}
	}
	return &keyAuth{signers: ed}
}

func (k *keyAuth) method() string { return frame.AuthPublicKey }

func (k *keyAuth) attempts() attempts {
	next := 0
	return func(user string, challenge, binding []byte) (*frame.AuthMsg, bool, error) {
		if next >= len(k.signers) {
			return nil, false, nil
		}
		s := k.signers[next]
		next++
		pub := s.Public().(ed25519.PublicKey)
		sig, err := s.Sign(nil, frame.ProofBytes(user, challenge, binding), crypto.Hash(0))
		if err != nil {
			return nil, false, fmt.Errorf("rexec: sign with key %s: %w", userkey.Fingerprint(pub), err)
		}
		return &frame.AuthMsg{Method: frame.AuthPublicKey, User: user, Key: pub, Sig: sig}, true, nil
	}
}

type passwordAuth struct {
	get   func() (string, error)
	tries int
}

// Password logs in with a fixed password, tried once.
func Password(pw string) AuthMethod {
	return &passwordAuth{get: func() (string, error) { return pw, nil }, tries: 1}
}

// PasswordCallback logs in with a password asked for when needed (on a
// terminal, for example), up to tries times.
func PasswordCallback(fn func() (string, error), tries int) AuthMethod {
	return &passwordAuth{get: fn, tries: max(tries, 1)}
}

func (p *passwordAuth) method() string { return frame.AuthPassword }

func (p *passwordAuth) attempts() attempts {
	left := p.tries
	return func(user string, _, _ []byte) (*frame.AuthMsg, bool, error) {
		if left == 0 {
			return nil, false, nil
		}
		left--
		return p.attempt(user)
	}
}

func (p *passwordAuth) attempt(user string) (*frame.AuthMsg, bool, error) {
	pw, err := p.get()
	if err != nil {
		return nil, false, err
	}
	if pw == "" {
		return nil, false, errors.New("rexec: empty password")
	}
	if len(pw) > frame.MaxPasswordLen {
		return nil, false, fmt.Errorf("rexec: password longer than %d bytes", frame.MaxPasswordLen)
	}
	return &frame.AuthMsg{Method: frame.AuthPassword, User: user, Password: pw}, true, nil
}

// login runs the authentication phase with the methods of cfg the daemon
// offers, in order. It returns the daemon's accepting reply.
func login(ctx context.Context, sess *mux.Session, addr string, cfg *Config, hello *frame.HelloMsg) (*frame.AuthReplyMsg, error) {
	binding := sess.Binding()
	user := cfg.User
	if err := frame.ValidUser(user); err != nil {
		return nil, fmt.Errorf("rexec: user name: %w", err)
	}
	ae := &AuthError{Addr: addr, User: user}
	tried := false
	for _, am := range cfg.Auth {
		if !slices.Contains(hello.Auth, am.method()) {
			continue
		}
		next := am.attempts()
		for {
			m, ok, err := next(user, hello.Challenge, binding)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			tried = true
			if err := sess.Conn().SendJSON(frame.Auth, frame.ConnChannel, m); err != nil {
				return nil, fmt.Errorf("rexec: login: %w", ctxErr(ctx, err))
			}
			reply, err := readAuthReply(ctx, sess, addr)
			if err != nil {
				if len(ae.Reasons) > 0 {
					ae.Reasons = append(ae.Reasons, err.Error())
					return nil, ae
				}
				return nil, err
			}
			if reply.OK {
				return reply, nil
			}
			ae.Reasons = append(ae.Reasons, reply.Message)
		}
	}
	if !tried {
		return nil, fmt.Errorf("%w (it accepts %s)", ErrNoAuth, strings.Join(hello.Auth, ", "))
	}
	return nil, ae
}

// readAuthReply waits for the answer to an Auth frame.
func readAuthReply(ctx context.Context, sess *mux.Session, addr string) (*frame.AuthReplyMsg, error) {
	p, err := sess.Receive(frame.AuthReply)
	var re *RemoteError
	var v *mux.Violation
	switch {
	case errors.As(err, &re):
		return nil, fmt.Errorf("%s closed the connection: %w", addr, re)
	case errors.As(err, &v):
		return nil, fmt.Errorf("rexec: login: expected auth_reply, got %v", v.Err)
	case err != nil:
		return nil, fmt.Errorf("rexec: login: %w", ctxErr(ctx, err))
	}
	var m frame.AuthReplyMsg
	if err := frame.Unmarshal(p, &m); err != nil {
		return nil, fmt.Errorf("rexec: login reply: %w", err)
	}
	return &m, nil
}
