// Package userkey owns the files of a rexec user key: an ed25519 key pair
// in OpenSSH's formats (id_ed25519, mode 0600, and id_ed25519.pub, one
// authorized-keys line), kept in the client's config directory. rexec
// makes and reads them; execd's zero-setup start reads the public half.
package userkey

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/execd-project/execd/internal/atomicfile"
)

// FileName is the private key's name in the config directory; the public
// key is beside it with ".pub" added.
const FileName = "id_ed25519"

// ConfigDir is $XDG_CONFIG_HOME/rexec, or $HOME/.config/rexec; getenv is
// os.Getenv in production.
func ConfigDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "rexec"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory for the rexec config: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".config", "rexec"), nil
}

// LocalUser is the name the local OS user logs in as: $USER, else the
// account's name. rexec and execd's first start must agree on it.
func LocalUser(getenv func(string) string) (string, error) {
	for _, v := range []string{"USER", "USERNAME"} { // USERNAME: Windows
		if u := getenv(v); u != "" {
			return u, nil
		}
	}
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	// Windows names accounts DOMAIN\user; the login name is the user.
	if i := strings.LastIndexByte(u.Username, '\\'); i >= 0 {
		return u.Username[i+1:], nil
	}
	return u.Username, nil
}

// DefaultPath is the private key file in the config directory.
func DefaultPath(getenv func(string) string) (string, error) {
	dir, err := ConfigDir(getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, FileName), nil
}

// Generate makes a new key pair at path and path+".pub". It refuses to
// replace an existing key unless force is set, with an error wrapping
// fs.ErrExist, also when another process creates it at the same moment
// (exactly one of them wins). The private key is written with mode 0600
// and appears whole.
func Generate(path, comment string, force bool) (ed25519.PrivateKey, error) {
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s already exists (pass --force to replace it): %w", path, fs.ErrExist)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	line, err := AuthorizedLine(pub, comment)
	if err != nil {
		return nil, err
	}
	if force {
		err = atomicfile.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	} else if err = atomicfile.CreateExclusive(path, pem.EncodeToMemory(block), 0o600); errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s already exists (pass --force to replace it): %w", path, err)
	}
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		return nil, err
	}
	return priv, nil
}

// ErrPassphrase is wrapped by Load for a key protected by a passphrase
// when no passphrase can be asked for.
var ErrPassphrase = errors.New("protected by a passphrase")

// Load reads an unencrypted ed25519 private key in OpenSSH or PKCS#8 PEM.
// A missing file gives an error wrapping fs.ErrNotExist; a key protected
// by a passphrase one wrapping ErrPassphrase.
func Load(path string) (ed25519.PrivateKey, error) {
	return LoadAsking(path, nil)
}

// LoadAsking reads an ed25519 private key as Load does; for a key
// protected by a passphrase it calls ask for it (at most three times
// while the passphrase is wrong, as ssh does). ask may be nil.
func LoadAsking(path string, ask func(prompt string) (string, error)) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ssh.ParseRawPrivateKey(b)
	var pp *ssh.PassphraseMissingError
	for try := 0; errors.As(err, &pp); try++ {
		if ask == nil {
			return nil, fmt.Errorf("key %s is %w and there is no terminal to ask for it on (use ssh-agent, or SSH_ASKPASS)", path, ErrPassphrase)
		}
		if try == 3 {
			return nil, fmt.Errorf("key %s: wrong passphrase, three times", path)
		}
		phrase, aerr := ask(fmt.Sprintf("Enter passphrase for key '%s': ", path))
		if aerr != nil {
			return nil, fmt.Errorf("key %s: passphrase: %w", path, aerr)
		}
		k, err = ssh.ParseRawPrivateKeyWithPassphrase(b, []byte(phrase))
		if errors.Is(err, x509.IncorrectPasswordError) {
			err = pp // ask again
		}
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	}
	return nil, fmt.Errorf("key %s is %s; rexec uses ed25519 keys", path, keyKind(k))
}

// keyKind names a private key's algorithm for a message.
func keyKind(k any) string {
	switch k.(type) {
	case *rsa.PrivateKey:
		return "an RSA key"
	case *ecdsa.PrivateKey:
		return "an ECDSA key"
	}
	return fmt.Sprintf("a %T", k)
}

// LoadPublic reads the public key beside a private key file (path+".pub").
func LoadPublic(path string) (string, error) {
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(b))
	if _, err := ParseAuthorized(line); err != nil {
		return "", fmt.Errorf("%s.pub: %w", path, err)
	}
	return line, nil
}

// AuthorizedLine formats pub as an authorized-keys line:
// "ssh-ed25519 AAAA... comment".
func AuthorizedLine(pub ed25519.PublicKey, comment string) (string, error) {
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))
	if comment != "" {
		line += " " + comment
	}
	return line, nil
}

// ParseAuthorized parses one authorized-keys line holding an ed25519 key.
func ParseAuthorized(line string) (ed25519.PublicKey, error) {
	sk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("not a public key line (want \"ssh-ed25519 AAAA... comment\"): %w", err)
	}
	ck, ok := sk.(ssh.CryptoPublicKey)
	if !ok {
		return nil, fmt.Errorf("%s keys are not supported; use ssh-ed25519", sk.Type())
	}
	pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s keys are not supported; use ssh-ed25519", sk.Type())
	}
	return pub, nil
}

// Fingerprint is the SHA256 fingerprint of a public key as ssh-keygen -l prints it.
func Fingerprint(pub ed25519.PublicKey) string {
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "?"
	}
	return ssh.FingerprintSHA256(sk)
}
