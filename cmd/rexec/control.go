package main

// Connection sharing, as ssh's ControlMaster and ControlPersist: the first
// rexec to a host starts a control master, a small background rexec that
// holds one logged-in connection to the daemon and listens on a socket in
// a private directory; later invocations connect to that socket and skip
// the TCP connect, the TLS handshake and the login. The traps of ssh's
// version are avoided: a dead master's socket is taken over (the lock
// beside it tells a live master from a dead one), a master that does not
// answer within a bound is replaced (never waited for), a master never
// holds its starter's stdout or stderr open, and a master only removes
// a socket that is still its own.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/execd-project/execd/cmd/rexec/internal/inventory"
	"github.com/execd-project/execd/rexec"
)

// controlEnv sets --control's default: "no" turns sharing off for every
// invocation of a script.
const controlEnv = "REXEC_CONTROL"

// The modes of --control.
const (
	controlAuto  = "auto"  // use the host's master, starting one when there is none
	controlNo    = "no"    // connect directly
	controlCheck = "check" // print the master's pid, or fail
	controlExit  = "exit"  // ask the master to exit once its channels end
)

// controlHello bounds the wait for a master's answer: a live one answers
// in well under a millisecond, so one that takes this long is hung (or
// stopped) and is replaced.
const controlHello = 2 * time.Second

// maxSocketPath is the longest unix socket path every system takes
// (sun_path is 104 bytes on the BSDs and macOS, 108 on Linux).
const maxSocketPath = 103

// failedLoginMemory is how long a host whose master could not log in by
// itself (a password, a key with a passphrase) is dialled directly
// without trying again.
const failedLoginMemory = 10 * time.Minute

// controlMode is the --control mode in force.
func (cf *connFlags) controlMode(e env) (string, error) {
	mode := cf.control
	if mode == "" {
		mode = e.getenv(controlEnv)
	}
	switch mode {
	case "", "yes", "auto":
		return controlAuto, nil
	case "no", "off":
		return controlNo, nil
	case controlCheck, controlExit:
		return mode, nil
	}
	return "", fmt.Errorf("--control wants auto, no, check or exit, got %q", mode)
}

// controlPaths are the files of one host's master, in the control
// directory: the socket, the lock its master holds for its life, and the
// note left when a master could not log in.
type controlPaths struct {
	sock, lock, failed string
}

// controlDir returns the directory of the sockets, created private:
// $XDG_RUNTIME_DIR/rexec, or rexec-UID in the temporary directory. A
// directory that is not the user's own with mode 0700 is refused.
func controlDir(getenv func(string) string) (string, error) {
	var dir string
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
		dir = filepath.Join(rt, "rexec")
	} else {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("rexec-%d", os.Getuid()))
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if err := checkPrivateDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// controlPathsFor names the files of the master for one login to one
// daemon with one set of keys and one trust store: a hash of all that,
// short enough for a socket's path.
func (d *dialer) controlPathsFor(dir, login, addr string, plaintext bool) controlPaths {
	h := sha256.New()
	for _, s := range append([]string{login, addr, fmt.Sprint(plaintext), d.cf.network, d.kh.Path, d.cf.configPath, fmt.Sprint(d.cf.strictHostKey)}, d.cf.identities...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	base := filepath.Join(dir, "c-"+hex.EncodeToString(h.Sum(nil))[:20])
	return controlPaths{sock: base, lock: base + ".lock", failed: base + ".login-failed"}
}

// dialShared connects to the host through its control master, starting
// one when there is none or the one there is dead or hung. It reports
// false, with the client nil, when the connection is to be made directly:
// sharing is not possible here, or the master could not be had in time.
// It reports an error only when the master started for it could not
// reach the daemon (not a login it needs the user for): connecting
// directly would fail the same way. ctx's deadline bounds it all.
func (d *dialer) dialShared(ctx context.Context, host, login string, tgt inventory.Target, cfg *rexec.Config) (*rexec.Client, bool, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := controlDir(d.e.getenv)
	if err != nil {
		log.Debug("not sharing the connection", "err", err)
		return nil, false, nil
	}
	p := d.controlPathsFor(dir, login, tgt.Addr, cfg.Plaintext)
	if len(p.sock) > maxSocketPath {
		log.Debug("not sharing the connection: the socket's path is too long for the system", "socket", p.sock)
		return nil, false, nil
	}
	if fi, err := os.Stat(p.failed); err == nil && time.Since(fi.ModTime()) < failedLoginMemory {
		log.Debug("not sharing the connection: its master could not log in by itself", "note", p.failed)
		return nil, false, nil
	}
	deadline, _ := ctx.Deadline()
	local := *cfg
	local.Timeout = min(controlHello, time.Until(deadline))
	c, err := rexec.DialControl(ctx, p.sock, tgt.Addr, &local)
	if err == nil {
		log.Debug("connected through the control master", "socket", p.sock)
		return c, true, nil
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		// The socket took the connection and the master did not
		// answer in time: hung or stopped. The path is taken from it;
		// it notices and leaves once its own clients are done. (No
		// socket, a dead master's, a master that refused or died
		// mid-way: the lock decides below whether a new one starts.)
		log.Debug("the control master does not answer: replacing it", "err", err)
		_ = os.Remove(p.sock)
		_ = os.Remove(p.lock)
	} else {
		log.Debug("no control master to use: starting one", "err", err)
	}
	if d.e.exe == "" {
		return nil, false, nil
	}
	local.Timeout = time.Until(deadline)
	c, err = d.startMaster(ctx, p, host, login, tgt.Addr, &local, log)
	var unreachable *masterDialError
	switch {
	case errors.As(err, &unreachable):
		return nil, false, unreachable.err
	case err != nil:
		log.Debug("connecting directly", "err", err)
		return nil, false, nil
	}
	return c, true, nil
}

// masterDialError is a master's failure to connect to the daemon (not a
// login that needs the user): the error it met.
type masterDialError struct{ err error }

func (e *masterDialError) Error() string { return e.err.Error() }

// masterSpec is what a control master is started with, on its stdin.
type masterSpec struct {
	Host           string        `json:"host"`
	Sock           string        `json:"sock"`
	Lock           string        `json:"lock"`
	Failed         string        `json:"failed"`
	Persist        time.Duration `json:"persist"`
	Port           int           `json:"port"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	Plaintext      bool          `json:"plaintext"`
	StrictHostKey  bool          `json:"strict_host_key"`
	Config         string        `json:"config"`
	KnownHosts     string        `json:"known_hosts"`
	User           string        `json:"user"` // the login the socket is named for, whether -l, USER@ or the config file's
	Identities     []string      `json:"identities"`
	Network        string        `json:"network"`
	KeepAlive      time.Duration `json:"keepalive"`
}

// masterStatus is a line a starting master writes to its starter.
type masterStatus struct {
	Note  string `json:"note,omitempty"`  // for the user's stderr
	Ready bool   `json:"ready,omitempty"` // listening, logged in
	Busy  bool   `json:"busy,omitempty"`  // another master holds the lock
	Error string `json:"error,omitempty"` // could not connect or log in
	Login bool   `json:"login,omitempty"` // the error is a login that needs the user
}

// startMaster starts a control master for the host and connects through
// it, within ctx's deadline.
func (d *dialer) startMaster(ctx context.Context, p controlPaths, host, login, addr string, cfg *rexec.Config, log *slog.Logger) (*rexec.Client, error) {
	c := d.cf
	spec := masterSpec{
		Host: host, Sock: p.sock, Lock: p.lock, Failed: p.failed, Persist: c.controlPersist,
		Port: c.port, ConnectTimeout: cfg.Timeout, Plaintext: c.plaintext, StrictHostKey: c.strictHostKey,
		Config: c.configPath, KnownHosts: c.knownHosts, User: login, Identities: c.identities, Network: c.network,
		KeepAlive: c.keepAlive,
	}
	// The master runs in /: the files it reads are named from here.
	spec.Sock, spec.Lock, spec.Failed = absPath(spec.Sock), absPath(spec.Lock), absPath(spec.Failed)
	spec.Config, spec.KnownHosts = absPath(spec.Config), absPath(spec.KnownHosts)
	spec.Identities = slices.Clone(spec.Identities)
	for i, id := range spec.Identities {
		spec.Identities[i] = absPath(id)
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	cmd := exec.Command(d.e.exe, "master")
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Stdout = w // only until it is ready: it closes its end then
	cmd.SysProcAttr = detachedProcess()
	// It outlives its starter by minutes: it holds no directory, and no
	// descriptor its starter inherited (a pipe a shell gave it as fd 3
	// would stay open, and its reader wait, as long as the master lives).
	cmd.Dir = "/"
	keepInheritedFromChildren()
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		return nil, fmt.Errorf("start a control master: %w", err)
	}
	log.Debug("started a control master", "pid", cmd.Process.Pid, "socket", p.sock)
	go func() { _ = cmd.Wait() }() // reaped if it ends while this process lives
	if dl, ok := ctx.Deadline(); ok {
		_ = r.SetReadDeadline(dl)
	}
	sc := bufio.NewScanner(io.LimitReader(r, 1<<16))
	for sc.Scan() {
		var st masterStatus
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			return nil, fmt.Errorf("control master: %q", sc.Text())
		}
		switch {
		case st.Note != "":
			if !c.quiet {
				fmt.Fprintf(d.e.stderr, "rexec: %s\n", st.Note)
			}
		case st.Ready:
			return rexec.DialControl(ctx, p.sock, addr, cfg)
		case st.Busy:
			return awaitMaster(ctx, p, addr, cfg)
		case st.Error != "" && st.Login:
			_ = os.WriteFile(p.failed, []byte(st.Error+"\n"), 0o600)
			return nil, fmt.Errorf("control master: %s", st.Error)
		case st.Error != "":
			return nil, &masterDialError{errors.New(st.Error)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("control master: %w", err)
	}
	return nil, errors.New("control master: ended without a word")
}

// awaitMaster waits for the master another rexec is starting: until its
// socket answers, or its lock is free (it failed), or ctx ends.
func awaitMaster(ctx context.Context, p controlPaths, addr string, cfg *rexec.Config) (*rexec.Client, error) {
	for {
		c, err := rexec.DialControl(ctx, p.sock, addr, cfg)
		if err == nil {
			return c, nil
		}
		if !locked(p.lock) {
			if c, err := rexec.DialControl(ctx, p.sock, addr, cfg); err == nil {
				return c, nil // ready between the two looks
			}
			return nil, errors.New("the control master another rexec started did not come up")
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the control master another rexec started: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// controlMasterCommand is the hidden command a control master runs as.
func controlMasterCommand(e env) *cobra.Command {
	return &cobra.Command{
		Use:    "master",
		Short:  "Hold a shared connection (started by rexec itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runMaster(e)
		},
	}
}

// runMaster is a control master's life: it reads its spec on stdin,
// takes the lock, logs in, listens, says ready on stdout, then relays
// until ServeControl returns. Its stdin and stdout are pipes of its
// starter's own making, its stderr /dev/null: it holds none of the
// user's.
func runMaster(e env) error {
	out := json.NewEncoder(e.stdout)
	say := func(st masterStatus) { _ = out.Encode(st) }
	var spec masterSpec
	if err := json.NewDecoder(io.LimitReader(e.stdin, 1<<16)).Decode(&spec); err != nil {
		say(masterStatus{Error: fmt.Sprintf("bad spec: %v", err)})
		return exitWith(exitUsage)
	}
	lock, ok, err := takeLock(spec.Lock)
	if err != nil {
		say(masterStatus{Error: err.Error()})
		return exitWith(exitTransport)
	}
	if !ok {
		say(masterStatus{Busy: true})
		return nil
	}
	defer lock.release()     // on every way out; at most once in effect
	_ = os.Remove(spec.Sock) // a dead master's: the lock says none lives

	client, err := spec.dial(e, say)
	if err != nil {
		return err
	}
	ln, mine, err := spec.listen()
	if err != nil {
		_ = client.Close()
		say(masterStatus{Error: err.Error()})
		return exitWith(exitTransport)
	}
	_ = os.Remove(spec.Failed)
	say(masterStatus{Ready: true}) // the last word: the starter stops reading here

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE) // no terminal; a starter gone does not end it
	go spec.watch(ctx, stop, sigs, mine)
	// Once it takes no new client, the path is free for a successor:
	// the socket goes (while it is still this master's), and the lock.
	var stopped sync.Once
	giveUp := func() {
		stopped.Do(func() {
			if fi, err := os.Stat(spec.Sock); err == nil && os.SameFile(fi, mine) {
				_ = os.Remove(spec.Sock)
			}
			lock.release()
		})
	}
	defer giveUp()
	_ = client.ServeControl(ctx, ln, rexec.ControlOptions{Persist: spec.Persist, Allow: samePeerUser, Stopped: giveUp})
	return nil
}

// dial makes the master's connection and login, as the spec says;
// failures are said to the starter.
func (spec *masterSpec) dial(e env, say func(masterStatus)) (*rexec.Client, error) {
	cf := &connFlags{
		port: spec.Port, connectTimeout: spec.ConnectTimeout, plaintext: spec.Plaintext, strictHostKey: spec.StrictHostKey,
		configPath: spec.Config, knownHosts: spec.KnownHosts, user: spec.User, identities: spec.Identities, network: spec.Network,
		keepAlive: spec.KeepAlive, control: controlNo, batch: true,
	}
	d, _, err := cf.newDialer(env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: e.getenv})
	if err != nil {
		say(masterStatus{Error: err.Error()})
		return nil, exitWith(exitTransport)
	}
	d.pinned = func(addr string) { say(masterStatus{Note: fmt.Sprintf("pinned new host %s in %s", addr, d.kh.Path)}) }
	ctx, cancel := context.WithTimeout(context.Background(), spec.ConnectTimeout)
	client, _, err := d.dial(ctx, spec.Host)
	cancel()
	d.close()
	if err != nil {
		var ae *rexec.AuthError
		say(masterStatus{Error: strings.TrimPrefix(err.Error(), "rexec: "), Login: errors.As(err, &ae) || errors.Is(err, rexec.ErrNoAuth)})
		return nil, exitWith(exitTransport)
	}
	return client, nil
}

// listen listens on the spec's socket, private to the user; mine is the
// socket file, to tell it from a successor's.
func (spec *masterSpec) listen() (net.Listener, os.FileInfo, error) {
	ln, err := net.Listen("unix", spec.Sock)
	if err != nil {
		return nil, nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // removed only while it is still this master's
	_ = os.Chmod(spec.Sock, 0o600)                 // the directory is private too
	mine, err := os.Stat(spec.Sock)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	return ln, mine, nil
}

// watch stops the master (stop) on a signal from sigs, or once a later
// rexec took its path (it found this master hung), until ctx ends.
func (spec *masterSpec) watch(ctx context.Context, stop func(), sigs <-chan os.Signal, mine os.FileInfo) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-sigs:
			stop()
			return
		case <-tick.C:
			if fi, err := os.Stat(spec.Sock); err != nil || !os.SameFile(fi, mine) {
				stop()
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// controlOp runs --control check or exit for host.
func controlOp(ctx context.Context, cf *connFlags, mode, host string, e env) error {
	d, status, err := cf.newDialer(e)
	if err != nil {
		return fail(cf.status(status), "%v", err)
	}
	defer d.close()
	_, tgt, login, err := d.target(host)
	if err != nil {
		return fail(cf.usage(), "%v", err)
	}
	dir, err := controlDir(e.getenv)
	if err != nil {
		return fail(exitTransport, "control directory: %v", err)
	}
	p := d.controlPathsFor(dir, login, tgt.Addr, cf.plaintext || tgt.Plaintext)
	c, err := rexec.DialControl(ctx, p.sock, tgt.Addr, &rexec.Config{Timeout: min(controlHello, cf.connectTimeout)})
	if err != nil {
		return fail(exitTransport, "no control master for %s@%s (%s)", login, tgt.Addr, p.sock)
	}
	defer func() { _ = c.Close() }()
	var pid int
	if mode == controlExit {
		pid, err = c.ControlExit(ctx)
	} else {
		pid, err = c.ControlCheck(ctx)
	}
	if err != nil {
		return fail(exitTransport, "control master for %s@%s: %v", login, tgt.Addr, err)
	}
	if mode == controlExit {
		fmt.Fprintf(e.stdout, "control master for %s@%s (pid %d) takes no new client and exits once its commands end\n", login, tgt.Addr, pid)
	} else {
		fmt.Fprintf(e.stdout, "control master for %s@%s running (pid %d)\n", login, tgt.Addr, pid)
	}
	return nil
}

// absPath is p made absolute from the working directory ("" stays "").
func absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
