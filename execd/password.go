package execd

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/execd-project/execd/frame"
)

// Argon2id parameters of new password hashes (OWASP's recommendation:
// 19 MiB, two passes, one lane). Each hash records its own parameters, so
// these can change without invalidating stored passwords.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// maxArgonMemory bounds the memory a stored hash may ask for (KiB), so a
// hand-edited users file cannot make each login allocate gigabytes.
const maxArgonMemory = 1 << 20

// HashPassword returns the argon2id hash of pw in the PHC string format
// ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"), with a fresh salt.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("empty password")
	}
	if len(pw) > frame.MaxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", frame.MaxPasswordLen)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// phc is a parsed argon2id hash.
type phc struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parsePHC(s string) (*phc, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errors.New("password hash is not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return nil, fmt.Errorf("password hash: unsupported argon2 version %q", parts[2])
	}
	var h phc
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.memory, &h.time, &h.threads); err != nil {
		return nil, fmt.Errorf("password hash parameters %q: %v", parts[3], err)
	}
	if h.memory < 8 || h.memory > maxArgonMemory || h.time < 1 || h.time > 16 || h.threads < 1 {
		return nil, fmt.Errorf("password hash parameters %q out of range", parts[3])
	}
	var err error
	enc := base64.RawStdEncoding
	if h.salt, err = enc.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, errors.New("password hash: bad salt")
	}
	if h.key, err = enc.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return nil, errors.New("password hash: bad key")
	}
	return &h, nil
}

// dummyHash is checked against when the user is unknown or has no
// password, so that the answer takes as long as for a real user.
var dummyHash = func() *phc {
	h, err := parsePHC("$argon2id$v=19$m=19456,t=2,p=1$ZXhlY2QtZHVtbXktc2FsdA$VGhpcyBpcyBub3QgYW55Ym9keSdzIHBhc3N3b3JkLg")
	if err != nil {
		panic(err)
	}
	return h
}()

// hasher runs argon2id with at most cap(slots) hashes at once, bounding
// the memory a burst of logins can take.
type hasher struct{ slots chan struct{} }

func newHasher(n int) *hasher { return &hasher{slots: make(chan struct{}, n)} }

// check compares pw with the PHC hash in constant time. An empty or
// unparsable hash is compared against a dummy and always fails.
func (hs *hasher) check(ctx context.Context, hash, pw string) (bool, error) {
	h, perr := parsePHC(hash)
	if hash == "" || perr != nil {
		h = dummyHash
	}
	select {
	case hs.slots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	key := argon2.IDKey([]byte(pw), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	<-hs.slots
	ok := subtle.ConstantTimeCompare(key, h.key) == 1
	if hash == "" {
		return false, nil
	}
	if perr != nil {
		return false, perr
	}
	return ok, nil
}
