package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/termsafe"
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

// Per-host states, as the summary and --json name them.
const (
	stateOK          = "ok"
	stateFailed      = "failed"      // the command ran and exited non-zero or was killed
	stateTimedOut    = "timeout"     // a time limit ended it (shown as "timed out")
	stateUnreachable = "unreachable" // no connection
	stateRefused     = "refused"     // the login or the daemon's identity was refused
	stateInterrupted = "interrupted" // Ctrl-C (or TERM, HUP) ended it
	stateError       = "error"       // the connection failed after it was made
)

// outcome is what one host's result means to the user.
type outcome struct {
	state    string
	status   int  // the host's share of rexec's exit status
	exit     *int // remote exit code, when one arrived
	signal   string
	timedOut bool
	reason   string // one line, empty when ok, the same for hosts failing alike
	detail   string // the whole story for this host, one line per failure
}

func classify(r rexec.HostResult) outcome {
	var ee *rexec.ExitError
	var em *frame.ErrorMsg
	var he *rexec.HostError
	var te *transferError
	switch {
	case r.Err == nil:
		zero := 0
		return outcome{state: stateOK, exit: &zero}
	case errors.Is(r.Err, context.Canceled):
		return outcome{state: stateInterrupted, status: exitTransport, reason: "interrupted"}
	case errors.As(r.Err, &ee):
		o := outcome{state: stateFailed, status: shellStatus(ee.ExitStatus()), signal: string(ee.Signal), timedOut: ee.TimedOut}
		if ee.Signal == "" {
			o.exit = &ee.Status
			o.reason = fmt.Sprintf("exit %d", ee.Status)
		} else {
			o.reason = "killed by SIG" + string(ee.Signal)
		}
		if ee.TimedOut {
			o.state = stateTimedOut
			o.reason = "time limit reached, " + o.reason
		}
		return o
	case errors.As(r.Err, &em) && em.Code == frame.CodeExecFailed:
		return outcome{state: stateFailed, status: exitNotFound, reason: em.Message}
	case errors.As(r.Err, &te):
		first, _, _ := strings.Cut(te.Error(), "\n")
		o := outcome{state: stateFailed, status: 1, reason: strings.TrimPrefix(first, "rexec: ")}
		if isLost(te) {
			o.state, o.status = stateError, exitTransport
		}
		if n := strings.Count(te.Error(), "\n"); n > 0 {
			o.reason += fmt.Sprintf(" (and %d more)", n)
		}
		return o
	case errors.As(r.Err, &he):
		o := outcome{state: stateError, status: exitTransport, reason: shortReason(he.Err), detail: oneLine(he.Err)}
		var ae *rexec.AuthError
		var ke *rexec.HostKeyError
		switch {
		case he.Stage != rexec.StageConnect:
		case errors.As(he.Err, &ae), errors.As(he.Err, &ke), errors.Is(he.Err, rexec.ErrNoAuth):
			o.state = stateRefused
		default:
			o.state = stateUnreachable
		}
		if errors.Is(he.Err, rexec.ErrHostTimeout) {
			o.state = stateTimedOut
		}
		return o
	default:
		return outcome{state: stateError, status: exitTransport, reason: shortReason(r.Err), detail: oneLine(r.Err)}
	}
}

// oneLine is an error's message without rexec's prefix, lines joined.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimPrefix(err.Error(), "rexec: "), "\n", "; ")
}

// message is what to print for a failed host: the detail when there is one.
func (o outcome) message() string {
	if o.detail != "" {
		return o.detail
	}
	return o.reason
}

// shortReason is an error as one line without the host's address, so that
// hosts failing alike are listed together.
func shortReason(err error) string {
	var se *os.SyscallError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, rexec.ErrHostTimeout):
		return "host time limit reached"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer within the time limit"
	case errors.As(err, &se):
		return se.Err.Error() // "connection refused", not the dial's whole story
	}
	return oneLine(err)
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
	for _, kv := range opts.envs {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fail(exitUsage, "-e wants KEY=VALUE, got %q", kv)
		}
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

	pr := newFanPrinter(e, f.hosts, &opts.fan, color)
	var hostLimit time.Duration
	if opts.timeout > 0 {
		// The daemon ends the command at --timeout; this bounds a host
		// that stops answering altogether.
		hostLimit = opts.connectTimeout + opts.timeout + 10*time.Second
	}
	job := func(ctx context.Context, host string, c *rexec.Client) error {
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		s.Stdout, s.Stderr = pr.writers(host)
		if stdin != nil {
			s.Stdin = stdin.reader()
		}
		s.Dir, s.Timeout, s.Encoding = opts.dir, opts.timeout, opts.encoding
		for _, kv := range opts.envs {
			k, v, _ := strings.Cut(kv, "=")
			if err := s.Setenv(k, v); err != nil {
				return err
			}
		}
		if opts.shell {
			err = s.StartShell(ctx, strings.Join(argv, " "))
		} else {
			err = s.Start(ctx, argv...)
		}
		if err != nil {
			return err
		}
		return s.Wait()
	}
	results := f.run(ctx, hostLimit, job, pr.done)
	pr.finish(results)
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
	if len(f.pinned) > 0 {
		fmt.Fprintf(f.e.stderr, "rexec: pinned %d new %s in %s: %s\n", len(f.pinned), plural(len(f.pinned), "host"), f.d.kh.Path, compressHosts(f.pinned))
	}
	if summary {
		printSummary(f.e.stderr, results)
	}
	f.mu.Lock()
	sig := f.signal
	f.mu.Unlock()
	if sig != "" {
		return exitWith(signalStatus(sig))
	}
	worst := 0
	for _, r := range results {
		worst = max(worst, classify(r).status)
	}
	return exitWith(worst)
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

// printSummary writes the closing lines: counts by state, the slowest
// host, and each kind of failure with its hosts.
func printSummary(w io.Writer, results []rexec.HostResult) {
	counts := map[string]int{}
	type failure struct {
		state, reason string
		hosts         []string
	}
	var failures []*failure
	index := map[[2]string]*failure{}
	var slowest rexec.HostResult
	for _, r := range results {
		o := classify(r)
		counts[o.state]++
		if r.Duration() > slowest.Duration() || slowest.Host == "" {
			slowest = r
		}
		if o.state == stateOK {
			continue
		}
		k := [2]string{o.state, o.reason}
		f := index[k]
		if f == nil {
			f = &failure{state: o.state, reason: o.reason}
			index[k] = f
			failures = append(failures, f)
		}
		f.hosts = append(f.hosts, r.Host)
	}
	var parts []string
	for _, st := range []string{stateOK, stateFailed, stateTimedOut, stateError, stateUnreachable, stateRefused, stateInterrupted} {
		if counts[st] > 0 || st == stateOK {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], stateLabel(st)))
		}
	}
	fmt.Fprintf(w, "rexec: %d %s: %s; slowest %s (%s)\n", len(results), plural(len(results), "host"),
		strings.Join(parts, ", "), slowest.Host, slowest.Duration().Round(time.Millisecond))
	for _, f := range failures {
		if f.state == f.reason {
			fmt.Fprintf(w, "rexec: %s: %s\n", stateLabel(f.state), compressHosts(f.hosts))
			continue
		}
		fmt.Fprintf(w, "rexec: %s: %s: %s\n", stateLabel(f.state), compressHosts(f.hosts), termsafe.String(f.reason))
	}
}

// stateLabel is how the summary names a state.
func stateLabel(state string) string {
	if state == stateTimedOut {
		return "timed out"
	}
	return state
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
