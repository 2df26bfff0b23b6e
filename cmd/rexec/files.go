package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/rexec"
)

// transferFlags are the flags of get and put.
type transferFlags struct {
	connFlags
	recursive bool
	quiet     bool
	restart   bool
	parallel  int
	hash      string
	fan       fanFlags
	noSummary bool
}

func (tf *transferFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	tf.connFlags.register(f)
	f.IntVarP(&tf.port, "P", "P", 0, "port of the daemon, as scp spells it")
	_ = f.MarkHidden("P") // same as -p
	f.BoolVarP(&tf.recursive, "recursive", "r", false, "copy directories and everything in them")
	f.BoolVarP(&tf.quiet, "quiet", "q", false, "no progress bars")
	f.BoolVar(&tf.restart, "restart", false, "ignore partial copies of an interrupted transfer and send everything again")
	f.IntVarP(&tf.parallel, "parallel", "j", rexec.DefaultParallel, "files moved at once in a recursive copy")
	f.StringVar(&tf.hash, "hash", "", "end-to-end hash: sha256 or blake3 (default: blake3 when the daemon offers it)")
	tf.fan.register(f)
	f.BoolVar(&tf.noSummary, "no-summary", false, "with -H: no summary on stderr at the end")
}

// options turns the flags into rexec's, with progress bars when both
// stdout and stderr are terminals and -q was not given.
func (tf *transferFlags) options(e env) (*rexec.TransferOptions, *progress) {
	o := &rexec.TransferOptions{Recursive: tf.recursive, Restart: tf.restart, Parallel: tf.parallel, Hash: tf.hash}
	if tf.quiet || !isTerminal(e.stdout) || !isTerminal(e.stderr) {
		return o, nil
	}
	p := newProgress(e.stderr)
	o.Observer = p
	return o, p
}

func isTerminal(stream any) bool {
	_, tty := terminalFd(stream)
	return tty
}

// splitRemote parses HOST:PATH as scp does: an argument is remote when a
// colon comes before any slash; [V6]:PATH brackets an IPv6 address. An
// empty PATH is the remote home.
func splitRemote(arg string) (host, path string, ok bool) {
	login := "" // USER@ before a bracketed address
	if i := strings.Index(arg, "@["); i > 0 && !strings.ContainsRune(arg[:i], '/') {
		login, arg = arg[:i+1], arg[i+1:]
	}
	defer func() {
		if ok {
			host = login + host
		}
	}()
	if strings.HasPrefix(arg, "[") {
		i := strings.Index(arg, "]:")
		if i < 0 {
			return "", "", false
		}
		host, path = arg[:i+1], arg[i+2:]
	} else {
		i := strings.IndexByte(arg, ':')
		slash := strings.IndexByte(arg, '/')
		if i <= 0 || (slash >= 0 && slash < i) {
			return "", "", false
		}
		host, path = arg[:i], arg[i+1:]
	}
	// HOST:PORT:PATH, as rexec HOST:PORT takes a port: a path that starts
	// with DIGITS: is a port (write ~/1234:x for a file of that name).
	if port, rest, ok := strings.Cut(path, ":"); ok && isPort(port) {
		host, path = host+":"+port, rest
	}
	if path == "" {
		path = "~"
	}
	return host, path, true
}

// isPort reports whether s is a port number as written in HOST:PORT.
func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536 && s[0] != '+' && s[0] != '-'
}

func getCommand(ctx context.Context, e env) *cobra.Command {
	var tf transferFlags
	cmd := &cobra.Command{
		Use:   "get [flags] HOST:REMOTE... [LOCAL]",
		Short: "Copy files from a daemon",
		Long: `get copies REMOTE (relative to the home the daemon serves; ~ is that
home) to LOCAL, the current directory by default: into LOCAL when it is
a directory, as LOCAL otherwise; - writes the one file to stdout
(checked by hash at the end, not resumable). Directories need -r; modes and
modification times are kept; symlinks inside the copied tree are
recreated, those pointing outside it are skipped with a warning.

Every file is checked end to end with a strong hash (BLAKE3 when the
daemon offers it, SHA-256 otherwise; --hash chooses) and written under a hidden
temporary name that is renamed into place only once verified: nothing
half-written ever appears under the real name. An interrupted get
resumes where it stopped, after checking by hash that the part already
here matches; --restart sends everything again.

With -H (or -g), get fetches from every host into a folder per host,
LOCAL/<host>/, writing the remote paths as :REMOTE (or HOST:REMOTE).

Exit status: 0 when every file arrived verified, 1 when some failed (one
line each), 2 for a usage error, 255 when the connection failed (with
-H: when any host was unreachable).`,
		Example: `  rexec get lab1:logs/app.log .
  rexec get -H node[01-40] :logs/app.log ./logs/   # ./logs/node01/app.log ...
  rexec get -r lab1:project ./backup/
  rexec get lab1:'report 2024.pdf' lab1:数据.csv ~/Downloads/`,
		Args:          cobra.MinimumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(runGet(ctx, &tf, args, e))
		},
	}
	tf.register(cmd)
	cmd.ValidArgsFunction = remotePaths(ctx, &tf, e)
	return cmd
}

func runGet(ctx context.Context, tf *transferFlags, args []string, e env) error {
	if err := tf.fan.check(); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if tf.fan.active() {
		return runGetFanout(ctx, tf, args, e)
	}
	local := "."
	if _, _, ok := splitRemote(args[len(args)-1]); !ok {
		if len(args) < 2 {
			return fail(exitUsage, "get needs HOST:REMOTE; %q is a local path", args[0])
		}
		local, args = args[len(args)-1], args[:len(args)-1]
	}
	var host string
	var remotes []string
	for _, a := range args {
		h, p, ok := splitRemote(a)
		if !ok {
			return fail(exitUsage, "%q is not HOST:REMOTE (only the last argument may be local)", a)
		}
		if host != "" && h != host {
			return fail(exitUsage, "all sources must be on one host (%s and %s)", host, h)
		}
		host = h
		remotes = append(remotes, p)
	}
	if local == "-" {
		if len(remotes) != 1 {
			return fail(exitUsage, "get to - (stdout) takes one HOST:REMOTE")
		}
		tf.quiet = true // the terminal shows the file itself
	}
	client, err := tf.dial(ctx, host, e)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }() // best effort; the one in use at the end
	client = tf.bulkOwn(ctx, host, e, client, func() int64 { return remoteSize(ctx, client, remotes) })
	opts, bars := tf.options(e)
	ctx, stop := interruptible(ctx, e)
	var errs []error
	for _, r := range remotes {
		var err error
		if local == "-" {
			_, err = client.GetStream(ctx, r, e.stdout, opts)
		} else {
			_, err = client.Get(ctx, r, local, opts)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if bars != nil {
		bars.Wait()
	}
	if sig := stop(); sig != "" {
		return interrupted(sig)
	}
	return transferStatus(e, errs)
}

func putCommand(ctx context.Context, e env) *cobra.Command {
	var tf transferFlags
	cmd := &cobra.Command{
		Use:   "put [flags] LOCAL... HOST:REMOTE",
		Short: "Copy files to a daemon",
		Long: `put copies LOCAL files and directories to REMOTE (relative to the home
the daemon serves; HOST: alone is that home): into REMOTE when it is a
directory, which several sources need, as REMOTE otherwise. Directories
need -r; modes and modification times are kept.

The daemon writes each file under a hidden temporary name, checks its
hash (BLAKE3 when the daemon offers it, SHA-256 otherwise; --hash
chooses) against the one rexec computed while reading, and only then
renames it into place: an existing file stays intact until the new one
is complete. An interrupted put resumes where it stopped, after checking
by hash that the part the daemon kept matches; --restart sends
everything again.

With -H (or -g), put copies to every host, writing the destination as
:REMOTE (or HOST:REMOTE); "put -" sends the same stdin to each.

Exit status: 0 when every file arrived verified, 1 when some failed (one
line each), 2 for a usage error, 255 when the connection failed (with
-H: when any host was unreachable).`,
		Example: `  rexec put app.conf lab1:
  rexec put -H @lab.txt app.conf :etc/app.conf
  rexec put -r ./site lab1:www
  rexec put a.txt b.txt 'my notes.md' lab1:inbox/
  pg_dump db | rexec put - lab1:backup/db.sql`,
		Args:          cobra.MinimumNArgs(2),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(runPut(ctx, &tf, args, e))
		},
	}
	tf.register(cmd)
	cmd.ValidArgsFunction = remotePaths(ctx, &tf, e)
	return cmd
}

func runPut(ctx context.Context, tf *transferFlags, args []string, e env) error {
	if err := tf.fan.check(); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if tf.fan.active() {
		return runPutFanout(ctx, tf, args, e)
	}
	host, remote, ok := splitRemote(args[len(args)-1])
	if !ok {
		return fail(exitUsage, "the last argument must be HOST:REMOTE, got %q", args[len(args)-1])
	}
	locals := args[:len(args)-1]
	for _, l := range locals {
		if _, _, ok := splitRemote(l); ok {
			return fail(exitUsage, "%q looks remote; put copies local files (write ./%s for a local name with a colon)", l, l)
		}
	}
	client, err := tf.dial(ctx, host, e)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }() // best effort; the one in use at the end
	client = tf.bulkOwn(ctx, host, e, client, func() int64 { return localSize(locals) })
	opts, bars := tf.options(e)
	ctx, stop := interruptible(ctx, e)
	if len(locals) == 1 && locals[0] == "-" {
		// A stream: stdin, however long, into one remote file.
		if remote == "~" || strings.HasSuffix(remote, "/") {
			return fail(exitUsage, "put - needs a file name on the remote side, not %q", remote)
		}
		_, err = client.PutStream(ctx, e.stdin, remote, opts)
	} else {
		_, err = client.Put(ctx, locals, remote, opts)
	}
	if bars != nil {
		bars.Wait()
	}
	if sig := stop(); sig != "" {
		return interrupted(sig)
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	return transferStatus(e, errs)
}

// bulkOwn is the client a transfer uses: client itself, unless it is
// shared through a control master and the transfer is bulk (a tree, or
// files of rexec.DefaultMoveAfter bytes and more, as size says), which
// then takes a connection of its own: past that much data the relay
// costs more than a connection does. If that connection cannot be made
// without asking for a secret, the shared one serves.
func (tf *transferFlags) bulkOwn(ctx context.Context, host string, e env, client *rexec.Client, size func() int64) *rexec.Client {
	if !client.Shared() || !tf.recursive && size() < rexec.DefaultMoveAfter {
		return client
	}
	own, err := tf.dialOwn(ctx, host, e)
	if err != nil {
		return client
	}
	_ = client.Close() // best effort: the master stays
	return own
}

// remoteSize is the size of the remote files, as far as a stat tells
// (what it cannot tell counts 0: the transfer says why).
func remoteSize(ctx context.Context, c *rexec.Client, remotes []string) int64 {
	fsx, err := c.OpenFS(ctx, "")
	if err != nil {
		return 0
	}
	defer func() { _ = fsx.Close() }()
	var n int64
	for _, r := range remotes {
		if fi, err := fsx.Stat(ctx, r); err == nil {
			n += int64(fi.Size)
		}
	}
	return n
}

// localSize is the size of the local files (0 for what cannot be read).
func localSize(locals []string) int64 {
	var n int64
	for _, l := range locals {
		if fi, err := os.Stat(l); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// transferStatus prints one line per failure and ends rexec with 255
// when the connection was lost, 1 when files failed, 0 otherwise.
func transferStatus(e env, errs []error) error {
	status := 0
	for _, err := range errs {
		for _, line := range strings.Split(err.Error(), "\n") {
			// One "rexec: " per line: a wrapped sentinel ("huge.bin: rexec:
			// connection lost") carries its own.
			line = strings.ReplaceAll(strings.TrimPrefix(line, "rexec: "), ": rexec: ", ": ")
			fmt.Fprintf(e.stderr, "rexec: %s\n", termsafe.String(line))
		}
		status = max(status, 1)
		if isLost(err) {
			status = exitTransport
		}
	}
	return exitWith(status)
}

func isLost(err error) bool { return errors.Is(err, rexec.ErrConnectionLost) }
