// Package fshell is the engine of rexec's file shell, in the tradition
// of ftp and sftp: pwd, cd, ls, mkdir, rm, mv, get, put, sum, lpwd, lcd,
// lls and !COMMAND, run one line at a time against a file session on a
// daemon, every remote path inside the home it serves. The terminal, the
// line editor and the signals are its caller's: Interrupt stops the
// command running.
package fshell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/execd-project/execd/cmd/internal/units"
	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/rexec"
)

// Shell is one file session. Set the exported fields, then call Exec for
// each line; Interrupt may be called from another goroutine.
type Shell struct {
	Client *rexec.Client
	FS     *rexec.FS
	// Out receives results and errors (the line editor on a terminal).
	Out io.Writer
	// Stdout and Stderr receive a remote command's output (!COMMAND).
	Stdout, Stderr io.Writer
	// LocalDir is the local directory of lcd, lls, get and put; the
	// process's own is never changed.
	LocalDir string
	// Cooked, when set, runs f with the terminal in its normal mode (for
	// progress bars and remote commands).
	Cooked func(f func())
	// Progress, when set, makes the observer that draws a transfer's
	// progress, and a wait for its last drawing.
	Progress func() (rexec.Observer, func())

	root    context.Context
	prevDir string // for cd -
	failed  bool
	cmds    map[string]command

	mu     sync.Mutex
	ctx    context.Context    // of the command running; root between commands
	cancel context.CancelFunc // of the command running, nil between commands
	sig    string             // the signal that interrupted it
	quit   string             // TERM or HUP: the session ends after the command
}

// New returns a shell on the file session fsx of c, whose commands run
// under ctx.
func New(ctx context.Context, c *rexec.Client, fsx *rexec.FS) *Shell {
	return &Shell{Client: c, FS: fsx, Out: io.Discard, Stdout: io.Discard, Stderr: io.Discard, LocalDir: ".",
		root: ctx, ctx: ctx, prevDir: fsx.Getwd(), cmds: commandTable()}
}

// Failed reports whether a command failed.
func (sh *Shell) Failed() bool { return sh.failed }

// Quit is the signal (TERM or HUP) that ends the session, or "".
func (sh *Shell) Quit() string {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.quit
}

// Interrupt stops the command running with the named signal (INT, TERM,
// HUP): a transfer keeps its partial copies, as get and put do; after
// TERM and HUP the session ends. It reports false when no command was
// running: the caller ends the session itself.
func (sh *Shell) Interrupt(sig string) bool {
	sh.mu.Lock()
	cancel := sh.cancel
	if cancel != nil {
		sh.sig = sig
		if sig != "INT" {
			sh.quit = sig
		}
	}
	sh.mu.Unlock()
	if cancel == nil {
		return false
	}
	cancel()
	return true
}

func (sh *Shell) cooked(f func()) {
	if sh.Cooked == nil {
		f()
		return
	}
	sh.Cooked(f)
}

// running runs one command under a context its signals can cancel, and
// reports the signal that did ("" when none).
func (sh *Shell) running(f func()) string {
	ctx, cancel := context.WithCancel(sh.root)
	sh.mu.Lock()
	sh.ctx, sh.cancel, sh.sig = ctx, cancel, ""
	sh.mu.Unlock()
	f()
	sh.mu.Lock()
	sig := sh.sig
	sh.ctx, sh.cancel = sh.root, nil
	sh.mu.Unlock()
	cancel()
	return sig
}

// Exec runs one command line; it reports whether the shell should end
// (exit, or a TERM or HUP that stopped the command).
func (sh *Shell) Exec(line string) (quit bool) {
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
func (sh *Shell) interrupted(sig string) (quit bool) {
	sh.failed = true
	fmt.Fprintf(sh.Out, "interrupted by SIG%s (a partial copy is kept: the same get or put resumes it)\n", sig)
	return sig != "INT"
}

func (sh *Shell) report(err error) {
	if err == nil {
		return
	}
	sh.failed = true
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(sh.Out, "error: %s\n", termsafe.String(strings.TrimPrefix(line, "rexec: ")))
	}
}

// remote turns a path typed in the shell into one relative to the served
// directory, taken from the current remote directory.
func (sh *Shell) remote(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, "/") {
		return p // a confined user's daemon refuses absolute paths with a clear message
	}
	return sh.FS.Getwd() + "/" + p
}

func (sh *Shell) local(p string) string {
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	case filepath.IsAbs(p):
		return p
	}
	return filepath.Join(sh.LocalDir, p)
}

type command struct {
	usage string
	help  string
	run   func(sh *Shell, args []string) error
}

// commandTable is the shell's commands by name.
func commandTable() map[string]command {
	return map[string]command{
		"help":  {"help", "list the commands", (*Shell).help},
		"pwd":   {"pwd", "print the remote directory", (*Shell).pwd},
		"cd":    {"cd [DIR]", "change the remote directory (~ or nothing: home, -: the previous one)", (*Shell).cd},
		"ls":    {"ls [-a] [PATH...]", "list remote files: mode, size, time, name (-a: hidden ones too)", (*Shell).ls},
		"mkdir": {"mkdir [-p] DIR...", "make remote directories (-p: with parents)", (*Shell).mkdir},
		"rm":    {"rm [-r] PATH...", "remove remote files (-r: directories with all they hold)", (*Shell).rm},
		"mv":    {"mv FROM TO", "rename or move a remote file (into TO when it is a directory)", (*Shell).mv},
		"get":   {"get [-r] REMOTE [LOCAL]", "copy from the remote side, verified by hash, resumable", (*Shell).get},
		"put":   {"put [-r] LOCAL [REMOTE]", "copy to the remote side, verified by hash, resumable", (*Shell).put},
		"sum":   {"sum FILE...", "print the SHA-256 of remote files, computed by the daemon", (*Shell).sum},
		"lpwd":  {"lpwd", "print the local directory", (*Shell).lpwd},
		"lcd":   {"lcd DIR", "change the local directory", (*Shell).lcd},
		"lls":   {"lls [PATH]", "list local files", (*Shell).lls},
		"!":     {"!COMMAND", "run COMMAND on the remote side, in the remote directory", nil},
		"exit":  {"exit", "end the session (also quit, bye, Ctrl-D)", nil},
	}
}

func (sh *Shell) help([]string) error {
	tw := tabwriter.NewWriter(sh.Out, 0, 4, 2, ' ', 0)
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

func (sh *Shell) pwd([]string) error {
	fmt.Fprintln(sh.Out, termsafe.String(sh.FS.Getwd()))
	return nil
}

func (sh *Shell) cd(args []string) error {
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
	before := sh.FS.Getwd()
	if _, err := sh.FS.Chdir(sh.ctx, target); err != nil {
		return err
	}
	sh.prevDir = before
	return nil
}

func (sh *Shell) ls(args []string) error {
	opt, args, err := flags(args, "al")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		args = []string{"."}
	}
	var errs []error
	for i, a := range args {
		entries, err := sh.FS.ReadDir(sh.ctx, sh.remote(a))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(args) > 1 {
			if i > 0 {
				fmt.Fprintln(sh.Out)
			}
			fmt.Fprintf(sh.Out, "%s:\n", termsafe.String(a))
		}
		shown := entries[:0:0]
		width := 1
		for _, fi := range entries {
			if strings.HasPrefix(fi.Name, ".") && !opt['a'] {
				continue
			}
			shown = append(shown, fi)
			width = max(width, len(strconv.FormatUint(fi.Size, 10)))
		}
		// As ls -l: sizes aligned on the right, names on the left.
		for _, fi := range shown {
			fmt.Fprintf(sh.Out, "%s %*d %s %s\n", modeString(&fi), width, fi.Size, lsTime(fi.ModTime), lsName(&fi))
		}
	}
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

func (sh *Shell) mkdir(args []string) error {
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
			errs = append(errs, sh.FS.MkdirAll(sh.ctx, sh.remote(a), 0o755))
		} else {
			errs = append(errs, sh.FS.Mkdir(sh.ctx, sh.remote(a), 0o755))
		}
	}
	return errors.Join(errs...)
}

func (sh *Shell) rm(args []string) error {
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
			errs = append(errs, sh.FS.RemoveAll(sh.ctx, sh.remote(a)))
		} else {
			errs = append(errs, sh.FS.Remove(sh.ctx, sh.remote(a)))
		}
	}
	return errors.Join(errs...)
}

func (sh *Shell) mv(args []string) error {
	_, args, err := flags(args, "")
	if err != nil {
		return err
	}
	if len(args) != 2 {
		return errors.New("mv: FROM TO")
	}
	to := sh.remote(args[1])
	if fi, err := sh.FS.Stat(sh.ctx, to); err == nil && fi.IsDir() {
		to += "/" + filepath.Base(args[0])
	}
	return sh.FS.Rename(sh.ctx, sh.remote(args[0]), to)
}

// transferOptions are a get's or put's options, with progress bars when
// the shell has them; wait waits for the bars to be drawn for the last time.
func (sh *Shell) transferOptions(opt map[rune]bool) (o *rexec.TransferOptions, wait func()) {
	o = &rexec.TransferOptions{Recursive: opt['r']}
	if sh.Progress == nil {
		return o, func() {}
	}
	o.Observer, wait = sh.Progress()
	return o, wait
}

func (sh *Shell) get(args []string) error {
	opt, args, err := flags(args, "r")
	if err != nil {
		return err
	}
	if len(args) < 1 || len(args) > 2 {
		return errors.New("get: REMOTE [LOCAL]")
	}
	local := sh.LocalDir
	if len(args) == 2 {
		local = sh.local(args[1])
	}
	o, wait := sh.transferOptions(opt)
	var st *rexec.TransferStats
	sh.cooked(func() {
		st, err = sh.Client.Get(sh.ctx, sh.remote(args[0]), local, o)
		wait()
	})
	sh.summary(st, "received")
	return err
}

func (sh *Shell) put(args []string) error {
	opt, args, err := flags(args, "r")
	if err != nil {
		return err
	}
	if len(args) < 1 || len(args) > 2 {
		return errors.New("put: LOCAL [REMOTE]")
	}
	remote := sh.FS.Getwd()
	if len(args) == 2 {
		remote = sh.remote(args[1])
	}
	o, wait := sh.transferOptions(opt)
	var st *rexec.TransferStats
	sh.cooked(func() {
		st, err = sh.Client.Put(sh.ctx, []string{sh.local(args[0])}, remote, o)
		wait()
	})
	sh.summary(st, "sent")
	return err
}

// summary says what a transfer moved; verb is "received" or "sent".
func (sh *Shell) summary(st *rexec.TransferStats, verb string) {
	if st == nil || st.Files+st.Dirs == 0 {
		return
	}
	msg := fmt.Sprintf("%d file(s) verified (%s), %s %s", st.Files, st.Hash, units.Bytes(st.Bytes, " "), verb)
	if st.Resumed > 0 {
		msg += fmt.Sprintf(", %s resumed", units.Bytes(st.Resumed, " "))
	}
	fmt.Fprintln(sh.Out, msg)
}

func (sh *Shell) sum(args []string) error {
	_, args, err := flags(args, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range args {
		sum, _, err := sh.FS.Checksum(sh.ctx, sh.remote(a))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(sh.Out, "%s  %s\n", termsafe.String(sum), termsafe.String(a))
	}
	return errors.Join(errs...)
}

func (sh *Shell) lpwd([]string) error {
	fmt.Fprintln(sh.Out, sh.LocalDir)
	return nil
}

func (sh *Shell) lcd(args []string) error {
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
	sh.LocalDir = d
	return nil
}

func (sh *Shell) lls(args []string) error {
	d := sh.LocalDir
	if len(args) > 0 {
		d = sh.local(args[0])
	}
	entries, err := os.ReadDir(d)
	if err != nil {
		return fmt.Errorf("lls: %w", err)
	}
	tw := tabwriter.NewWriter(sh.Out, 0, 4, 1, ' ', tabwriter.AlignRight)
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
func (sh *Shell) remoteCommand(line string) error {
	if line == "" {
		return errors.New("!: which command?")
	}
	s, err := sh.Client.NewSession()
	if err != nil {
		return err
	}
	// The terminal is back in its normal mode while the command runs, so
	// its output goes straight to stdout and stderr.
	s.Stdout, s.Stderr = sh.Stdout, sh.Stderr
	s.Dir = sh.FS.Getwd() // "~/a", or an absolute path: -C takes both
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
