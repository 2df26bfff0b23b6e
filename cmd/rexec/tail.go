package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

type tailFlags struct {
	connFlags
	fan       fanFlags
	follow    bool
	followF   bool
	lines     string
	since     string
	grep      string
	json      bool
	noLabels  bool // -q: several files' lines without their source
	reconnect time.Duration
}

func tailCommand(ctx context.Context, e env) *cobra.Command {
	var tf tailFlags
	cmd := &cobra.Command{
		Use:   "tail [flags] HOST:PATH...",
		Short: "Print the end of remote files, and follow them as they grow (-F)",
		Long: `tail prints the last lines of each PATH (relative to the home the daemon
serves), as tail does. With -F (or -f) it follows them by name: new lines
as they are written, the new file after a rotation (renamed and created
anew, or copied and truncated), the file from its start after a
truncation. The daemon tells which file and which offset every byte came
from, so that a dropped connection is resumed where it stopped, with no
line twice and none missing, for --reconnect-for after each loss.

--grep keeps only the lines a regular expression (RE2) matches; the
daemon filters, so only they cross the wire. Several files, or -H (one
:PATH on many hosts), print each line whole after its source
("node07: ..."), or as JSON objects with --json. Here -f and -F are
tail's: the config file and the fan-out are --config and --fanout.

Exit status: 0 at the end of the files (without -F), 130 after Ctrl-C, 1
when a file cannot be read, 2 for a usage error, 255 when a connection
failed for good.`,
		Example: `  rexec tail -n 50 lab1:logs/app.log
  rexec tail -F lab1:logs/app.log
  rexec tail --since 15m lab1:logs/app.log
  rexec tail -F --grep 'ERROR|WARN' -H node[01-40] :logs/app.log
  rexec tail -F --json lab1:a.log lab1:b.log`,
		Args:          cobra.MinimumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(runTail(ctx, &tf, args, e))
		},
	}
	f := cmd.Flags()
	// -f and -F are tail's: the config file and the fan-out keep their
	// long names here (--config, --fanout).
	common := pflag.NewFlagSet("tail", pflag.ContinueOnError)
	tf.connFlags.register(common)
	tf.fan.register(common)
	common.VisitAll(func(fl *pflag.Flag) {
		if fl.Shorthand == "f" || fl.Shorthand == "F" {
			fl.Shorthand = ""
		}
		f.AddFlag(fl)
	})
	f.BoolVarP(&tf.followF, "follow-name", "F", false, "follow each file by name as it grows, across rotations and truncations")
	f.BoolVarP(&tf.follow, "follow", "f", false, "the same as -F: a remote file is always followed by name")
	f.StringVarP(&tf.lines, "lines", "n", "10", "print the last N lines first; +1 prints the whole file")
	f.StringVar(&tf.since, "since", "", "start instead of -n at a byte offset (a number), or at the first line stamped at or after a time: 2026-12-01T10:00:00Z, \"2026-12-01 10:00\", or a duration ago such as 15m")
	f.StringVar(&tf.grep, "grep", "", "only the lines this regular expression (RE2) matches, filtered by the daemon")
	f.BoolVar(&tf.json, "json", false, `one JSON object per line: {"host","path","line"}`)
	f.BoolVarP(&tf.noLabels, "quiet", "q", false, "several files' lines whole, without their source before them (as tail -q)")
	f.DurationVar(&tf.reconnect, "reconnect-for", 5*time.Minute, "with -F: how long to keep reconnecting after a connection is lost (0: never)")
	return cmd
}

// tailTarget is one file to follow.
type tailTarget struct{ host, path, label string }

func runTail(ctx context.Context, tf *tailFlags, args []string, e env) error {
	if err := tf.fan.check(); err != nil {
		return fail(exitUsage, "%v", err)
	}
	lines, err := parseTailLines(tf.lines)
	if err != nil {
		return fail(exitUsage, "-n: %v", err)
	}
	d, status, err := tf.newDialer(e)
	if err != nil {
		return fail(tf.status(status), "%v", err)
	}
	defer d.close()
	targets, err := tf.targets(d, args)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	opts := rexec.TailOptions{Lines: lines, Follow: tf.follow || tf.followF, Grep: tf.grep}
	if tf.since != "" {
		off, at, err := parseTailSince(tf.since, time.Now())
		if err != nil {
			return fail(exitUsage, "--since: %v", err)
		}
		if at.IsZero() {
			opts.Since = &rexec.TailPos{Offset: off}
		} else {
			opts.SinceTime = at
		}
	}
	ctx, stop := interruptible(ctx, e)
	out := &tailOut{w: e.stdout, json: tf.json, raw: len(targets) == 1 && !tf.json && !tf.fan.active(), noLabels: tf.noLabels}
	pool := &tailPool{d: d, hosts: map[string][]*tailConn{}}
	defer pool.close()
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i, tgt := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tf.followOne(ctx, pool, tgt, opts, out.writer(tgt), e)
			if errs[i] != nil && len(targets) > 1 {
				// Said at once: with -F the others may go on for days.
				out.mu.Lock()
				fmt.Fprintf(e.stderr, "rexec: tail %s\n", termsafe.String(strings.TrimPrefix(errs[i].Error(), "rexec: ")))
				out.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if sig := stop(); sig != "" {
		return &exitError{status: signalStatus(sig)}
	}
	return tailStatus(errs, len(targets) > 1)
}

// tailPool shares connections among the files of a host: each carries as
// many tail channels as the daemon keeps open on one connection (its
// hello's max_channels), and a file beyond that gets a connection of its
// own, never through a control master whose connection is full. One
// connection per file would meet the daemon's bound on logins from one
// address; one for all would meet its bound on channels.
type tailPool struct {
	d     *dialer
	mu    sync.Mutex
	hosts map[string][]*tailConn
}

// tailConn is a connection of the pool and the files it carries.
type tailConn struct {
	c      *rexec.Client
	used   int
	limit  int  // files it may carry
	shared bool // through a control master
}

// defaultTailChannels is what a connection carries when the daemon does
// not say (its default per connection).
const defaultTailChannels = 64

// acquire returns a connection to host with room for one more file and
// its release; direct asks for a connection not through a master.
func (p *tailPool) acquire(ctx context.Context, host string, direct bool) (*tailConn, func(full bool), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tc := range p.hosts[host] {
		if tc.used < tc.limit && tc.c.Err() == nil && !(direct && tc.shared) {
			tc.used++
			return tc, p.releaser(host, tc), nil
		}
	}
	dial := p.d.dial
	if direct {
		dial = p.d.dialDirect
	}
	c, _, err := dial(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	tc := &tailConn{c: c, used: 1, limit: cmp.Or(c.MaxChannels(), defaultTailChannels), shared: c.Shared()}
	p.hosts[host] = append(p.hosts[host], tc)
	return tc, p.releaser(host, tc), nil
}

// releaser gives a file's place on tc back; full says the daemon refused
// a channel there: tc takes no more files.
func (p *tailPool) releaser(host string, tc *tailConn) func(full bool) {
	return func(full bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		tc.used--
		if full {
			tc.limit = min(tc.limit, tc.used)
		}
		if tc.used == 0 && (tc.c.Err() != nil || full) {
			_ = tc.c.Close()
			p.hosts[host] = slices.DeleteFunc(p.hosts[host], func(x *tailConn) bool { return x == tc })
		}
	}
}

// close closes every connection of the pool.
func (p *tailPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, conns := range p.hosts {
		for _, tc := range conns {
			_ = tc.c.Close()
		}
	}
}

// parseTailLines reads -n: N, or +1 for the whole file.
func parseTailLines(s string) (int64, error) {
	if s == "+1" || s == "+0" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a number of lines or +1, got %q", s)
	}
	return n, nil
}

// targets are the files to follow: HOST:PATH arguments, or :PATH on every
// host of -H.
func (tf *tailFlags) targets(d *dialer, args []string) ([]tailTarget, error) {
	var out []tailTarget
	if tf.fan.active() {
		hosts, err := tf.fan.resolve(d.fc)
		if err != nil {
			return nil, err
		}
		for _, a := range args {
			p, ok := fanRemote(a)
			if !ok {
				return nil, fmt.Errorf("%q: %s", a, fanRemoteHint)
			}
			for _, h := range hosts {
				label := h
				if len(args) > 1 {
					label = h + ":" + p
				}
				out = append(out, tailTarget{host: h, path: p, label: label})
			}
		}
		return out, nil
	}
	for _, a := range args {
		h, p, ok := splitRemote(a)
		if !ok {
			return nil, fmt.Errorf("%q is not HOST:PATH", a)
		}
		out = append(out, tailTarget{host: h, path: p, label: a})
	}
	return out, nil
}

// followOne tails one target, reconnecting after a lost connection (with
// -F) and resuming where the last byte written stopped.
func (tf *tailFlags) followOne(ctx context.Context, pool *tailPool, tgt tailTarget, opts rexec.TailOptions, w *tailWriter, e env) error {
	opts.OnFile = func(f rexec.TailFile) {
		switch f.Reason {
		case "start", "resumed", "appeared":
		default:
			fmt.Fprintf(e.stderr, "rexec: tail %s: %s\n", termsafe.String(tgt.label), termsafe.String(f.Reason))
		}
	}
	var lostAt time.Time
	backoff := 100 * time.Millisecond
	direct := false
	for {
		tc, release, err := pool.acquire(ctx, tgt.host, direct)
		if err == nil {
			if !lostAt.IsZero() {
				fmt.Fprintf(e.stderr, "rexec: tail %s: reconnected, resuming at offset %d\n", termsafe.String(tgt.label), opts.Since.Offset)
				lostAt, backoff = time.Time{}, 100*time.Millisecond
			}
			var pos rexec.TailPos
			pos, err = tc.c.Tail(ctx, tgt.path, opts, w)
			var re *rexec.RemoteError
			full := errors.As(err, &re) && re.Code == frame.CodeTooManyChannels
			release(full)
			w.flush()
			if full && pos.Offset == 0 && !direct {
				// The connection (a master's, shared with others) had no
				// room after all: this file gets one of its own.
				direct = true
				continue
			}
			if err == nil || ctx.Err() != nil {
				return nil
			}
			if !opts.Follow || !errors.Is(err, rexec.ErrConnectionLost) {
				return fmt.Errorf("%s: %w", tgt.label, err)
			}
			opts.Since = &pos
			lostAt = time.Now()
			fmt.Fprintf(e.stderr, "rexec: tail %s: connection lost at offset %d; reconnecting\n", termsafe.String(tgt.label), pos.Offset)
		} else if lostAt.IsZero() || ctx.Err() != nil {
			return err
		}
		if time.Since(lostAt) > tf.reconnect {
			return fmt.Errorf("%s: no connection for %s: %w", tgt.label, tf.reconnect, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// tailStatus is the run's result: the first failure, 255 if any
// connection failed for good, else 1.
// Each failure was said already when several files were followed: then
// the last line counts them.
func tailStatus(errs []error, said bool) error {
	var first error
	status, failed := 0, 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		failed++
		if first == nil {
			first = err
		}
		var re *rexec.RemoteError
		switch {
		case errors.As(err, &re):
			status = max(status, 1)
		default:
			status = exitTransport
		}
	}
	switch {
	case first == nil:
		return nil
	case said:
		return fail(status, "tail: %d of %d files failed (each said above)", failed, len(errs))
	}
	return fail(status, "tail %s", strings.TrimPrefix(first.Error(), "rexec: "))
}

// tailOut writes what every target's tail received: as it comes when
// there is one file (the bytes exactly), else whole lines after their
// source, or JSON objects, never two lines mixed.
type tailOut struct {
	mu       sync.Mutex
	w        io.Writer
	json     bool
	raw      bool
	noLabels bool // whole lines, without their source
}

func (o *tailOut) writer(tgt tailTarget) *tailWriter { return &tailWriter{o: o, tgt: tgt} }

// tailWriter is one target's: it holds a line until its end.
type tailWriter struct {
	o       *tailOut
	tgt     tailTarget
	pending []byte
}

func (tw *tailWriter) Write(p []byte) (int, error) {
	o := tw.o
	if o.raw {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.w.Write(p)
	}
	tw.pending = append(tw.pending, p...)
	for {
		i := bytes.IndexByte(tw.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := tw.line(tw.pending[:i]); err != nil {
			return 0, err
		}
		tw.pending = tw.pending[i+1:]
	}
}

// flush writes a last line that has no end yet (the tail stopped).
func (tw *tailWriter) flush() {
	if len(tw.pending) > 0 && !tw.o.raw {
		_ = tw.line(tw.pending) // best effort: stdout closed is the caller's end anyway
		tw.pending = nil
	}
}

func (tw *tailWriter) line(l []byte) error {
	o := tw.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, err := json.Marshal(struct {
			Host string `json:"host"`
			Path string `json:"path"`
			Line string `json:"line"`
		}{tw.tgt.host, tw.tgt.path, string(l)})
		if err != nil {
			return err
		}
		_, err = o.w.Write(append(b, '\n'))
		return err
	}
	if o.noLabels {
		_, err := o.w.Write(append(append([]byte(nil), l...), '\n'))
		return err
	}
	_, err := fmt.Fprintf(o.w, "%s: %s\n", tw.tgt.label, l)
	return err
}

// parseTailSince reads --since: a byte offset (digits alone), a duration
// before now ("15m", "2h"), or a time, with a zone (RFC 3339) or in the
// local one ("2006-01-02 15:04[:05]", "2006-01-02"). A time gives at,
// an offset off.
func parseTailSince(v string, now time.Time) (off uint64, at time.Time, err error) {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		return n, time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return 0, now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return 0, t, nil
	}
	for _, layout := range []string{time.DateTime, "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return 0, t, nil
		}
	}
	return 0, time.Time{}, fmt.Errorf("%q is neither a byte offset, a duration such as 15m, nor a time such as 2026-12-01T10:00:00Z or \"2026-12-01 10:00\"", v)
}
