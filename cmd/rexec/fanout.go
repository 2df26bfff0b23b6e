package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/execd-project/execd/cmd/rexec/internal/fanout"
	"github.com/execd-project/execd/cmd/rexec/internal/hostlist"
	"github.com/execd-project/execd/rexec"
)

// fanOptions are the output flags of a fan-out run.
type fanOptions struct {
	fanFlags
	group     bool
	json      bool
	color     string
	noSummary bool
}

// runFanout runs argv on every host of the inventory.
func runFanout(ctx context.Context, opts *options, argv []string, e env) error {
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	switch {
	case len(argv) == 0:
		return fail(exitUsage, "-H needs a COMMAND: there is no interactive shell on many hosts")
	case opts.forcePty:
		return fail(exitUsage, "-t cannot be used with -H")
	case opts.fan.group && opts.fan.json:
		return fail(exitUsage, "--group and --json cannot be used together")
	}
	if err := opts.checkEnvs(); err != nil {
		return err
	}
	f, status, err := newFan(&opts.connFlags, &opts.fan.fanFlags, e)
	if err != nil {
		return fail(status, "%v", err)
	}
	defer f.d.close()
	color, err := useColor(opts.fan.color, e)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}

	// stdin, when there is one, goes to every host: it is kept in a
	// temporary file so that each host reads it at its own pace.
	var stdin *spool
	if !opts.noStdin && !isTerminal(e.stdin) {
		stdin, err = spoolInput(e.stdin)
		if err != nil {
			return fail(exitTransport, "reading stdin: %v", err)
		}
		defer stdin.Close()
	}

	pr := fanout.NewPrinter(e.stdout, e.stderr, f.hosts, fanout.Mode{Group: opts.fan.group, JSON: opts.fan.json}, color)
	var hostLimit time.Duration
	if opts.timeout > 0 {
		// The daemon ends the command at --timeout; this bounds a host
		// that stops answering altogether.
		hostLimit = opts.connectTimeout + opts.timeout + 10*time.Second
	}
	job := func(ctx context.Context, host string, c *rexec.Client) error {
		var in io.Reader
		if stdin != nil {
			in = stdin.reader()
		}
		stdout, stderr := pr.Writers(host)
		s, err := opts.session(c, in, stdout, stderr)
		if err != nil {
			return err
		}
		if err := opts.start(ctx, s, argv); err != nil {
			return err
		}
		return s.Wait()
	}
	results := f.run(ctx, hostLimit, job, pr.Done)
	pr.Finish(results)
	return f.end(results, !opts.fan.noSummary)
}

// fan is the part of a fan-out that commands and transfers share: the
// hosts, one dialer for all of them, and the watch for Ctrl-C.
type fan struct {
	e     env
	d     *dialer
	limit int
	hosts []string

	mu     sync.Mutex
	pinned []string // hosts pinned in known_hosts on first use, named at the end
	signal string   // the signal that ended the run, if one did
}

// newFan reads the config file and expands the inventory. On failure it
// returns the exit status and the error.
func newFan(cf *connFlags, ff *fanFlags, e env) (*fan, int, error) {
	d, status, err := cf.newDialer(e)
	if err != nil {
		return nil, status, err
	}
	hosts, err := ff.resolve(d.fc)
	if err != nil {
		return nil, exitUsage, err
	}
	f := &fan{e: e, d: d, limit: ff.limit, hosts: hosts}
	d.shared = &sharedPassword{}
	d.pinned = func(addr string) {
		f.mu.Lock()
		f.pinned = append(f.pinned, addr)
		f.mu.Unlock()
	}
	return f, 0, nil
}

// run does job on every host, each within hostLimit (0: no limit), until
// an INT, TERM or HUP ends them all.
func (f *fan) run(ctx context.Context, hostLimit time.Duration, job func(ctx context.Context, host string, c *rexec.Client) error, done func(rexec.HostResult)) []rexec.HostResult {
	ctx, stop := interruptible(ctx, f.e)
	defer func() {
		sig := stop()
		f.mu.Lock()
		f.signal = sig
		f.mu.Unlock()
	}()
	fo := &rexec.Fanout{Limit: f.limit, Timeout: hostLimit, Dial: func(ctx context.Context, h string) (*rexec.Client, error) {
		c, _, err := f.d.dial(ctx, h)
		return c, err
	}}
	return fo.Run(ctx, f.hosts, job, done)
}

// end names the newly pinned hosts, prints the summary and returns the
// exit status: 128+N after signal N, else the worst of all hosts.
func (f *fan) end(results []rexec.HostResult, summary bool) error {
	if n := len(f.pinned); n > 0 {
		hosts := "hosts"
		if n == 1 {
			hosts = "host"
		}
		fmt.Fprintf(f.e.stderr, "rexec: pinned %d new %s in %s: %s\n", n, hosts, f.d.kh.Path, hostlist.Compress(f.pinned))
	}
	if summary {
		fanout.Summary(f.e.stderr, results)
	}
	f.mu.Lock()
	sig := f.signal
	f.mu.Unlock()
	if sig != "" {
		return exitWith(signalStatus(sig))
	}
	return exitWith(fanout.Worst(results))
}

// spool holds stdin for every host.
type spool struct {
	f    *os.File
	size int64
}

func spoolInput(r io.Reader) (*spool, error) {
	f, err := os.CreateTemp("", "rexec-stdin-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name()) // where the system allows, nothing is left behind even on a crash
	n, err := io.Copy(f, r)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &spool{f: f, size: n}, nil
}

func (s *spool) reader() io.Reader { return io.NewSectionReader(s.f, 0, s.size) }

func (s *spool) Close() {
	_ = s.f.Close()           // best effort
	_ = os.Remove(s.f.Name()) // on systems that kept it open
}

// useColor decides whether prefixes are coloured: --color=auto colours on a
// terminal unless NO_COLOR is set or TERM is dumb.
func useColor(mode string, e env) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		return isTerminal(e.stdout) && e.getenv("NO_COLOR") == "" && e.getenv("TERM") != "dumb", nil
	}
	return false, fmt.Errorf("--color wants auto, always or never, got %q", mode)
}
