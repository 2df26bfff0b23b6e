package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/execd-project/execd/internal/termsafe"
	"github.com/execd-project/execd/internal/units"
	"github.com/execd-project/execd/rexec"
)

func filesCommand(ctx context.Context, e env) *cobra.Command {
	var cf connFlags
	cmd := &cobra.Command{
		Use:     "files [flags] HOST",
		Aliases: []string{"sh", "ftp"},
		Short:   "Browse and move files on a daemon, interactively",
		Long: `files opens a file session on HOST, in the tradition of ftp and sftp:
the remote side is the home the daemon serves (~), and every path stays
inside it. Commands (type help for details):

  pwd  cd [DIR|~|-|..]  ls [-a] [PATH]  mkdir [-p] DIR  rm [-r] PATH...
  mv FROM TO  get [-r] REMOTE [LOCAL]  put [-r] LOCAL [REMOTE]  sum FILE
  lpwd  lcd DIR  lls [PATH]  !COMMAND  help  exit

Lines are edited and recalled with the arrow keys on a terminal. With
stdin not a terminal, commands are read one per line (for scripts); the
exit status is then 1 if any of them failed.`,
		Example:       "  rexec files lab1\n  printf 'cd logs\\nget app.log\\n' | rexec files lab1",
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return result(runFiles(ctx, &cf, args[0], e))
		},
	}
	cf.register(cmd.Flags())
	return cmd
}

// fileShell is one interactive file session.
type fileShell struct {
	ctx     context.Context // of the command running; the session's between commands
	root    context.Context // of the session
	client  *rexec.Client
	fsx     *rexec.FS
	e       env
	out     io.Writer // where results go (the line editor on a terminal)
	lcwd    string    // local directory; the process's own is never changed
	prevDir string    // for cd -
	tty     bool
	failed  bool
	cmds    map[string]shellCommand
	// cooked runs f with the terminal in its normal mode (for progress
	// bars and remote commands); a no-op without a terminal.
	cooked func(f func())
	// restore puts the terminal back as it was (a no-op without one).
	restore func()

	sigMu  sync.Mutex
	cancel context.CancelFunc // of the command running, nil between commands
	sig    string             // the signal that interrupted it
	quit   string             // TERM or HUP: the session ends after the command
}

// watchSignals runs for the session's life: INT, TERM or HUP stop the
// command running (a transfer keeps its partial copies, as get and put
// do); TERM and HUP, and INT between commands of a script, end the
// session with 128+N. Between commands on a terminal no INT arrives:
// the line editor's raw mode reads ^C as a key.
func (sh *fileShell) watchSignals(done <-chan struct{}, exit func(int)) {
	for {
		select {
		case <-done:
			return
		case s := <-sh.e.signals:
			name := signalName(s)
			if name != "INT" && name != "TERM" && name != "HUP" {
				continue
			}
			sh.sigMu.Lock()
			cancel := sh.cancel
			if cancel != nil {
				sh.sig = name
				if name != "INT" {
					sh.quit = name
				}
			}
			sh.sigMu.Unlock()
			if cancel != nil {
				cancel()
				continue
			}
			// Idle, waiting for the next line: end the session now.
			sh.restore()
			_ = sh.client.Close() // best effort
			exit(exitCode(fail(signalStatus(name), "ended by SIG%s", name), sh.e.stderr))
			return
		}
	}
}

// running runs one command under a context its signals can cancel, and
// reports the signal that did ("" when none).
func (sh *fileShell) running(f func()) string {
	ctx, cancel := context.WithCancel(sh.root)
	sh.sigMu.Lock()
	sh.ctx, sh.cancel, sh.sig = ctx, cancel, ""
	sh.sigMu.Unlock()
	f()
	sh.sigMu.Lock()
	sig := sh.sig
	sh.ctx, sh.cancel = sh.root, nil
	sh.sigMu.Unlock()
	cancel()
	return sig
}

func runFiles(ctx context.Context, cf *connFlags, host string, e env) error {
	client, err := cf.dial(ctx, host, e)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }() // best effort
	fsx, err := client.OpenFS(ctx, "")
	if err != nil {
		return err
	}
	defer fsx.Close()
	lcwd, err := os.Getwd()
	if err != nil {
		lcwd = "."
	}
	sh := &fileShell{ctx: ctx, root: ctx, client: client, fsx: fsx, e: e, out: e.stdout, lcwd: lcwd, prevDir: fsx.Getwd(),
		cooked: func(f func()) { f() }, restore: func() {}, cmds: commandTable()}
	done := make(chan struct{})
	defer close(done)
	go sh.watchSignals(done, os.Exit)
	fd, tty := terminalFd(e.stdin)
	if !tty {
		return sh.batch(e.stdin)
	}
	return sh.interactive(fd, host)
}

func (sh *fileShell) batch(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if quit := sh.exec(sc.Text()); quit {
			break
		}
	}
	if sh.quit != "" {
		return exitWith(signalStatus(sh.quit))
	}
	if sh.failed {
		return exitWith(1)
	}
	return nil
}

func (sh *fileShell) interactive(fd int, host string) error {
	old, err := term.MakeRaw(fd)
	if err != nil {
		return fail(exitTransport, "raw terminal: %v", err)
	}
	defer func() { _ = term.Restore(fd, old) }() // every return path restores it
	sh.restore = func() { _ = term.Restore(fd, old) }
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{sh.e.stdin, sh.e.stdout}, "")
	if w, h, err := term.GetSize(fd); err == nil {
		_ = t.SetSize(w, h) // best effort: the editor wraps at 80 columns otherwise
	}
	sh.out, sh.tty = t, true
	sh.cooked = func(f func()) {
		raw, err := term.GetState(fd)
		_ = term.Restore(fd, old) // best effort: output may look odd, nothing is lost
		defer func() {
			if err == nil {
				_ = term.Restore(fd, raw) // back to the editor's raw mode
			}
		}()
		f()
	}
	fmt.Fprintf(t, "Connected to %s (%s). Type help for commands.\n", host, termsafe.String(sh.client.ServerSoftware()))
	for {
		t.SetPrompt(fmt.Sprintf("%s:%s> ", host, termsafe.String(sh.fsx.Getwd())))
		line, err := t.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				fmt.Fprintln(t)
				return nil
			}
			return fail(exitTransport, "terminal: %v", err)
		}
		if quit := sh.exec(line); quit {
			if sh.quit != "" {
				return exitWith(signalStatus(sh.quit))
			}
			return nil
		}
		if _, err := sh.client.Ping(sh.ctx); err != nil {
			_ = term.Restore(fd, old)
			return fail(exitTransport, "connection lost: %v", err)
		}
	}
}

// exec runs one command line; it reports whether the shell should end.
func (sh *fileShell) exec(line string) (quit bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return false
	}
	if strings.HasPrefix(line, "!") {
		if sig := sh.running(func() { sh.report(sh.remoteCommand(strings.TrimSpace(line[1:]))) }); sig != "" {
			return sh.interrupted(sig)
		}
		return false
	}
	args, err := splitWords(line)
	if err != nil {
		sh.report(err)
		return false
	}
	name, args := args[0], args[1:]
	if name == "exit" || name == "quit" || name == "bye" {
		return true
	}
	cmd, ok := sh.cmds[name]
	if !ok || cmd.run == nil {
		sh.report(fmt.Errorf("%s: unknown command (type help)", name))
		return false
	}
	if sig := sh.running(func() { sh.report(cmd.run(sh, args)) }); sig != "" {
		return sh.interrupted(sig)
	}
	return false
}

// interrupted says what a signal stopped; the session ends on TERM and HUP.
func (sh *fileShell) interrupted(sig string) (quit bool) {
	sh.failed = true
	fmt.Fprintf(sh.out, "interrupted by SIG%s (a partial copy is kept: the same get or put resumes it)\n", sig)
	return sig != "INT"
}

func (sh *fileShell) report(err error) {
	if err == nil {
		return
	}
	sh.failed = true
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(sh.out, "error: %s\n", termsafe.String(strings.TrimPrefix(line, "rexec: ")))
	}
}

// remote turns a path typed in the shell into one relative to the served
// directory, taken from the current remote directory.
func (sh *fileShell) remote(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, "/") {
		return p // the daemon refuses absolute paths with a clear message
	}
	return sh.fsx.Getwd() + "/" + p
}

func (sh *fileShell) local(p string) string {
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	case filepath.IsAbs(p):
		return p
	}
	return filepath.Join(sh.lcwd, p)
}

type shellCommand struct {
	usage string
	help  string
	run   func(sh *fileShell, args []string) error
}

// commandTable is the shell's commands by name.
func commandTable() map[string]shellCommand {
	return map[string]shellCommand{
		"help":  {"help", "list the commands", (*fileShell).help},
		"pwd":   {"pwd", "print the remote directory", (*fileShell).pwd},
		"cd":    {"cd [DIR]", "change the remote directory (~ or nothing: home, -: the previous one)", (*fileShell).cd},
		"ls":    {"ls [-a] [PATH...]", "list remote files: mode, size, time, name (-a: hidden ones too)", (*fileShell).ls},
		"mkdir": {"mkdir [-p] DIR...", "make remote directories (-p: with parents)", (*fileShell).mkdir},
		"rm":    {"rm [-r] PATH...", "remove remote files (-r: directories with all they hold)", (*fileShell).rm},
		"mv":    {"mv FROM TO", "rename or move a remote file (into TO when it is a directory)", (*fileShell).mv},
		"get":   {"get [-r] REMOTE [LOCAL]", "copy from the remote side, verified by hash, resumable", (*fileShell).get},
		"put":   {"put [-r] LOCAL [REMOTE]", "copy to the remote side, verified by hash, resumable", (*fileShell).put},
		"sum":   {"sum FILE...", "print the SHA-256 of remote files, computed by the daemon", (*fileShell).sum},
		"lpwd":  {"lpwd", "print the local directory", (*fileShell).lpwd},
		"lcd":   {"lcd DIR", "change the local directory", (*fileShell).lcd},
		"lls":   {"lls [PATH]", "list local files", (*fileShell).lls},
		"!":     {"!COMMAND", "run COMMAND on the remote side, in the remote directory", nil},
		"exit":  {"exit", "end the session (also quit, bye, Ctrl-D)", nil},
	}
}

func (sh *fileShell) help([]string) error {
	tw := tabwriter.NewWriter(sh.out, 0, 4, 2, ' ', 0)
	for _, name := range []string{"pwd", "cd", "ls", "mkdir", "rm", "mv", "get", "put", "sum", "lpwd", "lcd", "lls", "!", "help", "exit"} {
		c := sh.cmds[name]
		fmt.Fprintf(tw, "  %s\t%s\n", c.usage, c.help)
	}
	return tw.Flush()
}

// flags splits leading -x options (up to "--") from operands.
func flags(args []string, allowed string) (map[rune]bool, []string, error) {
	set := map[rune]bool{}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		a := args[0]
		args = args[1:]
		if a == "--" {
			break
		}
		for _, r := range a[1:] {
			if !strings.ContainsRune(allowed, r) {
				return nil, nil, fmt.Errorf("unknown option -%c (names starting with - go after --)", r)
			}
			set[r] = true
		}
	}
	return set, args, nil
}

func (sh *fileShell) pwd([]string) error {
	fmt.Fprintln(sh.out, termsafe.String(sh.fsx.Getwd()))
	return nil
}

func (sh *fileShell) cd(args []string) error {
	_, args, err := flags(args, "")
	if err != nil {
		return err
	}
	target := "~"
	switch {
	case len(args) > 1:
		return errors.New("cd: one directory at most")
	case len(args) == 1 && args[0] == "-":
		target = sh.prevDir
	case len(args) == 1:
		target = sh.remote(args[0])
	}
	before := sh.fsx.Getwd()
	if _, err := sh.fsx.Chdir(sh.ctx, target); err != nil {
		return err
	}
	sh.prevDir = before
	return nil
}

func (sh *fileShell) ls(args []string) error {
	opt, args, err := flags(args, "al")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		args = []string{"."}
	}
	tw := tabwriter.NewWriter(sh.out, 0, 4, 1, ' ', tabwriter.AlignRight)
	var errs []error
	for _, a := range args {
		entries, err := sh.fsx.ReadDir(sh.ctx, sh.remote(a))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(args) > 1 {
			fmt.Fprintf(tw, "%s:\t\n", a)
		}
		for _, fi := range entries {
			if strings.HasPrefix(fi.Name, ".") && !opt['a'] {
				continue
			}
			fmt.Fprintf(tw, "%s\t %d\t %s\t %s\t\n", modeString(&fi), fi.Size, lsTime(fi.ModTime), lsName(&fi))
		}
	}
	_ = tw.Flush() // the terminal or stdout: nothing to do about a failure
	return errors.Join(errs...)
}

func modeString(fi *rexec.FileInfo) string {
	kind := "-"
	switch fi.Type {
	case "dir":
		kind = "d"
	case "symlink":
		kind = "l"
	case "other":
		kind = "?"
	}
	return kind + fi.Mode.Perm().String()[1:]
}

func lsTime(t time.Time) string {
	if time.Since(t) > 180*24*time.Hour || time.Until(t) > time.Hour {
		return t.Format("Jan _2  2006")
	}
	return t.Format("Jan _2 15:04")
}

func lsName(fi *rexec.FileInfo) string {
	name := fi.Name
	if strings.ContainsAny(name, " '\"\\") || termsafe.NeedsEscape(name) {
		name = `"` + strings.ReplaceAll(termsafe.String(strings.ReplaceAll(name, `\`, `\\`)), `"`, `\"`) + `"`
	}
	switch fi.Type {
	case "dir":
		return name + "/"
	case "symlink":
		return name + " -> " + termsafe.String(fi.Target)
	}
	return name
}

func (sh *fileShell) mkdir(args []string) error {
	opt, args, err := flags(args, "p")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("mkdir: which directory?")
	}
	var errs []error
	for _, a := range args {
		if opt['p'] {
			errs = append(errs, sh.fsx.MkdirAll(sh.ctx, sh.remote(a), 0o755))
		} else {
			errs = append(errs, sh.fsx.Mkdir(sh.ctx, sh.remote(a), 0o755))
		}
	}
	return errors.Join(errs...)
}

func (sh *fileShell) rm(args []string) error {
	opt, args, err := flags(args, "rf")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("rm: which file?")
	}
	var errs []error
	for _, a := range args {
		if opt['r'] {
			errs = append(errs, sh.fsx.RemoveAll(sh.ctx, sh.remote(a)))
		} else {
			errs = append(errs, sh.fsx.Remove(sh.ctx, sh.remote(a)))
		}
	}
	return errors.Join(errs...)
}

func (sh *fileShell) mv(args []string) error {
	_, args, err := flags(args, "")
	if err != nil {
		return err
	}
	if len(args) != 2 {
		return errors.New("mv: FROM TO")
	}
	to := sh.remote(args[1])
	if fi, err := sh.fsx.Stat(sh.ctx, to); err == nil && fi.IsDir() {
		to += "/" + filepath.Base(args[0])
	}
	return sh.fsx.Rename(sh.ctx, sh.remote(args[0]), to)
}

func (sh *fileShell) transferOptions(opt map[rune]bool) (*rexec.TransferOptions, *progress) {
	o := &rexec.TransferOptions{Recursive: opt['r']}
	if sh.tty {
		p := newProgress(sh.e.stderr)
		o.Observer = p
		return o, p
	}
	return o, nil
}

func (sh *fileShell) get(args []string) error {
	opt, args, err := flags(args, "r")
	if err != nil {
		return err
	}
	if len(args) < 1 || len(args) > 2 {
		return errors.New("get: REMOTE [LOCAL]")
	}
	local := sh.lcwd
	if len(args) == 2 {
		local = sh.local(args[1])
	}
	o, bars := sh.transferOptions(opt)
	var st *rexec.TransferStats
	sh.cooked(func() {
		st, err = sh.client.Get(sh.ctx, sh.remote(args[0]), local, o)
		if bars != nil {
			bars.Wait()
		}
	})
	sh.summary(st, "received")
	return err
}

func (sh *fileShell) put(args []string) error {
	opt, args, err := flags(args, "r")
	if err != nil {
		return err
	}
	if len(args) < 1 || len(args) > 2 {
		return errors.New("put: LOCAL [REMOTE]")
	}
	remote := sh.fsx.Getwd()
	if len(args) == 2 {
		remote = sh.remote(args[1])
	}
	o, bars := sh.transferOptions(opt)
	var st *rexec.TransferStats
	sh.cooked(func() {
		st, err = sh.client.Put(sh.ctx, []string{sh.local(args[0])}, remote, o)
		if bars != nil {
			bars.Wait()
		}
	})
	sh.summary(st, "sent")
	return err
}

// summary says what a transfer moved; verb is "received" or "sent".
func (sh *fileShell) summary(st *rexec.TransferStats, verb string) {
	if st == nil || st.Files+st.Dirs == 0 {
		return
	}
	msg := fmt.Sprintf("%d file(s) verified (%s), %s %s", st.Files, st.Hash, units.Bytes(st.Bytes, " "), verb)
	if st.Resumed > 0 {
		msg += fmt.Sprintf(", %s resumed", units.Bytes(st.Resumed, " "))
	}
	fmt.Fprintln(sh.out, msg)
}

func (sh *fileShell) sum(args []string) error {
	_, args, err := flags(args, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range args {
		sum, _, err := sh.fsx.Checksum(sh.ctx, sh.remote(a))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(sh.out, "%s  %s\n", termsafe.String(sum), termsafe.String(a))
	}
	return errors.Join(errs...)
}

func (sh *fileShell) lpwd([]string) error {
	fmt.Fprintln(sh.out, sh.lcwd)
	return nil
}

func (sh *fileShell) lcd(args []string) error {
	if len(args) != 1 {
		return errors.New("lcd: DIR")
	}
	d := sh.local(args[0])
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("lcd: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("lcd: %s: not a directory", d)
	}
	sh.lcwd = d
	return nil
}

func (sh *fileShell) lls(args []string) error {
	d := sh.lcwd
	if len(args) > 0 {
		d = sh.local(args[0])
	}
	entries, err := os.ReadDir(d)
	if err != nil {
		return fmt.Errorf("lls: %w", err)
	}
	tw := tabwriter.NewWriter(sh.out, 0, 4, 1, ' ', tabwriter.AlignRight)
	for _, en := range entries {
		fi, err := en.Info()
		if err != nil || strings.HasPrefix(en.Name(), ".") {
			continue
		}
		name := en.Name()
		if fi.IsDir() {
			name += "/"
		}
		fmt.Fprintf(tw, "%s\t %d\t %s\t %s\t\n", fi.Mode().String(), fi.Size(), lsTime(fi.ModTime()), name)
	}
	return tw.Flush()
}

// remoteCommand runs a command line through the remote shell, in the
// current remote directory, with the terminal's output as it comes.
func (sh *fileShell) remoteCommand(line string) error {
	if line == "" {
		return errors.New("!: which command?")
	}
	s, err := sh.client.NewSession()
	if err != nil {
		return err
	}
	// The terminal is back in its normal mode while the command runs, so
	// its output goes straight to stdout and stderr.
	s.Stdout, s.Stderr = sh.e.stdout, sh.e.stderr
	s.Dir = strings.TrimPrefix(strings.TrimPrefix(sh.fsx.Getwd(), "~"), "/")
	var werr error
	sh.cooked(func() {
		if err := s.StartShell(sh.ctx, line); err != nil {
			werr = err
			return
		}
		werr = s.Wait()
	})
	var ee *rexec.ExitError
	if errors.As(werr, &ee) {
		return fmt.Errorf("!%s: exit status %d", line, ee.ExitStatus())
	}
	return werr
}

// splitWords splits a command line into words as a shell would: blanks
// separate, '…' quotes literally, "…" quotes with \ escapes, \ escapes
// outside quotes.
func splitWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				cur.WriteRune(rs[j])
				j++
			}
			if j == len(rs) {
				return nil, errors.New("unterminated ' quote")
			}
			i = j
		case r == '"':
			inWord = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && strings.ContainsRune(`"\`, rs[j+1]) {
					j++
				}
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, errors.New(`unterminated " quote`)
			}
			i = j
		case r == '\\' && i+1 < len(rs):
			inWord = true
			i++
			cur.WriteRune(rs[i])
		default:
			inWord = true
			cur.WriteRune(r)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}
