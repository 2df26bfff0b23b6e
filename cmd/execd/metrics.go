package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
	"github.com/execd-project/execd/execd"
)

// Bounds of the metrics listener: a scraper and a few health checks need
// a handful of connections, and these never reach into the open-file
// reserve the daemon keeps for logins (at least 64). Past the cap new
// connections wait in the kernel's backlog; idle ones are closed.
const (
	maxMetricsConns    = 16
	metricsIdleTimeout = 15 * time.Second
	metricsReadTimeout = 5 * time.Second
)

// startMetrics counts what srv does and serves the counts (/metrics) and
// its health (/healthz, /readyz) on addr; with a token file, /metrics
// wants "Authorization: Bearer TOKEN" (Prometheus' credentials_file).
// stop ends the listener.
func startMetrics(addr, tokenFile string, srv *execd.Server, log *slog.Logger) (stop func(), err error) {
	var token []byte
	if tokenFile != "" {
		if token, err = readToken(tokenFile, log); err != nil {
			return nil, err
		}
	}
	m := execd.NewMetrics(srv, buildinfo.Read().Short())
	srv.Metrics = m
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if beyondLoopback(ln.Addr()) {
		msg := "metrics listen beyond loopback: whoever reaches this address reads the daemon's counts (give --metrics 127.0.0.1:PORT, or --metrics-token-file)"
		if token != nil {
			msg = "metrics listen beyond loopback, /metrics behind the token (health checks are open)"
		}
		log.Warn(msg, "addr", ln.Addr().String())
	}
	hs := &http.Server{
		Handler:           withToken(m.Handler(srv), token),
		ReadHeaderTimeout: metricsReadTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(netutil.LimitListener(ln, maxMetricsConns)); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener", "err", err)
		}
	}()
	log.Info("metrics", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz", "token", token != nil)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx) // best effort: scrapers retry
		<-done
	}, nil
}

// beyondLoopback reports whether a listener's address is reachable from
// other machines: any address but 127.0.0.0/8 and ::1.
func beyondLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

// readToken reads a bearer token file: its first line, at least 16 bytes.
// One that others may read is used, with a warning.
func readToken(path string, log *slog.Logger) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--metrics-token-file: %w", err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(tok) < 16 {
		return nil, fmt.Errorf("--metrics-token-file %s: the token is %d bytes; use at least 16 (openssl rand -hex 32)", path, len(tok))
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o044 != 0 {
		log.Warn("the metrics token file is readable by others", "file", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	return []byte(tok), nil
}

// withToken guards /metrics with a bearer token (nil: no guard); the
// health checks stay open, as load balancers and systemd need them.
func withToken(h http.Handler, token []byte) http.Handler {
	if token == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), token) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="execd metrics"`)
				http.Error(w, "a bearer token is needed (the daemon's --metrics-token-file)", http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
