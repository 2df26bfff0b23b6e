// Command rtt measures round trips of one command on an open rexec
// connection: it runs `true` N times, one after another, on one client, and
// prints the median and 90th percentile in milliseconds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/execd-project/execd/internal/userkey"
	"github.com/execd-project/execd/rexec"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7022", "daemon address")
	n := flag.Int("n", 200, "commands to run")
	known := flag.String("known-hosts", "", "known_hosts file (pinned on first use)")
	flag.Parse()
	os.Exit(run(context.Background(), *addr, *n, *known))
}

func run(ctx context.Context, addr string, n int, known string) int {
	kh := &rexec.KnownHosts{Path: known}
	cfg := &rexec.Config{HostKeyCallback: kh.Check}
	if u, err := userkey.LocalUser(os.Getenv); err == nil {
		cfg.User = u
	}
	// The key the daemon's first start made for this user.
	if path, err := userkey.DefaultPath(os.Getenv); err == nil {
		if key, err := userkey.Load(path); err == nil {
			cfg.Auth = append(cfg.Auth, rexec.PublicKey(key))
		}
	}
	c, err := rexec.Dial(ctx, addr, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtt:", err)
		return 1
	}
	defer func() { _ = c.Close() }()
	times := make([]time.Duration, 0, n)
	for range n {
		s, err := c.NewSession()
		if err != nil {
			fmt.Fprintln(os.Stderr, "rtt:", err)
			return 1
		}
		begin := time.Now()
		if err := s.Run(ctx, "true"); err != nil {
			fmt.Fprintln(os.Stderr, "rtt:", err)
			return 1
		}
		times = append(times, time.Since(begin))
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("%.3f %.3f\n", ms(times[len(times)/2]), ms(times[len(times)*9/10]))
	return 0
}
