package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/internal/config"
	"github.com/execd-project/execd/internal/transcode"
)

// ConfigFile is the configuration file's name in the state directory,
// where a daemon not run as root looks for it.
const configFile = "execd.toml"

// systemConfig is where a daemon run as root looks for it.
const systemConfig = "/etc/execd/execd.toml"

// configPath is the configuration file to read: --config, else the
// default for this user. explicit says whether the user named it (then
// it must exist).
func configPath(opts *options) (path string, explicit bool, err error) {
	if opts.config != "" {
		return opts.config, true, nil
	}
	if runtime.GOOS != "windows" && os.Geteuid() == 0 {
		return systemConfig, false, nil
	}
	dir, err := stateDir(opts.stateDir)
	if err != nil {
		return "", false, nil // no state directory: no default file either
	}
	return filepath.Join(dir, configFile), false, nil
}

// loadConfig applies the configuration file before any command runs: to
// the daemon's flags when it serves; for its other commands (user,
// audit, fingerprint) only the state directory and the default account
// of new users' homes are taken from it.
func loadConfig(cmd *cobra.Command, root *cobra.Command, opts *options) error {
	path, explicit, err := configPath(opts)
	if err != nil || path == "" {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil
	}
	if cmd == root {
		if _, err := config.Apply(path, cmd.Flags()); err != nil {
			return fail(2, "%v", err)
		}
		return nil
	}
	var scratch options
	sfs := configFlags(&scratch)
	set, _ := config.Apply(path, sfs)
	if set["state-dir"] && !cmd.Flags().Changed("state-dir") {
		opts.stateDir = scratch.stateDir
	}
	if set["default-run-as"] {
		opts.defaultRunAs = scratch.defaultRunAs
	}
	return nil
}

// configFlags is a flag set with every key of the configuration file.
func configFlags(opts *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet("execd.toml", pflag.ContinueOnError)
	fs.StringVar(&opts.stateDir, "state-dir", "", "")
	daemonFlags(fs, opts)
	return fs
}

// checkOptions finds what a daemon would refuse to start with, by flag.
func checkOptions(opts *options) map[string]error {
	bad := map[string]error{}
	if _, _, err := newLogger(io.Discard, opts.logLevel, "text"); err != nil {
		bad["log-level"] = err
	}
	if _, _, err := newLogger(io.Discard, "info", opts.logFormat); err != nil {
		bad["log-format"] = err
	}
	if err := transcode.Check(opts.encoding); err != nil {
		bad["encoding"] = errors.New(strings.TrimPrefix(err.Error(), "transcode: "))
	}
	if opts.framing != "on" && opts.framing != "off" {
		bad["framing"] = fmt.Errorf("want on or off, got %q", opts.framing)
	}
	if _, err := execd.ParseSize(opts.auditMaxSize); err != nil {
		bad["audit-max-size"] = err
	}
	if n, err := execd.ParseSize(opts.jobBuffer); err != nil {
		bad["job-buffer"] = err
	} else if n < 1<<20 || n > 1<<30 {
		bad["job-buffer"] = fmt.Errorf("%s: want 1MiB to 1GiB", opts.jobBuffer)
	}
	if n, err := execd.ParseSize(opts.jobDisk); err != nil {
		bad["job-disk"] = err
	} else if n < 1<<20 {
		bad["job-disk"] = fmt.Errorf("%s: want at least 1MiB", opts.jobDisk)
	}
	if opts.jobRetention <= 0 {
		bad["job-retention"] = fmt.Errorf("%s: want a positive duration", opts.jobRetention)
	}
	if n, err := execd.ParseSize(opts.resumeBuffer); err != nil {
		bad["resume-buffer"] = err
	} else if n < 1<<20 || n > 1<<30 {
		bad["resume-buffer"] = fmt.Errorf("%s: want 1MiB to 1GiB", opts.resumeBuffer)
	}
	for name, v := range map[string]string{"resume-memory": opts.resumeMemory, "resume-memory-per-user": opts.resumeMemoryUser} {
		if n, err := execd.ParseSize(v); err != nil {
			bad[name] = err
		} else if n < 4<<20 {
			bad[name] = fmt.Errorf("%s: want at least 4MiB", v)
		}
	}
	if _, err := parseStartups(opts.maxStartups); err != nil {
		bad["max-startups"] = err
	}
	if _, _, err := net.SplitHostPort(opts.listen); err != nil {
		bad["listen"] = err
	}
	if opts.metrics != "" {
		if _, _, err := net.SplitHostPort(opts.metrics); err != nil {
			bad["metrics"] = err
		}
	}
	if c := opts.cgroup; c != "auto" && c != "off" && !filepath.IsAbs(c) {
		bad["cgroup"] = fmt.Errorf("want auto, off or an absolute directory, got %q", c)
	}
	for name, v := range map[string]int{"max-conns": opts.maxConns, "max-channels": opts.maxChannels, "max-startups-per-source": opts.perSource} {
		if v < 0 {
			bad[name] = fmt.Errorf("must not be negative, got %d", v)
		}
	}
	return bad
}

// checkConfigCommand is "execd check-config": every problem of the
// configuration file, each with its line, and the daemon's own checks of
// the values, as a start would make them.
func checkConfigCommand(opts *options, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "check-config",
		Short: "Check the configuration file: every problem with its line",
		Long: `check-config reads the daemon's configuration file (--config, else the
default) and reports every problem with its line: TOML syntax, unknown
settings, values of the wrong type, and values the daemon would refuse.
It exits 0 when the file is good, or when the default file is absent
(the daemon then starts with its defaults), 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, explicit, err := configPath(opts)
			if err != nil {
				return err
			}
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !explicit {
				// As the daemon, which starts without it.
				fmt.Fprintf(stdout, "%s: absent; the defaults apply (every setting is a flag: execd --help)\n", path)
				return nil
			}
			ps, err := checkConfig(path)
			if err != nil {
				return err
			}
			if len(ps) > 0 {
				fmt.Fprintln(stdout, ps.Error())
				return exitWith(1)
			}
			fmt.Fprintf(stdout, "%s: OK\n", path)
			return nil
		},
	}
}

// checkConfig returns the problems of the file at path.
func checkConfig(path string) (config.Problems, error) {
	var o options
	fs := configFlags(&o)
	set, err := config.Apply(path, fs)
	var ps config.Problems
	switch {
	case errors.As(err, &ps):
	case err != nil:
		return nil, err
	}
	lines := map[string]int{}
	if b, err := os.ReadFile(path); err == nil {
		lines = config.Lines(b)
	}
	for name, e := range checkOptions(&o) {
		if set[name] {
			ps = append(ps, config.Problem{File: path, Line: lines[name], Msg: fmt.Sprintf("%s: %v", name, e)})
		}
	}
	ps.Sort()
	return ps, nil
}

// reloadConfig rereads the configuration file at a hangup. The log level
// changes at once; any other setting that changed is logged as taking
// effect at the next start. Settings given on the command line stay.
func reloadConfig(path string, cmdline *pflag.FlagSet, level *slog.LevelVar, log *slog.Logger) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return
	}
	var o options
	fresh := configFlags(&o)
	if _, err := config.Apply(path, fresh); err != nil {
		log.Error("configuration file not reloaded; the settings in force stay", "err", err)
		return
	}
	if bad := checkOptions(&o); len(bad) > 0 {
		for name, err := range bad {
			log.Error("configuration file not reloaded; the settings in force stay", "setting", name, "err", err)
		}
		return
	}
	var restart []string
	fresh.VisitAll(func(f *pflag.Flag) {
		cur := cmdline.Lookup(f.Name)
		if cur == nil || cur.Changed || cur.Value.String() == f.Value.String() {
			return
		}
		if f.Name == "log-level" && !cmdline.Changed("verbose") {
			var lv slog.Level
			if lv.UnmarshalText([]byte(f.Value.String())) == nil {
				level.Set(lv)
				_ = cur.Value.Set(f.Value.String())
				log.Info("configuration reloaded", "log-level", f.Value.String())
			}
			return
		}
		restart = append(restart, f.Name)
	})
	if len(restart) > 0 {
		log.Warn("configuration changed; these settings take effect at the next start", "settings", restart)
	}
}
