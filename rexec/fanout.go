package rexec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// DefaultFanout is how many hosts a Fanout works on at once when Limit is 0,
// as pdsh's default of 32.
const DefaultFanout = 32

// ErrHostTimeout is wrapped by a HostError for a host that did not finish
// within Fanout.Timeout.
var ErrHostTimeout = errors.New("rexec: host time limit reached")

// Fanout does one job on many hosts at once, each on its own connection: a
// host that is down, slow or refuses the login is reported and never holds
// up the others.
type Fanout struct {
	// Limit is the most hosts worked on at once; 0 means DefaultFanout.
	Limit int
	// Dial connects to a host as the caller names it.
	Dial func(ctx context.Context, host string) (*Client, error)
	// Timeout bounds each host's whole job, connecting included; 0 means
	// no bound beyond the job's own.
	Timeout time.Duration
}

// HostResult is the outcome of a job on one host.
type HostResult struct {
	Host string
	// Err is nil when the job succeeded; a *HostError when the host could
	// not be reached or logged in to; otherwise the job's error (an
	// *ExitError for a command that failed).
	Err error
	// Start and End bound the host's work, connecting included.
	Start, End time.Time
}

// Duration is how long the host took.
func (r HostResult) Duration() time.Duration { return r.End.Sub(r.Start) }

// Unreachable reports whether the job never started for want of a
// connection: the host was down, refused the login or its identity.
func (r HostResult) Unreachable() bool {
	var he *HostError
	return errors.As(r.Err, &he) && he.Stage == StageConnect
}

// Stages of a HostError.
const (
	StageConnect = "connect" // dialling, TLS, identity, login
	StageJob     = "job"     // after the connection was made
)

// HostError is a failure on one host outside the job's own result: no
// connection, or the host's time limit.
type HostError struct {
	Host  string
	Stage string
	Err   error
}

func (e *HostError) Error() string { return fmt.Sprintf("%s: %v", e.Host, e.Err) }
func (e *HostError) Unwrap() error { return e.Err }

// Run does job on every host, at most Limit at a time, and returns the
// results in the order of hosts. done, when not nil, is called with each
// result as its host finishes (from that host's goroutine; calls may
// overlap). Cancelling ctx stops hosts in flight and starts no others;
// their results carry the context's error.
func (f *Fanout) Run(ctx context.Context, hosts []string, job func(ctx context.Context, host string, c *Client) error, done func(HostResult)) []HostResult {
	results := make([]HostResult, len(hosts))
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultFanout
	}
	var g errgroup.Group
	g.SetLimit(limit)
	for i, h := range hosts {
		g.Go(func() error {
			r := f.one(ctx, h, job)
			results[i] = r // each goroutine owns its slot
			if done != nil {
				done(r)
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines return nil; errors are in results
	return results
}

// one does the job on one host.
func (f *Fanout) one(ctx context.Context, host string, job func(ctx context.Context, host string, c *Client) error) HostResult {
	r := HostResult{Host: host, Start: time.Now()}
	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, f.Timeout, ErrHostTimeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		r.Err = &HostError{Host: host, Stage: StageConnect, Err: context.Cause(ctx)}
		r.End = time.Now()
		return r
	}
	c, err := f.Dial(ctx, host)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
		r.Err = &HostError{Host: host, Stage: StageConnect, Err: err}
		r.End = time.Now()
		return r
	}
	defer func() { _ = c.Close() }() // best effort; the job is over
	// The job watches ctx itself; closing the connection as well makes
	// sure that a job stuck on the network returns.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	err = job(ctx, host, c)
	if err != nil && ctx.Err() != nil {
		// The job failed because its context ended (and the connection
		// with it): say why rather than how.
		cause := context.Cause(ctx)
		if errors.Is(cause, ErrHostTimeout) {
			cause = fmt.Errorf("%w after %v", ErrHostTimeout, f.Timeout)
		}
		err = &HostError{Host: host, Stage: StageJob, Err: cause}
	}
	r.Err = err
	r.End = time.Now()
	return r
}
