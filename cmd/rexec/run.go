package main

import (
	"context"

	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
	"github.com/execd-project/execd/cmd/rexec/internal/fanout"
	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/internal/transcode"
	"github.com/execd-project/execd/rexec"
)

type options struct {
	connFlags
	noStdin  bool
	forcePty bool
	noPty    bool
	shell    bool
	// exactArgv never runs a command through the shell (--argv).
	exactArgv bool
	envs      []string
	dir       string
	timeout   time.Duration
	fan       fanOptions

	reconnectFor time.Duration // how long to reconnect after a loss; 0: the command ends with its connection
	detach       bool          // start the command as a job and print its id

	framing    string
	recvBuffer int
	encoding   string
}

func run(ctx context.Context, args []string, e env) error {
	var opts options
	cmd := rootCommand(ctx, e, &opts)
	cmd.SetArgs(fanCommandArgs(args, cmd.Flags()))
	cmd.SetIn(e.stdin)
	cmd.SetOut(e.stdout)
	cmd.SetErr(e.stderr)
	err := cmd.ExecuteContext(ctx)
	var ee *exitError
	if err != nil && !errors.As(err, &ee) {
		// Not a command's result (those are *exitError): cobra's own
		// complaint about the command line.
		fmt.Fprintf(e.stderr, "rexec: %v\nRun 'rexec --help' for usage.\n", err)
		return exitWith(exitUsage)
	}
	return err
}

// rootLong and rootExample are rexec's help.
const (
	rootLong = `rexec runs COMMAND on the machine where execd listens and prints its
stdout and stderr byte for byte; it exits with the command's status
(128+N when a signal ended it), 255 when the connection or the protocol
failed, and 2 for a usage error.

COMMAND and ARGS are passed as they are, without a shell. A single
argument with shell syntax ('ls / | wc -l'), a shell builtin as COMMAND
(cd, export, ...) or -s runs the words through the account's login shell
instead, joined with spaces as ssh does; --argv never does.
With no COMMAND, rexec starts a login shell, on a pty when stdin is a
terminal. HOST may be an alias from the config file; the daemon's
identity is pinned on first use in the known_hosts file.

With -H (or -g), COMMAND runs on many hosts at once, -f at a time: each
line of output is printed whole after its host's name ("node07: ..."),
or --group prints hosts with identical output together, or --json prints
one object per host. stdin, when it is not a terminal, goes to every
host. A summary on stderr counts hosts ok, failed, timed out,
unreachable and refused. The exit status is the worst of all hosts:
255 when any was unreachable or refused, else the highest remote status.
HOSTS is a list such as node[01-40],web1,alice@db:7023, @FILE for a
file of hosts, or a group from the config file.

Called as ssh (a link), as "rexec --ssh ...", or for a host with
ssh = true in the config file, rexec takes OpenSSH's command line
instead, for git, rsync, Ansible and pdsh: -p -l -i -t -T -n -q -v -4 -6
-G -F and -o Key=Value, the command's words joined for the remote shell,
255 for any failure of its own.`
	rootExample = `  rexec lab1 -- uname -a
  rexec -s lab1 'ls /var/log | wc -l'
  rexec -t lab1 top
  tar cf - dir | rexec lab1 -- tar xf - -C /tmp
  rexec -H node[01-40] -- uptime
  rexec -H @lab.txt -x node07 --group -- cat /etc/os-release
  rexec -g lab --json --timeout 30s -- df -h /`
)

// rootCommand is rexec HOST COMMAND, with every other command under it.
func rootCommand(ctx context.Context, e env, opts *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rexec [flags] HOST[:PORT] [--] COMMAND [ARGS...]\n  rexec -H HOSTS [flags] [--] COMMAND [ARGS...]",
		Short:   "Run a command on an execd daemon",
		Long:    rootLong,
		Example: rootExample,
		Version: buildinfo.Read().Long(),
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) > 0:
				return nil
			case opts.fan.active():
				return errors.New("-H needs a COMMAND: there is no interactive shell on many hosts")
			}
			return errors.New("a HOST is needed")
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(remote(ctx, opts, args, e))
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags stop at HOST, as with ssh
	opts.register(f)
	cmd.AddCommand(getCommand(ctx, e), putCommand(ctx, e), filesCommand(ctx, e), keygenCommand(e), labCommand(ctx, e), tailCommand(ctx, e), jobsCommand(ctx, e), attachCommand(ctx, e), killCommand(ctx, e), controlMasterCommand(e))
	if man := manCommand(); man != nil {
		cmd.AddCommand(man)
	}
	completeRoot(cmd, e, opts)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return plainFlagError(err) })
	return cmd
}

// register defines rexec's own flags on f, the shared ones included.
func (opts *options) register(f *pflag.FlagSet) {
	f.BoolVarP(&opts.noStdin, "no-stdin", "n", false, "send no stdin (the command reads end of file)")
	f.BoolVarP(&opts.forcePty, "tty", "t", false, "run the command on a pty, the local terminal in raw mode")
	f.BoolVarP(&opts.noPty, "no-tty", "T", false, "never allocate a pty")
	f.BoolVarP(&opts.shell, "shell", "s", false, "run COMMAND through the remote shell")
	f.BoolVar(&opts.exactArgv, "argv", false, "run COMMAND ARGS exactly as given, even when they look like shell syntax")
	f.StringArrayVarP(&opts.envs, "env", "e", nil, "set KEY=VALUE in the command's environment (repeatable)")
	f.StringVarP(&opts.dir, "dir", "C", "", "working directory on the remote side (relative to its home)")
	f.DurationVar(&opts.timeout, "timeout", 0, "time limit for the command, enforced by the daemon (e.g. 30s)")
	f.BoolVar(&opts.detach, "detach", false, "start the command as a job that runs apart from any connection; print its id (see rexec jobs, attach, kill)")
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "no notes of rexec's own on stderr (a new host pinned, a connection lost and resumed): the command's stderr alone")
	f.DurationVar(&opts.reconnectFor, "reconnect-for", rexec.DefaultReconnectFor, "after a lost connection, how long to reconnect and resume the command, which goes on meanwhile (0: the command ends with its connection)")
	opts.connFlags.register(f)
	opts.fan.register(f)
	f.BoolVar(&opts.fan.group, "group", false, "with -H: print hosts with identical output together, at the end")
	f.BoolVar(&opts.fan.json, "json", false, "with -H: one JSON object per host as it finishes")
	f.StringVar(&opts.fan.color, "color", "auto", "with -H: colour host prefixes: auto, always or never")
	f.BoolVar(&opts.fan.noSummary, "no-summary", false, "with -H: no summary on stderr at the end")
	f.StringVar(&opts.encoding, "encoding", "", "how the daemon transcodes the output to UTF-8: auto, utf-8, gbk, gb18030, or raw for binary (default: the daemon's choice)")
	f.StringVar(&opts.framing, "framing", "on", "off: the teaching mode of the sticky-packet lesson, against execd --framing=off")
	f.IntVar(&opts.recvBuffer, "recv-buffer", 1024, "with --framing=off: bytes taken by the one recv() per answer")
}

// completeRoot completes rexec's HOST and its host flags.
func completeRoot(cmd *cobra.Command, e env, opts *options) {
	cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 || opts.fan.active() {
			return nil, cobra.ShellCompDirectiveDefault // the command's words: the local shell's files
		}
		return knownHosts(e, opts.configPath, true), cobra.ShellCompDirectiveNoFileComp
	}
	hostsAndGroups := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return knownHosts(e, opts.configPath, true), cobra.ShellCompDirectiveNoFileComp
	}
	_ = cmd.RegisterFlagCompletionFunc("hosts", hostsAndGroups)
	_ = cmd.RegisterFlagCompletionFunc("exclude", hostsAndGroups)
	_ = cmd.RegisterFlagCompletionFunc("group-name", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return knownHosts(e, opts.configPath, false), cobra.ShellCompDirectiveNoFileComp
	})
}

// fanCommandArgs puts "--" before the command of a fan-out (-H or -g
// among the leading flags), so that a command named like a subcommand of
// rexec ("sh", "get") is run on the hosts rather than taken for one.
func fanCommandArgs(args []string, f *pflag.FlagSet) []string {
	fan := false
	isFan := func(fl *pflag.Flag) bool { return fl != nil && (fl.Name == "hosts" || fl.Name == "group-name") }
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args
		case a == "-" || !strings.HasPrefix(a, "-"):
			if !fan {
				return args
			}
			return append(append(append([]string(nil), args[:i]...), "--"), args[i:]...)
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			fl := f.Lookup(name)
			fan = fan || isFan(fl)
			if fl != nil && !hasValue && fl.NoOptDefVal == "" {
				i++ // the value is the next argument
			}
		default: // -abc: letters, of which the first taking a value takes the rest
			for j := 1; j < len(a); j++ {
				fl := f.ShorthandLookup(a[j : j+1])
				if fl == nil {
					break
				}
				fan = fan || isFan(fl)
				if fl.NoOptDefVal == "" {
					if j == len(a)-1 {
						i++
					}
					break
				}
			}
		}
	}
	return args
}

// plainFlagError words pflag's errors for a bad number without Go's
// parser in them: `invalid argument "abc" for "-p, --port" flag: not a
// number` rather than `...: strconv.ParseInt: parsing "abc": invalid syntax`.
func plainFlagError(err error) error {
	msg := err.Error()
	i := strings.Index(msg, "strconv.Parse")
	if i < 0 {
		return err
	}
	what := "not a number"
	if strings.HasSuffix(msg, "value out of range") {
		what = "out of range"
	}
	return errors.New(msg[:i] + what)
}

// remote is rexec HOST [COMMAND...]: one host or many (-H), with framing
// or without it, or a question to a control master.
func remote(ctx context.Context, opts *options, args []string, e env) error {
	if err := opts.fan.check(); err != nil {
		return fail(opts.usage(), "%v", err)
	}
	switch opts.framing {
	case "on":
	case "off":
		if opts.fan.active() {
			return fail(opts.usage(), "--framing=off talks to one host")
		}
		return runNaive(ctx, opts, args, e)
	default:
		return fail(opts.usage(), "--framing wants on or off, got %q", opts.framing)
	}
	mode, err := opts.controlMode(e)
	if err != nil {
		return fail(opts.usage(), "%v", err)
	}
	if mode == controlCheck || mode == controlExit {
		if opts.fan.active() || len(args) != 1 {
			return fail(opts.usage(), "--control %s takes one HOST and no command", mode)
		}
		return controlOp(ctx, &opts.connFlags, mode, args[0], e)
	}
	// The locale goes along, as ssh's SendEnv LANG LC_* does; -e wins.
	opts.envs = append(localeVars(e.environ()), opts.envs...)
	if opts.fan.active() {
		return runFanout(ctx, opts, args, e)
	}
	argv := args[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if err := opts.checkEnvs(); err != nil {
		return err
	}
	if err := transcode.Check(opts.encoding); err != nil {
		return fail(opts.usage(), "--encoding: %v", strings.TrimPrefix(err.Error(), "transcode: "))
	}
	opts.encoding = strings.ToLower(opts.encoding)
	return runOne(ctx, opts, args[0], argv, e)
}

// oneRun is a command (or a shell) run on one host: what each of its
// sessions is given.
type oneRun struct {
	opts   *options
	host   string
	e      env
	stdin  io.Reader // nil with -n
	stderr *lineEnd
	size   func(*rexec.Session) error // asks for the pty, when there is one
	// the local terminal, when stdin is one
	stdinFd  int
	stdinTTY bool
	pty      bool
}

// runOne runs argv (a shell when empty) on host and exits as it did.
func runOne(ctx context.Context, opts *options, host string, argv []string, e env) error {
	r := &oneRun{opts: opts, host: host, e: e, stderr: &lineEnd{w: e.stderr, at: true}}
	r.stdinFd, r.stdinTTY = terminalFd(e.stdin)
	r.pty = !opts.noPty && (opts.forcePty || (len(argv) == 0 && r.stdinTTY))
	if !opts.noStdin {
		r.stdin = e.stdin
	}
	if r.pty && !opts.detach {
		r.size = r.ptySize()
	}
	client, err := opts.dial(ctx, host, e)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }() // best effort; the one in use at the end
	s, err := r.session(client)
	if err != nil {
		return err
	}
	if opts.detach {
		return opts.startDetached(ctx, s, argv, e)
	}
	if r.pty && r.stdinTTY {
		old, err := term.MakeRaw(r.stdinFd)
		if err != nil {
			return fail(exitTransport, "raw terminal: %v", err)
		}
		defer func() { _ = term.Restore(r.stdinFd, old) }() // every return path restores it
	}
	if s, err = r.start(ctx, &client, s, argv); err != nil {
		return err
	}
	return r.wait(s)
}

// ptySize asks for a pty of the local terminal's size and TERM.
func (r *oneRun) ptySize() func(*rexec.Session) error {
	termName := r.e.getenv("TERM")
	if termName == "" {
		termName = "xterm-256color"
	}
	w, h := 80, 24
	if r.stdinTTY {
		if cw, ch, err := term.GetSize(r.stdinFd); err == nil {
			w, h = cw, ch
		}
	}
	return func(s *rexec.Session) error { return s.RequestPty(termName, h, w) }
}

// session is a new session of the run on c.
func (r *oneRun) session(c *rexec.Client) (*rexec.Session, error) {
	s, err := r.opts.session(c, r.stdin, r.e.stdout, r.stderr)
	if err != nil {
		return nil, err
	}
	s.Reconnect = r.opts.reconnect(r.host, r.e, r.stderr)
	if r.size != nil {
		if err := r.size(s); err != nil {
			return nil, fail(r.opts.usage(), "%v", err)
		}
	}
	return s, nil
}

// start starts argv in s. A shared connection that carries as many
// commands as the daemon allows on one gives way to a connection of the
// command's own (*client becomes it). A command that could not be
// started is its status (127), with a hint for --argv.
func (r *oneRun) start(ctx context.Context, client **rexec.Client, s *rexec.Session, argv []string) (*rexec.Session, error) {
	err := r.opts.start(ctx, s, argv)
	if err != nil && (*client).Shared() && rexec.IsTooManyChannels(err) {
		_ = (*client).Close()
		r.opts.control = controlNo
		c, derr := r.opts.dial(ctx, r.host, r.e)
		if derr != nil {
			return nil, derr
		}
		*client = c
		if s, err = r.session(c); err != nil {
			return nil, err
		}
		err = r.opts.start(ctx, s, argv)
	}
	if err == nil {
		return s, nil
	}
	if o := fanout.Classify(rexec.HostResult{Err: err}); o.State == fanout.StateFailed {
		hint := ""
		if r.opts.exactArgv && len(argv) == 1 && strings.ContainsAny(argv[0], shellSyntax) {
			hint = " (--argv ran it as one program name; without it, the remote shell runs it)"
		}
		return nil, fail(o.Status, "%s%s", o.Reason, hint)
	}
	return nil, err
}

// wait waits for the command, forwarding signals, and gives its status.
func (r *oneRun) wait(s *rexec.Session) error {
	done := make(chan struct{})
	gaveUp := make(chan struct{})
	go forwardSignals(s, r.e, r.pty, r.stdinFd, r.stdinTTY, done, gaveUp)
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-gaveUp:
		r.stderr.mute() // the close is not a loss to reconnect from
		_ = s.Close()   // best effort: the daemon ends the command at once, rather than waiting for a reconnect
		return fail(exitTransport, "interrupted three times: giving up on the remote command (the daemon ends it)")
	}
	close(done)
	if x := s.Exit(); r.opts.verbose && x != nil {
		fmt.Fprintf(r.e.stderr, "rexec: output encoding: %s\n", x.Encoding)
	}
	return exitStatus(err, r.e.stderr, exitNote(s))
}

// session is a session of c set up as the options say, its streams
// given.
func (opts *options) session(c *rexec.Client, stdin io.Reader, stdout, stderr io.Writer) (*rexec.Session, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	s.Dir, s.Timeout, s.Encoding = opts.dir, opts.timeout, opts.encoding
	for _, kv := range opts.envs {
		k, v, _ := strings.Cut(kv, "=")
		if err := s.Setenv(k, v); err != nil {
			return nil, fail(opts.usage(), "%v", err)
		}
	}
	return s, nil
}

// startDetached starts argv as a job and prints its id.
func (opts *options) startDetached(ctx context.Context, s *rexec.Session, argv []string, e env) error {
	var job string
	var err error
	switch {
	case len(argv) == 0:
		return fail(opts.usage(), "--detach needs a command")
	case opts.forcePty:
		return fail(opts.usage(), "--detach runs without a terminal: -t does not apply")
	case opts.viaShell(argv):
		job, err = s.DetachShell(ctx, strings.Join(argv, " "))
	default:
		job, err = s.Detach(ctx, argv...)
	}
	if err != nil {
		if o := fanout.Classify(rexec.HostResult{Err: err}); o.State == fanout.StateFailed {
			return fail(o.Status, "%s", o.Reason) // the command could not be started (127)
		}
		return err
	}
	fmt.Fprintln(e.stdout, job)
	return nil
}

// reconnect is how a session to host survives a lost connection, or nil
// with --reconnect-for 0.
// Its notes go to stderr on lines of their own: after a line break when
// the command's stderr stopped in the middle of a line.
func (opts *options) reconnect(host string, e env, stderr *lineEnd) *rexec.Reconnect {
	if opts.reconnectFor <= 0 {
		return nil
	}
	return &rexec.Reconnect{
		For:  opts.reconnectFor,
		Dial: func(ctx context.Context) (*rexec.Client, error) { return opts.dial(ctx, host, e) },
		Own:  func(ctx context.Context) (*rexec.Client, error) { return opts.dialOwn(ctx, host, e) },
		Notify: func(err error) {
			if opts.quiet {
				return
			}
			// \r\n: the local terminal may be raw (-t).
			if err != nil {
				stderr.note(fmt.Sprintf("rexec: %s; reconnecting for up to %s (the command goes on)\r\n", strings.TrimPrefix(err.Error(), "rexec: "), opts.reconnectFor))
				return
			}
			stderr.note("rexec: reconnected; the command's output resumes where it stopped\r\n")
		},
	}
}

// lineEnd is the command's stderr, remembering whether what was written
// last ended a line, so that a note of rexec's own starts a line.
type lineEnd struct {
	mu    sync.Mutex
	w     io.Writer
	at    bool // at the start of a line
	muted bool // notes are no longer wanted (rexec is giving up)
}

// mute drops every later note.
func (l *lineEnd) mute() {
	l.mu.Lock()
	l.muted = true
	l.mu.Unlock()
}

func (l *lineEnd) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if n > 0 {
		l.at = p[n-1] == '\n'
	}
	return n, err
}

// note writes a note of rexec's own on a line of its own.
func (l *lineEnd) note(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.muted {
		return
	}
	if !l.at {
		s = "\r\n" + s
	}
	_, _ = io.WriteString(l.w, s) // best effort: a closed stderr loses the note only
	l.at = true
}

// checkEnvs refuses an -e that is not KEY=VALUE, before any connection.
func (opts *options) checkEnvs() error {
	for _, kv := range opts.envs {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fail(opts.usage(), "-e wants KEY=VALUE, got %q", kv)
		}
	}
	return nil
}

// viaShell reports whether argv runs through the remote shell: with -s,
// or when it is a command line (wantsShell), unless --argv.
func (opts *options) viaShell(argv []string) bool {
	return opts.shell || (!opts.exactArgv && wantsShell(argv))
}

// start starts argv on s: through the remote shell (viaShell), as a
// login shell when argv is empty, else as it is.
func (opts *options) start(ctx context.Context, s *rexec.Session, argv []string) error {
	switch {
	case len(argv) == 0:
		return s.StartShell(ctx, `exec "${SHELL:-/bin/sh}" -l`)
	case opts.viaShell(argv):
		return s.StartShell(ctx, strings.Join(argv, " "))
	}
	return s.Start(ctx, argv...)
}

// forwardSignals sends local signals to the remote process group and
// follows window size changes, until done. Three interrupts without an
// exit give up.
func forwardSignals(s *rexec.Session, e env, pty bool, fd int, tty bool, done <-chan struct{}, gaveUp chan<- struct{}) {
	ints := 0
	for {
		select {
		case <-done:
			return
		case sig := <-e.signals:
			switch name := signalName(sig); name {
			case "":
			case "WINCH":
				if pty && tty {
					if w, h, err := term.GetSize(fd); err == nil {
						_ = s.WindowChange(h, w) // best effort
					}
				}
			case "INT":
				ints++
				if ints >= 3 {
					close(gaveUp)
					return
				}
				_ = s.Signal(rexec.SIGINT)
			default:
				_ = s.Signal(rexec.Signal(name))
			}
		}
	}
}

// exitStatus is Wait's result as rexec's: the status fanout.Classify
// gives it, as for one host of many (with a line when the daemon said
// why, or when it does not fit a byte), or the failure of the connection.
// A command that exited 0 with a word from the daemon (a job whose
// output was not all kept) gets that word on stderr too.
func exitStatus(err error, stderr io.Writer, note string) error {
	o := fanout.Classify(rexec.HostResult{Err: err})
	var ee *rexec.ExitError
	if !errors.As(err, &ee) {
		if err == nil && note != "" {
			fmt.Fprintf(stderr, "rexec: note: %s\n", termsafe.String(note))
		}
		return err
	}
	if ee.TimedOut || ee.Message != "" {
		fmt.Fprintf(stderr, "rexec: %s\n", termsafe.String(ee.Error()))
	}
	if st := ee.ExitStatus(); st > 255 {
		fmt.Fprintf(stderr, "rexec: remote exit status %d (exiting with %d: a status holds one byte here)\n", st, o.Status)
	}
	return exitWith(o.Status)
}

// exitNote is what the daemon said of a command's end, if anything.
func exitNote(s *rexec.Session) string {
	if x := s.Exit(); x != nil {
		return x.Message
	}
	return ""
}

// terminalFd returns the descriptor of a stream (stdin, stdout, stderr)
// if it is a terminal.
func terminalFd(stream any) (int, bool) {
	f, ok := stream.(*os.File)
	if !ok {
		return -1, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}
