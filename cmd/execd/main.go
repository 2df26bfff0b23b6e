// Command execd is the daemon that runs commands for rexec clients.
//
//	execd [--listen ADDR] [--state-dir DIR] [flags]
//	execd fingerprint [--state-dir DIR]
package main

import (
	"context"
	"crypto/tls"

	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
	"github.com/execd-project/execd/cmd/internal/manpage"
	"github.com/execd-project/execd/cmd/internal/naive"
	"github.com/execd-project/execd/cmd/internal/trace"
	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/transcode"
)

func main() {
	if ok, code := runService(); ok {
		os.Exit(code)
	}
	sigs := make(chan os.Signal, 4)
	notifySignals(sigs)
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, sigs))
}

type options struct {
	listen           string
	stateDir         string
	plaintext        bool
	logLevel         string
	logFormat        string
	maxConns         int
	maxStartups      string
	perSource        int
	maxChannels      int
	idleTimeout      time.Duration
	handshakeTimeout time.Duration
	keepAlive        time.Duration
	shutdownGrace    time.Duration
	killGrace        time.Duration
	resumeGrace      time.Duration
	resumeBuffer     string
	resumeMemory     string
	resumeMemoryUser string
	jobBuffer        string
	jobDisk          string
	jobRetention     time.Duration
	dir              string
	framing          string
	force            bool
	trace            bool
	traceFile        string
	encoding         string
	logFile          string
	verbose          bool
	cgroup           string
	metrics          string
	metricsToken     string
	config           string
	auditMaxSize     string
	auditKeep        int
	auditSync        bool
	defaultRunAs     string
	path             string
	acceptEnv        []string
}

// run runs execd with args and returns its exit status: 0, 1 for a
// failure, 2 for a usage error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	return exitCode(execute(ctx, args, stdin, stdout, stderr, sigs), stderr)
}

func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, sigs <-chan os.Signal) error {
	var opts options
	root := &cobra.Command{
		Use:   "execd",
		Short: "Run commands for rexec clients",
		Long: `execd accepts rexec connections (TLS 1.3 by default), runs their commands
through os/exec or a pty, and streams back stdout, stderr and the exit status.

On first start it creates its key and a self-signed certificate in the state
directory; clients pin the certificate's fingerprint on first use. Clients
log in with an ed25519 key or a password (users.toml in the state
directory, managed with "execd user"). On a first start on loopback with no
users yet, execd adds the OS user who started it, with their rexec key.
Every login, command and file operation is recorded in audit.log
("execd audit"). SIGTERM or SIGINT stop it gracefully: no new commands,
running ones get --shutdown-grace to finish, then their process groups are
ended.`,
		Version:       buildinfo.Read().Long(),
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(ctx, &opts, cmd.Flags(), stderr, sigs)
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&opts.stateDir, "state-dir", "", "directory for the daemon's identity, users database and audit log (default $XDG_STATE_HOME/execd, else /var/lib/execd as root, else ~/.local/state/execd)")
	f.StringVar(&opts.config, "config", "", "the daemon's configuration file, whose keys are these flags' names (default /etc/execd/execd.toml as root, else execd.toml in the state directory; flags override it)")
	daemonFlags(root.Flags(), &opts)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return loadConfig(cmd, root, &opts)
	}

	root.AddCommand(&cobra.Command{
		Use:    "guard",
		Short:  "The guard process a daemon starts to end its commands if it dies (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return execd.RunGuard(stdin, stderr)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "fingerprint",
		Short: "Print the daemon's identity fingerprint, creating the identity if needed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := stateDir(opts.stateDir)
			if err != nil {
				return err
			}
			cert, _, err := execd.LoadOrCreateIdentity(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, execd.Fingerprint(cert.Leaf))
			return nil
		},
	})
	root.AddCommand(userCommand(&opts, stdin, stdout, stderr), auditCommand(&opts, stdout), checkConfigCommand(&opts, stdout), manpage.Command(manSections()...))
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	commandResults(root)
	err := root.ExecuteContext(ctx)
	var ee *exitError
	if err != nil && !errors.As(err, &ee) {
		return fail(2, "%v", err) // cobra's complaint about the command line
	}
	return err
}

// daemonFlags defines the flags of a serving daemon: each is also a key of
// the configuration file.
func daemonFlags(lf *pflag.FlagSet, opts *options) {
	lf.StringVar(&opts.listen, "listen", "127.0.0.1:7022", "address to listen on")
	lf.BoolVar(&opts.plaintext, "insecure-plaintext", false, "speak without TLS: anyone on the path can read and forge the traffic")
	lf.StringVar(&opts.logLevel, "log-level", "info", "debug, info, warn or error")
	lf.BoolVarP(&opts.verbose, "verbose", "v", false, "log at debug level (as --log-level debug)")
	lf.StringVar(&opts.logFormat, "log-format", "text", "text or json")
	lf.StringVar(&opts.logFile, "log-file", "", "append the log to this file instead of stderr (for a Windows service, which has no console)")
	lf.IntVar(&opts.maxConns, "max-conns", execd.DefaultMaxConns, "maximum concurrent logged-in connections")
	lf.StringVar(&opts.maxStartups, "max-startups", fmt.Sprintf("%d:%d:%d", execd.DefaultStartupsBegin, execd.DefaultStartupsRate, execd.DefaultStartupsFull), "connections not logged in yet, as sshd's MaxStartups BEGIN:RATE:FULL: past BEGIN, new ones are dropped with probability RATE% rising to 100% at FULL")
	lf.IntVar(&opts.perSource, "max-startups-per-source", execd.DefaultStartupsPerSource, "connections not logged in yet from one address")
	lf.IntVar(&opts.maxChannels, "max-channels", execd.DefaultMaxChannels, "maximum concurrent commands per connection")
	lf.DurationVar(&opts.idleTimeout, "idle-timeout", time.Hour, "close connections with no command running for this long (0: never)")
	lf.DurationVar(&opts.handshakeTimeout, "handshake-timeout", execd.DefaultHandshakeTimeout, "time limit for TLS and hello")
	lf.DurationVar(&opts.keepAlive, "keepalive", execd.DefaultKeepAlive, "ping interval; three missed intervals end a connection (negative: off)")
	lf.DurationVar(&opts.shutdownGrace, "shutdown-grace", 30*time.Second, "how long running commands may finish after SIGTERM")
	lf.DurationVar(&opts.killGrace, "kill-grace", execd.DefaultKillGrace, "time between TERM and KILL when a command is ended")
	lf.DurationVar(&opts.resumeGrace, "resume-grace", execd.DefaultResumeGrace, "how long a command whose client lost its connection goes on, its output kept, for the client to reconnect (0: commands end with their connection)")
	lf.StringVar(&opts.jobBuffer, "job-buffer", "16MiB", "output kept per stream of a detached job (rexec --detach), from its start; a job that writes more waits until it is killed")
	lf.StringVar(&opts.jobDisk, "job-disk", "256MiB", "disk one user's detached jobs may keep their output in (all their jobs together, in the state directory's jobs/); a job that reaches it waits until one is removed, a detach while it is full is refused")
	lf.DurationVar(&opts.jobRetention, "job-retention", execd.DefaultJobRetention, "how long a detached job stays listed, its output kept, after it exited")
	lf.StringVar(&opts.resumeBuffer, "resume-buffer", "2MiB", "output kept per stream of a command whose client lost its connection, until the client has it; a command that writes more waits")
	lf.StringVar(&opts.resumeMemory, "resume-memory", "1GiB", "memory all commands' output kept for their clients may take (resumable commands, each reserving its --resume-buffer per stream); past it a command runs without resumption")
	lf.StringVar(&opts.resumeMemoryUser, "resume-memory-per-user", "128MiB", "the same bound for one user's commands")
	lf.StringVar(&opts.auditMaxSize, "audit-max-size", "0", "rotate audit.log when it reaches this size, such as 100MiB (0: leave rotation to logrotate and SIGHUP)")
	lf.IntVar(&opts.auditKeep, "audit-keep", execd.DefaultAuditKeep, "with --audit-max-size: how many rotated audit logs to keep")
	lf.BoolVar(&opts.auditSync, "audit-sync", false, "flush each audit event to disk (fsync) before going on: none is lost if the machine crashes")
	lf.StringVar(&opts.defaultRunAs, "default-run-as", "", "as root: the OS account of the commands and files of users without run_as (the packages set execd; default: the account of the user's own name, never root)")
	lf.StringVar(&opts.path, "path", "", "PATH of commands (default: "+execd.DefaultPath+", or "+execd.DefaultRootPath+" for root)")
	lf.StringSliceVar(&opts.acceptEnv, "accept-env", nil, "variables clients may set, as sshd's AcceptEnv: names or patterns such as LANG,LC_* (default: any but those execd sets: HOME, USER, LOGNAME, SHELL, MAIL, PATH, REXEC_*)")
	lf.StringVar(&opts.metrics, "metrics", "", "serve Prometheus metrics (/metrics) and health checks (/healthz, /readyz) over HTTP on this address, such as 127.0.0.1:9722 (default: off); beyond loopback, with a warning")
	lf.StringVar(&opts.metricsToken, "metrics-token-file", "", "with --metrics: /metrics wants \"Authorization: Bearer TOKEN\", the token being this file's first line (Prometheus' credentials_file)")
	lf.StringVar(&opts.cgroup, "cgroup", "auto", "Linux: a cgroup (v2) per command, so that ending it ends everything it started, setsid children included: auto (where the daemon may create one), off, or the cgroup directory to create them under")
	lf.StringVar(&opts.dir, "dir", "", "home of the user added on first start (default: that user's home directory)")
	lf.StringVar(&opts.framing, "framing", "on", "off: the teaching mode of the sticky-packet lesson (plaintext, no login, raw output, no message boundaries)")
	lf.BoolVar(&opts.force, "force", false, "with --framing=off: allow it beyond loopback, or as root")
	lf.StringVar(&opts.encoding, "encoding", "auto", "how commands' output is transcoded to UTF-8: auto (the console or ANSI code page on Windows, the locale elsewhere), utf-8, gbk, gb18030, or raw; clients may ask otherwise per command")
	lf.BoolVar(&opts.trace, "trace", false, "print every frame of every connection on stderr (passwords masked)")
	lf.StringVar(&opts.traceFile, "trace-file", "", "append every frame of every connection to this file as JSON lines")
}

// stateDir picks the state directory.
func stateDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "execd"), nil
	}
	if d := platformStateDir(); d != "" {
		return d, nil
	}
	if os.Geteuid() == 0 {
		return "/var/lib/execd", nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --state-dir and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "execd"), nil
}

// isLoopback reports whether every address the listen host names is loopback.
func isLoopback(ctx context.Context, hostport string) (bool, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, fmt.Errorf("--listen %q: %w", hostport, err)
	}
	if host == "" {
		return false, nil // every interface
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	if host == "localhost" {
		return true, nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return false, fmt.Errorf("--listen %q: %w", hostport, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false, nil
		}
	}
	return len(ips) > 0, nil
}

// newLogger is the daemon's logger at level, which a hangup may change
// (the configuration file's log-level).
func newLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, err
	}
	hopts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), lv, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), lv, nil
	}
	return nil, nil, fmt.Errorf("want text or json, not %q", format)
}

// serve runs the daemon until a stop signal. With --log-file, its own
// failures are written there too: a service has no console.
func serve(ctx context.Context, opts *options, flags *pflag.FlagSet, stderr io.Writer, sigs <-chan os.Signal) (err error) {
	if bad := checkOptions(opts); len(bad) > 0 {
		names := slices.Sorted(maps.Keys(bad))
		return fail(2, "--%s: %v", names[0], bad[names[0]])
	}
	var lf *logFile
	if opts.logFile != "" {
		if lf, err = openLogFile(opts.logFile); err != nil {
			return fail(1, "log file: %v", err)
		}
		defer func() { _ = lf.Close() }() // every line is one write
		defer func() { err = reportTo(lf, err) }()
		stderr = lf
	}
	level := opts.logLevel
	if opts.verbose {
		level = "debug"
	}
	log, levelVar, err := newLogger(stderr, level, opts.logFormat)
	if err != nil {
		return fail(2, "%v", err)
	}
	log.Info("execd starting", "version", buildinfo.Read().Short(), "listen", opts.listen)
	activated, err := activatedListener(log)
	if err != nil {
		return fail(1, "%v", err)
	}
	var loop bool
	if activated != nil {
		defer activated.Close()
		loop = isLoopbackAddr(activated.Addr())
	} else if loop, err = isLoopback(ctx, opts.listen); err != nil {
		return fail(2, "%v", err)
	}
	switch opts.framing {
	case "on":
	case "off":
		return serveNaive(ctx, opts, loop, log, stderr, sigs)
	default:
		return fail(2, "--framing wants on or off, got %q", opts.framing)
	}
	srv, closeAll, err := newServer(opts, loop, log, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	if opts.metrics != "" {
		stopMetrics, err := startMetrics(opts.metrics, opts.metricsToken, srv, log)
		if err != nil {
			return fail(1, "--metrics: %v", err)
		}
		defer stopMetrics()
	}
	ln := activated
	if ln == nil {
		if ln, err = net.Listen("tcp", opts.listen); err != nil {
			return fail(1, "%v", err)
		}
	}
	cfgPath, _, _ := configPath(opts)
	reload := func() { reloadConfig(cfgPath, flags, levelVar, log) }
	stop := daemonSignals(sigs, log, hangup(log, lf, srv, reload), statusReport(log, srv, time.Now()))
	return serveUntilStopped(ctx, srv, ln, opts.shutdownGrace, log, stop, sigs)
}

// guardArgv is the command line of the guard process: this program's
// hidden "guard" command. Windows needs none: job objects end with us.
func guardArgv() []string {
	if runtime.GOOS == "windows" {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, "guard"}
}

// newServer makes the daemon of the options: its state directory, users
// (adding the starting user on a first start on loopback), audit log,
// identity and tracing. closeAll closes the files it opened.
func newServer(opts *options, loop bool, log *slog.Logger, stderr io.Writer) (srv *execd.Server, closeAll func(), err error) {
	var closers []func()
	closeFiles := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeFiles()
		}
	}()
	dir, err := stateDir(opts.stateDir)
	if err != nil {
		return nil, nil, fail(1, "%v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fail(1, "state directory: %v", err)
	}
	users, err := openUsersOrStart(opts, dir, loop, log, stderr)
	if err != nil {
		return nil, nil, err
	}
	startups, err := parseStartups(opts.maxStartups)
	if err != nil {
		return nil, nil, fail(2, "--max-startups: %v", err)
	}
	startups.PerSource = opts.perSource
	var auditMax, resumeBuffer, resumeMemory, resumeMemoryUser, jobBuffer, jobDisk execd.Size
	for _, sz := range []struct {
		flag, in string
		out      *execd.Size
	}{
		{"audit-max-size", opts.auditMaxSize, &auditMax},
		{"resume-buffer", opts.resumeBuffer, &resumeBuffer},
		{"resume-memory", opts.resumeMemory, &resumeMemory},
		{"resume-memory-per-user", opts.resumeMemoryUser, &resumeMemoryUser},
		{"job-buffer", opts.jobBuffer, &jobBuffer},
		{"job-disk", opts.jobDisk, &jobDisk},
	} {
		if *sz.out, err = execd.ParseSize(sz.in); err != nil {
			return nil, nil, fail(2, "--%s: %v", sz.flag, err)
		}
	}
	resumeGrace := opts.resumeGrace
	if resumeGrace <= 0 {
		resumeGrace = -1 // off
	}
	audit, err := execd.OpenAudit(filepath.Join(dir, execd.AuditFile), execd.AuditConfig{
		OnError: func(err error) { log.Error("audit", "err", err) },
		MaxSize: int64(auditMax), Keep: opts.auditKeep, Sync: opts.auditSync,
	})
	if err != nil {
		return nil, nil, fail(1, "%v", err)
	}
	closers = append(closers, func() { _ = audit.Close() })
	keeper, err := execd.NewKeeper(execd.KeeperConfig{Cgroup: opts.cgroup, Guard: guardArgv(), GuardStderr: stderr})
	if err != nil {
		return nil, nil, fail(1, "%v", err)
	}
	closers = append(closers, func() {
		if err := keeper.Close(); err != nil {
			log.Warn("commands' cgroups", "err", err)
		}
	})
	log.Info("commands kept", "by", keeper.String())
	srv = opts.server(log)
	srv.MaxStartups, srv.ResumeGrace = startups, resumeGrace
	srv.ResumeBuffer, srv.ResumeMemory, srv.ResumeMemoryPerUser = int(resumeBuffer), int64(resumeMemory), int64(resumeMemoryUser)
	srv.JobBuffer, srv.JobDisk, srv.JobDir = int(jobBuffer), int64(jobDisk), filepath.Join(dir, "jobs")
	srv.Users, srv.Audit, srv.Keeper = users, audit, keeper
	if srv.Tracer, err = openTrace(opts, stderr, &closers); err != nil {
		return nil, nil, err
	}
	if srv.TLSConfig, err = tlsConfig(opts, dir, log, stderr); err != nil {
		return nil, nil, err
	}
	return srv, closeFiles, nil
}

// server is the daemon as the flags alone say.
func (opts *options) server(log *slog.Logger) *execd.Server {
	srv := &execd.Server{
		Logger:           log,
		HandshakeTimeout: opts.handshakeTimeout,
		IdleTimeout:      opts.idleTimeout,
		KeepAlive:        opts.keepAlive,
		MaxConns:         opts.maxConns,
		MaxChannels:      opts.maxChannels,
		KillGrace:        opts.killGrace,
		JobRetention:     opts.jobRetention,
		DefaultRunAs:     opts.defaultRunAs,
		Path:             opts.path,
		AcceptEnv:        opts.acceptEnv,
		Software:         "execd/" + buildinfo.Read().Short(),
		Encoding:         transcode.Normalize(opts.encoding),
	}
	if opts.keepAlive == 0 {
		srv.KeepAlive = -1
	}
	return srv
}

// openTrace is --trace's and --trace-file's tracer of each connection
// (nil for neither); the file's closer joins closers.
func openTrace(opts *options, stderr io.Writer, closers *[]func()) (func(remote string) frame.Tracer, error) {
	if !opts.trace && opts.traceFile == "" {
		return nil, nil
	}
	var tp trace.Pair
	if opts.trace {
		tp.Text = trace.New(stderr, "execd", false)
	}
	if opts.traceFile != "" {
		f, err := os.OpenFile(opts.traceFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fail(1, "trace file: %v", err)
		}
		*closers = append(*closers, func() { _ = f.Close() }) // every frame is one write: the file is whole
		tp.File = trace.New(f, "execd", true)
	}
	return func(remote string) frame.Tracer { return tp.For("execd " + remote) }, nil
}

// tlsConfig is the daemon's TLS with its identity in dir (made on the
// first start), or nil with --insecure-plaintext, said loudly.
func tlsConfig(opts *options, dir string, log *slog.Logger, stderr io.Writer) (*tls.Config, error) {
	if opts.plaintext {
		log.Warn("PLAINTEXT MODE: no TLS; anyone on the network path can read and forge this traffic")
		fmt.Fprintln(stderr, "execd: WARNING: --insecure-plaintext: traffic is neither encrypted nor authenticated")
		return nil, nil
	}
	cert, created, err := execd.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, fail(1, "%v", err)
	}
	if created {
		log.Info("created daemon identity", "dir", dir)
	}
	log.Info("identity", "fingerprint", execd.Fingerprint(cert.Leaf))
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// openUsersOrStart opens the users database; when there is none yet, a
// start on loopback adds the user who started the daemon (first start),
// and a start beyond loopback is refused.
func openUsersOrStart(opts *options, dir string, loop bool, log *slog.Logger, stderr io.Writer) (*execd.UserDB, error) {
	users, err := execd.OpenUsers(filepath.Join(dir, execd.UsersFile))
	if err != nil {
		return nil, fail(1, "%v", err)
	}
	if users.Exists() {
		if opts.dir != "" {
			log.Warn("--dir only sets the home of the user a first start adds; the users database exists, so each user's own home is served", "users", users.Path())
		}
		return users, nil
	}
	if !loop {
		return nil, fail(2, "no users yet in %s: add one with \"execd user add NAME\" before listening on %s (a first start on loopback adds you)", users.Path(), opts.listen)
	}
	home := opts.dir
	if home == "" {
		if home, err = os.UserHomeDir(); err != nil {
			return nil, fail(1, "first start: %v", err)
		}
	}
	if home, err = filepath.Abs(home); err != nil {
		return nil, fail(1, "%v", err)
	}
	msg, err := firstStart(users, home)
	if err != nil {
		return nil, fail(1, "%v", err)
	}
	fmt.Fprintln(stderr, msg)
	return users, nil
}

// serveUntilStopped serves ln until a stop signal, then shuts down
// within grace (a second signal ends the running commands at once).
// stop delivers the first stop signal; sigs the later ones.
func serveUntilStopped(ctx context.Context, srv *execd.Server, ln net.Listener, grace time.Duration, log *slog.Logger, stop <-chan os.Signal, sigs <-chan os.Signal) error {
	served := make(chan error, 1)
	accepting := make(chan struct{}) // closed when Serve returns
	go func() {
		err := srv.Serve(ln)
		close(accepting)
		served <- err
	}()
	notify(log, "READY=1\nSTATUS=serving on "+ln.Addr().String())
	stopWatchdog := watchdog(log, accepting)
	select {
	case err := <-served:
		stopWatchdog()
		_ = srv.Close()
		return fail(1, "%v", err)
	case sig := <-stop:
		stopWatchdog()
		notify(log, "STOPPING=1\nSTATUS=shutting down")
		log.Info("signal received, shutting down", "signal", sig.String(), "grace", grace)
	}
	sctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	go func() {
		select {
		case sig := <-daemonSignals(sigs, log, nil, nil):
			log.Warn("second signal, ending running commands now", "signal", sig.String())
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("grace period over, ending running commands", "err", err)
	}
	_ = srv.Close() // ends what is left: TERM, then KILL after --kill-grace
	if err := <-served; !errors.Is(err, execd.ErrServerClosed) {
		log.Error("serve", "err", err)
		return exitWith(1)
	}
	log.Info("stopped")
	return nil
}

// serveNaive runs the teaching mode: framing off, as in the classic lesson.
func serveNaive(ctx context.Context, opts *options, loop bool, log *slog.Logger, stderr io.Writer, sigs <-chan os.Signal) error {
	switch {
	case !loop && !opts.force:
		return fail(2, "--framing=off runs commands for anyone who connects, with no login: it listens on loopback only (not %s) unless --force", opts.listen)
	case os.Geteuid() == 0 && !opts.force:
		return fail(2, "--framing=off runs commands for anyone who connects, with no login: it will not do that as root unless --force")
	}
	dir := opts.dir
	if dir == "" {
		d, err := os.UserHomeDir()
		if err != nil {
			return fail(1, "%v", err)
		}
		dir = d
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(stderr, "execd: TEACHING MODE on %s: framing off, plaintext, no login; commands run in %s and their raw output goes to the socket with nothing to mark where it ends\n", ln.Addr(), dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &naive.Server{Dir: dir, KillGrace: opts.killGrace, Logger: log}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	select {
	case err := <-served:
		return fail(1, "%v", err)
	case sig := <-daemonSignals(sigs, log, nil, nil):
		log.Info("signal received, stopping", "signal", sig.String())
	}
	cancel()
	<-served
	return nil
}

// parseStartups reads BEGIN:RATE:FULL, or a single number N meaning N:100:N
// (sshd's forms).
func parseStartups(v string) (execd.Startups, error) {
	parts := strings.Split(v, ":")
	var n []int
	for _, p := range parts {
		i, err := strconv.Atoi(p)
		if err != nil || i <= 0 {
			return execd.Startups{}, fmt.Errorf("want BEGIN:RATE:FULL or N with positive numbers, got %q", v)
		}
		n = append(n, i)
	}
	switch {
	case len(n) == 1:
		return execd.Startups{Begin: n[0], Rate: 100, Full: n[0]}, nil
	case len(n) != 3:
		return execd.Startups{}, fmt.Errorf("want BEGIN:RATE:FULL or N, got %q", v)
	case n[1] > 100 || n[2] < n[0]:
		return execd.Startups{}, fmt.Errorf("RATE is a percentage and FULL at least BEGIN, got %q", v)
	}
	return execd.Startups{Begin: n[0], Rate: n[1], Full: n[2]}, nil
}

// manSections are the parts of execd's man page that its flags do not say.
func manSections() []manpage.Section {
	return []manpage.Section{
		{Title: "ENVIRONMENT", Items: [][2]string{
			{"XDG_STATE_HOME", "the state directory is $XDG_STATE_HOME/execd when set (else /var/lib/execd for root, ~/.local/state/execd otherwise)."},
			{"LISTEN_FDS, LISTEN_PID", "sockets passed by systemd's socket activation, served instead of --listen."},
			{"NOTIFY_SOCKET", "systemd's readiness notification (Type=notify)."},
			{"Commands' environment", "commands never inherit the daemon's environment: they get HOME, USER, LOGNAME, SHELL, PATH (--path) and MAIL of their account, TERM with a pty, REXEC_USER, REXEC_CONNECTION, and what the client sends that --accept-env accepts."},
		}},
		{Title: "FILES", Items: [][2]string{
			{"/etc/execd/execd.toml", "the configuration file as root (else execd.toml in the state directory); every key is a flag."},
			{"STATE-DIR/users.toml", "the users database (execd user)."},
			{"STATE-DIR/audit.log", "the audit log, one JSON object per line (execd audit)."},
			{"STATE-DIR/key.pem, cert.pem", "the daemon's identity (execd fingerprint)."},
			{"STATE-DIR/home/NAME", "the homes of confined users, and of users whose account has none."},
			{"STATE-DIR/jobs", "detached jobs' records and output."},
		}},
		{Title: "EXIT STATUS", Items: [][2]string{
			{"0", "the daemon stopped as asked (SIGTERM, SIGINT), or the command succeeded."},
			{"1", "a failure: the address is taken, the state directory is unusable, a check found problems."},
			{"2", "a usage error."},
		}},
	}
}
