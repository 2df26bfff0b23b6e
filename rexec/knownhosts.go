package rexec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Errors of host identity checks.
var (
	// ErrHostKeyChanged is wrapped by a HostKeyError for a daemon whose
	// fingerprint differs from the pinned one.
	ErrHostKeyChanged = errors.New("rexec: host identity changed")
	// ErrHostKeyUnknown is wrapped by a HostKeyError for a daemon with no
	// pinned fingerprint when new hosts are not accepted.
	ErrHostKeyUnknown = errors.New("rexec: host identity unknown")
)

// HostKeyError describes a refused daemon identity.
type HostKeyError struct {
	Addr string
	Want string // pinned fingerprint, empty when unknown
	Got  string
	Path string
	Line int
	Err  error // ErrHostKeyChanged or ErrHostKeyUnknown
}

func (e *HostKeyError) Error() string {
	if errors.Is(e.Err, ErrHostKeyChanged) {
		return fmt.Sprintf("host identity of %s CHANGED: pinned %s, now %s; someone may be intercepting the connection. "+
			"If the daemon's identity was recreated on purpose, remove line %d of %s", e.Addr, e.Want, e.Got, e.Line, e.Path)
	}
	return fmt.Sprintf("host identity of %s (%s) is not in %s and new hosts are not accepted", e.Addr, e.Got, e.Path)
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// KnownHosts pins daemon fingerprints in a file of "host:port SHA256:..."
// lines, trusting on first use like ssh's known_hosts. Use Check as
// Config.HostKeyCallback and Pin as Config.HostKeyPin: a new daemon is
// pinned only once it has answered with a valid hello, so that an
// endpoint that is not execd never gets pinned. Safe for concurrent use.
type KnownHosts struct {
	// Path of the file; created (with its directory) on first pin.
	Path string
	// Strict refuses daemons that are not in the file instead of pinning them.
	Strict bool
	// OnPin, if set, is called after a new daemon was pinned.
	OnPin func(addr, fingerprint string)

	mu sync.Mutex
}

// Check is a HostKeyCallback: nil for the pinned fingerprint, and for a
// daemon not pinned yet (unless Strict), which Pin then pins.
func (k *KnownHosts) Check(addr, fingerprint string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, err := k.verify(addr, fingerprint)
	return err
}

// Pin records fingerprint for addr unless it is pinned already; it is
// Config.HostKeyPin, called after the daemon's hello.
func (k *KnownHosts) Pin(addr, fingerprint string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	pinned, err := k.verify(addr, fingerprint)
	if err != nil || pinned {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return fmt.Errorf("rexec: known hosts: %w", err)
	}
	f, err := os.OpenFile(k.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rexec: known hosts: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", addr, fingerprint); err != nil {
		_ = f.Close()
		return fmt.Errorf("rexec: known hosts: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("rexec: known hosts: %w", err)
	}
	if k.OnPin != nil {
		k.OnPin(addr, fingerprint)
	}
	return nil
}

// verify compares fingerprint with the file: pinned true when it is the
// pinned one, false with nil for a new daemon that may be pinned.
func (k *KnownHosts) verify(addr, fingerprint string) (pinned bool, err error) {
	want, line, err := k.lookup(addr)
	switch {
	case err != nil:
		return false, err
	case want == fingerprint:
		return true, nil
	case want != "":
		return false, &HostKeyError{Addr: addr, Want: want, Got: fingerprint, Path: k.Path, Line: line, Err: ErrHostKeyChanged}
	case k.Strict:
		return false, &HostKeyError{Addr: addr, Got: fingerprint, Path: k.Path, Err: ErrHostKeyUnknown}
	}
	return false, nil
}

// lookup returns the pinned fingerprint of addr and its line number.
func (k *KnownHosts) lookup(addr string) (string, int, error) {
	f, err := os.Open(k.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("rexec: known hosts: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if fields[0] == addr {
			return fields[1], n, nil
		}
	}
	return "", 0, sc.Err()
}
