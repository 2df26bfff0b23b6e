package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/execd-project/execd/cmd/rexec/internal/fanout"
	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// jobsCommand lists the jobs of one or more hosts.
func jobsCommand(ctx context.Context, e env) *cobra.Command {
	var cf connFlags
	var ff fanFlags
	var asJSON, idsOnly bool
	cmd := &cobra.Command{
		Use:   "jobs [flags] HOST...\n  rexec jobs -H HOSTS [flags]",
		Short: "List your jobs on hosts: detached commands, and commands waiting for their client",
		Long: `jobs lists your jobs on each HOST: commands started with --detach
(running, or exited and kept for the daemon's retention time), and
commands whose connection was lost and that wait for their client to
come back. STATE is running, waiting or exited; FULL marks a job whose
output reached the daemon's bound and that waits (kill it).

With -H (or -g), the hosts of a fan-out are asked at once, -f at a time,
and listed in their order with a HOST column; a host that cannot be
reached is named on stderr, and the exit status is 255.`,
		Example: `  rexec jobs lab1
  rexec jobs --json lab1 lab2
  rexec jobs -H node[01-40]`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case ff.active() && len(args) > 0:
				return errors.New("give hosts with -H or as arguments, not both")
			case !ff.active() && len(args) == 0:
				return errors.New("a HOST is needed (or -H)")
			}
			return ff.check()
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, hosts []string) error {
			var listed []hostJobs
			worst := 0
			if ff.active() {
				var err error
				if listed, worst, err = fanJobs(ctx, &cf, &ff, e); err != nil {
					return err
				}
			} else {
				for _, host := range hosts {
					jobs, err := listJobs(ctx, &cf, host, e)
					if err != nil {
						fmt.Fprintf(e.stderr, "rexec: %s: %s\n", termsafe.String(host), strings.TrimPrefix(err.Error(), "rexec: "))
						worst = exitTransport
						continue
					}
					listed = append(listed, hostJobs{host, jobs})
				}
			}
			if idsOnly {
				for _, hj := range listed {
					for _, j := range hj.jobs {
						fmt.Fprintln(e.stdout, j.ID) // as docker ps -q: one id a line, for scripts
					}
				}
				return exitWith(worst)
			}
			printJobs(e, listed, asJSON, ff.active() || len(hosts) > 1)
			return exitWith(worst)
		},
	}
	cf.register(cmd.Flags())
	ff.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per job, with its host")
	cmd.Flags().BoolVarP(&idsOnly, "quiet", "q", false, "only the jobs' ids, one a line (for rexec kill HOST $(rexec jobs -q HOST))")
	return cmd
}

// hostJobs are the jobs listed on one host.
type hostJobs struct {
	host string
	jobs []rexec.JobInfo
}

// listJobs lists the jobs of one host.
func listJobs(ctx context.Context, cf *connFlags, host string, e env) ([]rexec.JobInfo, error) {
	c, err := cf.dial(ctx, host, e)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	return c.Jobs(ctx)
}

// fanJobs lists the jobs of the hosts of -H, at once; the hosts that
// answered come back in the order of the fan-out, with the worst status.
func fanJobs(ctx context.Context, cf *connFlags, ff *fanFlags, e env) ([]hostJobs, int, error) {
	f, status, err := newFan(cf, ff, e)
	if err != nil {
		return nil, 0, fail(status, "%v", err)
	}
	defer f.d.close()
	var mu sync.Mutex
	byHost := map[string][]rexec.JobInfo{}
	results := f.run(ctx, 0, func(ctx context.Context, host string, c *rexec.Client) error {
		jobs, err := c.Jobs(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		byHost[host] = jobs
		mu.Unlock()
		return nil
	}, func(r rexec.HostResult) {
		if r.Err != nil {
			mu.Lock()
			defer mu.Unlock()
			_, _ = e.stderr.Write(fanout.FailureLines(r))
		}
	})
	var listed []hostJobs
	for _, h := range f.hosts {
		if jobs, ok := byHost[h]; ok {
			listed = append(listed, hostJobs{h, jobs})
		}
	}
	var ee *exitError
	if err := f.end(results, false); errors.As(err, &ee) {
		return listed, ee.status, nil
	}
	return listed, 0, nil
}

// printJobs prints the listing: a table (with a HOST column for many
// hosts) or JSON lines.
func printJobs(e env, listed []hostJobs, asJSON, many bool) {
	if asJSON {
		for _, hj := range listed {
			for _, j := range hj.jobs {
				line, _ := json.Marshal(jobJSONOf(hj.host, j))
				fmt.Fprintf(e.stdout, "%s\n", line)
			}
		}
		return
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	head := "ID\tSTATE\tSTARTED\tEXIT\tSTDOUT\tSTDERR\tCOMMAND"
	if many {
		head = "HOST\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, hj := range listed {
		for _, j := range hj.jobs {
			row := jobRow(j)
			if many {
				row = termsafe.String(hj.host) + "\t" + row
			}
			fmt.Fprintln(tw, row)
		}
	}
	_ = tw.Flush()
}

// jobJSON is a job's line of "rexec jobs --json": the daemon's listing
// as it sent it (frame.JobInfo), with the host it came from.
type jobJSON struct {
	Host string `json:"host"`
	frame.JobInfo
}

func jobJSONOf(host string, j rexec.JobInfo) jobJSON {
	w := frame.JobInfo{ID: j.ID, Argv: j.Argv, Shell: j.Shell, PID: j.PID, Detached: j.Detached, State: j.State,
		StartNS: j.Start.UnixNano(), Stdout: j.Stdout, Stderr: j.Stderr, Full: j.Full}
	if !j.End.IsZero() {
		w.EndNS = j.End.UnixNano()
	}
	if x := j.Exit; x != nil {
		w.Exit = &frame.ExitMsg{Code: int64(x.Status), Signal: string(x.Signal), CoreDumped: x.CoreDumped,
			DurationMS: x.Duration.Milliseconds(), TimedOut: x.TimedOut, Message: x.Message, Encoding: x.Encoding}
	}
	return jobJSON{host, w}
}

// jobRow is a job's line in the table.
func jobRow(j rexec.JobInfo) string {
	state, exit := j.State, "-"
	if j.Full {
		state += ",full"
	}
	if x := j.Exit; x != nil {
		exit = strconv.Itoa(x.Status)
		if x.Signal != "" {
			exit = "SIG" + string(x.Signal)
		}
	}
	command := j.Shell
	if command == "" {
		words := make([]string, len(j.Argv))
		for i, a := range j.Argv {
			words[i] = shellQuote(a)
		}
		command = strings.Join(words, " ")
	}
	return strings.Join([]string{j.ID, state, j.Start.Format("2006-01-02 15:04:05"), exit,
		strconv.FormatUint(j.Stdout, 10), strconv.FormatUint(j.Stderr, 10), termsafe.String(command)}, "\t")
}

// attachCommand streams a job.
// attachOptions are rexec attach's flags and arguments.
type attachOptions struct {
	cf                   connFlags
	fromStart            bool
	offset, stderrOffset int64
	reconnectFor         time.Duration

	host, job string
	mark      string   // the file that remembers where this client stopped
	from      [2]int64 // the offsets of stdout and stderr to stream from
}

func attachCommand(ctx context.Context, e env) *cobra.Command {
	var o attachOptions
	cmd := &cobra.Command{
		Use:   "attach [flags] HOST JOB",
		Short: "Stream a job's output, then exit with its status",
		Long: `attach streams the stdout and stderr of JOB (an id from --detach or
jobs) from where this client last stopped reading it, or from the
beginning, then follows it live and exits with the job's status. Ctrl-C
stops watching (130); a detached job goes on.`,
		Example: `  rexec attach lab1 1ec2e26aabe52dcc
  rexec attach --from-start lab1 1ec2e26aabe52dcc
  rexec attach --offset 1048576 lab1 1ec2e26aabe52dcc`,
		Args:          cobra.ExactArgs(2),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.complete(e, args)
			return o.run(ctx, e)
		},
	}
	cf := &o.cf
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&o.fromStart, "from-start", false, "stream the job's output from its beginning, not from where this client last stopped")
	cmd.Flags().Int64Var(&o.offset, "offset", -1, "stream stdout from this byte offset (stderr from --stderr-offset, else its beginning)")
	cmd.Flags().Int64Var(&o.stderrOffset, "stderr-offset", -1, "stream stderr from this byte offset (stdout from --offset, else its beginning)")
	cmd.Flags().DurationVar(&o.reconnectFor, "reconnect-for", rexec.DefaultReconnectFor, "after a lost connection, how long to reconnect and resume (0: never)")
	return cmd
}

// complete takes HOST and JOB, and where to stream from: the offsets
// given, the beginning, or where this client last stopped.
func (o *attachOptions) complete(e env, args []string) {
	o.host, o.job = args[0], args[1]
	o.mark = attachMark(e, o.host, o.job)
	if b, err := os.ReadFile(o.mark); err == nil && !o.fromStart && o.offset < 0 && o.stderrOffset < 0 {
		_, _ = fmt.Sscan(string(b), &o.from[0], &o.from[1])
	}
	if o.offset >= 0 || o.stderrOffset >= 0 {
		o.from = [2]int64{max(o.offset, 0), max(o.stderrOffset, 0)}
	}
}

// run streams the job and exits with its status, remembering where it
// stopped.
func (o *attachOptions) run(ctx context.Context, e env) error {
	c, err := o.cf.dial(ctx, o.host, e)
	if err != nil {
		return result(err)
	}
	defer func() { _ = c.Close() }()
	s, err := c.NewSession()
	if err != nil {
		return result(err)
	}
	stderr := &lineEnd{w: e.stderr, at: true}
	s.Stdout, s.Stderr = e.stdout, stderr
	if o.reconnectFor > 0 {
		opts := &options{connFlags: o.cf, reconnectFor: o.reconnectFor}
		s.Reconnect = opts.reconnect(o.host, e, stderr)
	}
	ictx, stop := interruptible(ctx, e)
	if err := s.Attach(ictx, o.job, o.from[0], o.from[1]); err != nil {
		stop()
		return result(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-ictx.Done():
		// The daemon sends no exit for a job that goes on: stop here.
		_ = c.Close()
		err = <-waited
	}
	interrupted := stop() != ""
	out, errw := s.Written()
	if o.mark != "" && os.MkdirAll(filepath.Dir(o.mark), 0o700) == nil {
		_ = os.WriteFile(o.mark, fmt.Appendf(nil, "%d %d\n", out, errw), 0o600) // best effort: the next attach starts over
	}
	if interrupted {
		return exitWith(130)
	}
	return result(exitStatus(err, e.stderr, exitNote(s)))
}

// attachMark is the file that remembers where this client stopped
// reading a job ("" when there is no cache directory).
func attachMark(e env, host, job string) string {
	dir := e.getenv("XDG_CACHE_HOME")
	if dir == "" {
		home := e.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < ' ' {
			return '_'
		}
		return r
	}, host)
	return filepath.Join(dir, "rexec", "attach", safe+"-"+filepath.Base(job))
}

// killCommand signals a job.
func killCommand(ctx context.Context, e env) *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:   "kill [flags] HOST JOB [SIGNAL]",
		Short: "Signal a job's process group (TERM by default); remove a job that has exited",
		Example: `  rexec kill lab1 1ec2e26aabe52dcc
  rexec kill lab1 1ec2e26aabe52dcc KILL`,
		Args:          cobra.RangeArgs(2, 3),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(args[1]) == "" {
				return fail(exitUsage, "kill: an empty job id (rexec jobs %s lists them)", args[0])
			}
			sig := ""
			if len(args) == 3 {
				sig = strings.TrimPrefix(strings.ToUpper(args[2]), "SIG")
			}
			c, err := cf.dial(ctx, args[0], e)
			if err != nil {
				return result(err)
			}
			defer func() { _ = c.Close() }()
			return result(c.KillJob(ctx, args[1], rexec.Signal(sig)))
		},
	}
	cf.register(cmd.Flags())
	return cmd
}

// shellQuote writes an argument so that sh would read it back as one word.
func shellQuote(a string) string {
	if a != "" && strings.IndexFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
