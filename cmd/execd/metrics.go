package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/internal/buildinfo"
)

// startMetrics counts what srv does and serves the counts (/metrics) and
// its health (/healthz, /readyz) on addr. stop ends the listener.
func startMetrics(addr string, srv *execd.Server, log *slog.Logger) (stop func(), err error) {
	m := execd.NewMetrics(srv, buildinfo.Read().Short())
	srv.Metrics = m
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: m.Handler(srv), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener", "err", err)
		}
	}()
	log.Info("metrics", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx) // best effort: scrapers retry
		<-done
	}, nil
}
