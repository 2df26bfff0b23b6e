// Package execdtest starts an in-process execd on a loopback port for
// tests, and stops it when the test ends.
package execdtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/rexec"
)

// Server is a running in-process daemon for a test, as httptest.Server is for
// net/http.
type Server struct {
	Server      *execd.Server
	Addr        string
	Fingerprint string
	StateDir    string
}

// Start serves srv (TLS with a fresh identity unless plaintext) on
// 127.0.0.1:0. Cleanup closes it and fails the test if Serve returned
// anything but ErrServerClosed.
func Start(t testing.TB, srv *execd.Server, plaintext bool) *Server {
	t.Helper()
	return StartAt(t, srv, plaintext, "127.0.0.1:0")
}

// StartAt is Start on a given loopback address, such as 127.0.0.7:0.
func StartAt(t testing.TB, srv *execd.Server, plaintext bool, addr string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	return StartOn(t, srv, plaintext, ln)
}

// StartOn is Start on a listener the test made (one port on many
// loopback addresses, say).
func StartOn(t testing.TB, srv *execd.Server, plaintext bool, ln net.Listener) *Server {
	t.Helper()
	d := &Server{Server: srv, StateDir: TempDir(t)}
	if !plaintext {
		cert, _, err := execd.LoadOrCreateIdentity(d.StateDir)
		require.NoError(t, err)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		d.Fingerprint = execd.Fingerprint(cert.Leaf)
	}
	if srv.Logger == nil && os.Getenv("EXECD_TEST_LOG") != "" {
		srv.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d.Addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, execd.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return d
}

// TempDir is t.TempDir, removed file by file at the end: Go's RemoveAll
// uses Windows calls that wine 8 lacks, and the Windows tests run there.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "execd-test")
	require.NoError(t, err)
	t.Cleanup(func() {
		var paths []string
		_ = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				paths = append(paths, p)
			}
			return nil
		})
		for i := len(paths) - 1; i >= 0; i-- { // children before their directories
			_ = os.Chmod(paths[i], 0o700)
			if err := os.Remove(paths[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Logf("temp dir cleanup: %v", err)
			}
		}
	})
	return dir
}

// ProcessAlive reports whether pid exists and is not a zombie (Linux /proc).
func ProcessAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// Dial connects a client to the daemon, trusting its identity only (as
// httptest.Server.Client trusts its certificate); Cleanup closes it.
func (s *Server) Dial(t testing.TB) *rexec.Client {
	t.Helper()
	cfg := &rexec.Config{Plaintext: s.Fingerprint == ""}
	if !cfg.Plaintext {
		cfg.HostKeyCallback = func(addr, fp string) error {
			if fp != s.Fingerprint {
				return fmt.Errorf("fingerprint %s, want %s", fp, s.Fingerprint)
			}
			return nil
		}
	}
	c, err := rexec.Dial(t.Context(), s.Addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Self is the name of the account the test runs as: a user who runs
// commands in a test acts as it (run_as), as a root daemon only lets a
// user act as root when run_as says so.
func Self(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}
