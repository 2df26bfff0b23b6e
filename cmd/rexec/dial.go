package main

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
	"github.com/execd-project/execd/cmd/internal/trace"
	"github.com/execd-project/execd/cmd/rexec/internal/inventory"
	"github.com/execd-project/execd/internal/userkey"
	"github.com/execd-project/execd/rexec"
)

// dialer connects to hosts as the flags and the config file say; one
// serves every host of a fan-out.
type dialer struct {
	cf     *connFlags
	e      env
	fc     *inventory.Config
	kh     *rexec.KnownHosts
	shared *sharedPassword   // a fan-out asks for a password once, for all hosts
	pinned func(addr string) // a fan-out notes new hosts to name them in one line
	trace  trace.Pair        // --trace, --trace-file

	keysOnce sync.Once       // the keys are read (and passphrases asked) once
	signers  []crypto.Signer // for every host of a fan-out
	keysErr  error
	closers  []func() error // the agent's connection
}

// close releases what the dialer holds (the agent's connection); the
// clients it made stay open.
func (d *dialer) close() {
	for _, c := range d.closers {
		_ = c() // best effort
	}
}

// newDialer reads the config file. On failure it returns the exit status
// and the error.
func (cf *connFlags) newDialer(e env) (*dialer, int, error) {
	cdir, err := userkey.ConfigDir(e.getenv)
	if err != nil {
		return nil, exitTransport, err
	}
	cfgPath := cf.configPath
	if cfgPath == "" {
		cfgPath = filepath.Join(cdir, "config.toml")
	}
	fc, err := inventory.Load(cfgPath, cf.configPath != "")
	if err != nil {
		return nil, exitUsage, err
	}
	khPath := cf.knownHosts
	if khPath == "" {
		khPath = filepath.Join(cdir, "known_hosts")
	}
	d := &dialer{cf: cf, e: e, fc: fc}
	if cf.trace {
		d.trace.Text = trace.New(e.stderr, "rexec", false)
	}
	if cf.traceFile != "" {
		f, err := os.OpenFile(cf.traceFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, exitUsage, fmt.Errorf("trace file: %w", err)
		}
		// Left open for the life of the process: every frame is one
		// write, so the file is whole at any exit.
		d.trace.File = trace.New(f, "rexec", true)
	}
	d.kh = &rexec.KnownHosts{Path: khPath, Strict: cf.strictHostKey, OnPin: func(addr, fp string) {
		if d.pinned != nil {
			d.pinned(addr)
			return
		}
		if cf.quiet {
			return
		}
		fmt.Fprintf(e.stderr, "rexec: pinned new host %s (%s) in %s\n", addr, fp, khPath)
	}}
	return d, 0, nil
}

// dial connects to host (an alias, HOST, HOST:PORT or [V6]:PORT, with an
// optional USER@). On failure it returns the exit status and the error.
func (d *dialer) dial(ctx context.Context, host string) (*rexec.Client, int, error) {
	return d.connect(ctx, host, d.sharing())
}

// dialDirect is dial never through a control master: a connection of
// its own.
func (d *dialer) dialDirect(ctx context.Context, host string) (*rexec.Client, int, error) {
	return d.connect(ctx, host, false)
}

// connect is dial, through the host's control master if share.
func (d *dialer) connect(ctx context.Context, host string, share bool) (*rexec.Client, int, error) {
	cf := d.cf
	host, tgt, login, err := d.target(host)
	if err != nil {
		return nil, exitUsage, err
	}
	cfg := &rexec.Config{
		Plaintext:       cf.plaintext || tgt.Plaintext,
		HostKeyCallback: d.kh.Check,
		HostKeyPin:      d.kh.Pin,
		Timeout:         cf.connectTimeout,
		Software:        "rexec/" + buildinfo.Read().Short(),
		User:            login,
		Tracer:          d.trace.For(traceLabel(host, d.shared != nil)),
		Network:         cf.network,
		KeepAlive:       cf.keepAlive,
		KeepAliveMax:    cf.keepAliveMax,
	}
	if cf.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(d.e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", host)
		cfg.Logger.Debug("connecting", "addr", tgt.Addr, "tls", !cfg.Plaintext)
	}
	// One time budget for the whole attempt, through a master or not.
	deadline := time.Now().Add(cf.connectLimit())
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if share {
		// Before the keys are read: a master needs no passphrase.
		client, ok, err := d.dialShared(ctx, host, login, tgt, cfg)
		if ok {
			return client, 0, nil
		}
		if err != nil { // the master could not reach the daemon: nor would this process
			return nil, exitTransport, err
		}
	}
	if cfg.Auth, err = d.authMethods(login, tgt.Addr); err != nil {
		return nil, exitUsage, err
	}
	if cfg.Timeout = time.Until(deadline); cfg.Timeout <= 0 {
		return nil, exitTransport, fmt.Errorf("rexec: %s: no connection within the connect timeout (%s), the control master's attempt included", tgt.Addr, cf.connectLimit())
	}
	client, err := rexec.Dial(ctx, tgt.Addr, cfg)
	if err != nil {
		return nil, exitTransport, err
	}
	return client, 0, nil
}

// connectLimit is the time one connection attempt may take, master
// included: --connect-timeout, 10s for 0.
func (cf *connFlags) connectLimit() time.Duration {
	if cf.connectTimeout <= 0 {
		return 10 * time.Second
	}
	return cf.connectTimeout
}

// sharing reports whether this dialer connects through control masters:
// by default, for one host at a time in rexec's own mode, with no trace
// (a trace shows the connection to the daemon, which a master hides).
func (d *dialer) sharing() bool {
	cf := d.cf
	mode, err := cf.controlMode(d.e)
	return err == nil && mode == controlAuto && d.shared == nil && !cf.sshMode && !cf.trace && cf.traceFile == ""
}

// target resolves [USER@]HOST: the host without its user, where to
// connect, and whom to log in as.
func (d *dialer) target(arg string) (host string, tgt inventory.Target, login string, err error) {
	targetUser, host := splitUser(arg)
	if tgt, err = d.fc.Resolve(host, d.cf.port); err != nil {
		return "", tgt, "", err
	}
	login, err = d.cf.loginUser(targetUser, tgt.User, d.e)
	return host, tgt, login, err
}

// traceLabel names a connection in a trace: "rexec", or "rexec HOST" when
// there are many.
func traceLabel(host string, many bool) string {
	if many {
		return "rexec " + host
	}
	return "rexec"
}

// dial connects to one host as the flags say.
// dialOwn connects to host by itself, not through its control master,
// and without asking for a secret: a bulk command moves there.
func (cf *connFlags) dialOwn(ctx context.Context, host string, e env) (*rexec.Client, error) {
	own := *cf
	own.control, own.batch = controlNo, true
	return own.dial(ctx, host, e)
}

func (cf *connFlags) dial(ctx context.Context, host string, e env) (*rexec.Client, error) {
	switch mode, err := cf.controlMode(e); {
	case err != nil:
		return nil, fail(cf.usage(), "%v", err)
	case mode == controlCheck || mode == controlExit:
		return nil, fail(cf.usage(), "--control %s is for rexec --control %[1]s HOST, with no command", mode)
	}
	if cf.typed == nil {
		cf.typed = &typedPasswords{}
	}
	d, status, err := cf.newDialer(e)
	if err != nil {
		return nil, fail(cf.status(status), "%v", err)
	}
	defer d.close()
	c, status, err := d.dial(ctx, host)
	if err != nil {
		return nil, fail(cf.status(status), "%s", strings.TrimPrefix(err.Error(), "rexec: "))
	}
	return c, nil
}
