package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/execd-project/execd/cmd/rexec/internal/fanout"
	"github.com/execd-project/execd/rexec"
)

// fanRemote parses a remote path under -H: ":PATH", or "HOST:PATH" with
// the word HOST standing for each host. An empty PATH is the home.
func fanRemote(arg string) (string, bool) {
	for _, p := range []string{"HOST:", ":"} {
		if rest, ok := strings.CutPrefix(arg, p); ok {
			if rest == "" {
				rest = "~"
			}
			return rest, true
		}
	}
	return "", false
}

const fanRemoteHint = "with -H, write remote paths as :PATH (or HOST:PATH); the hosts come from -H"

// runGetFanout fetches the remotes from every host into LOCAL/<host>/.
func runGetFanout(ctx context.Context, tf *transferFlags, args []string, e env) error {
	local := "."
	if _, ok := fanRemote(args[len(args)-1]); !ok {
		if len(args) < 2 {
			return fail(exitUsage, "get -H needs :REMOTE; %s", fanRemoteHint)
		}
		local, args = args[len(args)-1], args[:len(args)-1]
	}
	var remotes []string
	for _, a := range args {
		r, ok := fanRemote(a)
		if !ok {
			return fail(exitUsage, "%q: %s (only the last argument is local)", a, fanRemoteHint)
		}
		remotes = append(remotes, r)
	}
	if fi, err := os.Stat(local); err == nil && !fi.IsDir() {
		return fail(exitUsage, "%s is not a directory: get -H makes one folder per host in it", local)
	}
	return fanTransfer(ctx, tf, e, func(ctx context.Context, host string, c *rexec.Client, opts *rexec.TransferOptions) error {
		dir := filepath.Join(local, hostDirName(host))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var errs []error
		for _, r := range remotes {
			if _, err := c.Get(ctx, r, dir, opts); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			_ = os.Remove(dir) // only when nothing arrived: the folder is empty
		}
		return errors.Join(errs...)
	})
}

// runPutFanout pushes the locals (or stdin) to every host.
func runPutFanout(ctx context.Context, tf *transferFlags, args []string, e env) error {
	remote, ok := fanRemote(args[len(args)-1])
	if !ok {
		return fail(exitUsage, "the last argument must be :REMOTE; %s", fanRemoteHint)
	}
	locals := args[:len(args)-1]
	for _, l := range locals {
		if _, ok := fanRemote(l); ok {
			return fail(exitUsage, "%q looks remote; put copies local files (write ./%s for a local name with a colon)", l, l)
		}
	}
	var in *spool
	if len(locals) == 1 && locals[0] == "-" {
		if remote == "~" || strings.HasSuffix(remote, "/") {
			return fail(exitUsage, "put - needs a file name on the remote side, not %q", remote)
		}
		var err error
		if in, err = spoolInput(e.stdin); err != nil {
			return fail(exitTransport, "reading stdin: %v", err)
		}
		defer in.Close()
	}
	return fanTransfer(ctx, tf, e, func(ctx context.Context, host string, c *rexec.Client, opts *rexec.TransferOptions) error {
		var err error
		if in != nil {
			_, err = c.PutStream(ctx, in.reader(), remote, opts)
		} else {
			_, err = c.Put(ctx, locals, remote, opts)
		}
		return err
	})
}

// fanTransfer runs a get or put on every host, with one progress view for
// all of them, one line per failure and a summary.
func fanTransfer(ctx context.Context, tf *transferFlags, e env, do func(ctx context.Context, host string, c *rexec.Client, opts *rexec.TransferOptions) error) error {
	f, status, err := newFan(&tf.connFlags, &tf.fan, e)
	if err != nil {
		return fail(status, "%v", err)
	}
	defer f.d.close()
	opts, _ := tf.options(e)
	var bar *fanProgress
	if opts.Observer != nil {
		bar = newFanProgress(e, len(f.hosts))
	}
	var errMu sync.Mutex // whole lines: hosts' messages never mix
	job := func(ctx context.Context, host string, c *rexec.Client) error {
		o := *opts
		if bar != nil {
			o.Observer = bar
		}
		if err := do(ctx, host, c, &o); err != nil {
			return &fanout.TransferError{Err: err}
		}
		return nil
	}
	results := f.run(ctx, 0, job, func(r rexec.HostResult) {
		if bar != nil {
			bar.hostDone()
		}
		if r.Err == nil {
			return
		}
		errMu.Lock()
		defer errMu.Unlock()
		_, _ = e.stderr.Write(fanout.FailureLines(r)) // a closed stderr must not stop the other hosts
	})
	if bar != nil {
		bar.wait()
	}
	return f.end(results, !tf.noSummary)
}

// fanProgress is one bar for the bytes of every host, with a count of the
// hosts done, instead of a bar per file per host.
type fanProgress struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	total atomic.Int64
	done  atomic.Int64
	hosts int

	mu   sync.Mutex
	last time.Time
}

func newFanProgress(e env, hosts int) *fanProgress {
	fp := &fanProgress{hosts: hosts, last: time.Now()}
	fp.p = mpb.New(mpb.WithOutput(e.stderr), mpb.WithRefreshRate(100*time.Millisecond), mpb.WithWidth(60), mpb.WithAutoRefresh())
	fp.bar = fp.p.AddBar(0,
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			return fmt.Sprintf("%d/%d hosts", fp.done.Load(), fp.hosts)
		}, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
			decor.OnComplete(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace), ""),
		),
	)
	return fp
}

// File implements rexec.Observer: the file's size joins the total.
func (fp *fanProgress) File(_ string, size, resumed uint64) rexec.FileTracker {
	fp.bar.SetTotal(fp.total.Add(int64(size)), false)
	fp.bar.IncrInt64(int64(resumed))
	return fp
}

// Add implements rexec.FileTracker.
func (fp *fanProgress) Add(n int) {
	fp.mu.Lock()
	now := time.Now()
	fp.bar.EwmaIncrBy(n, now.Sub(fp.last))
	fp.last = now
	fp.mu.Unlock()
}

// Done implements rexec.FileTracker; failures are reported per host.
func (fp *fanProgress) Done(error) {}

func (fp *fanProgress) hostDone() { fp.done.Add(1) }

func (fp *fanProgress) wait() {
	fp.bar.SetTotal(-1, true)
	fp.p.Wait()
}
