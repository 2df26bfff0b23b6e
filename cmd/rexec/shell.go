package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/execd-project/execd/cmd/rexec/internal/fshell"
	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
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

// fileShell is the file shell's terminal side: the session's engine
// (fshell), stdin as a script or a line editor, and the signals.
type fileShell struct {
	*fshell.Shell
	e env
	// restore puts the terminal back as it was (a no-op without one).
	restore func()
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
			if sh.Interrupt(name) {
				continue
			}
			// Idle, waiting for the next line: end the session now.
			sh.restore()
			_ = sh.Client.Close() // best effort
			exit(exitCode(fail(signalStatus(name), "ended by SIG%s", name), sh.e.stderr))
			return
		}
	}
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
	sh := &fileShell{Shell: fshell.New(ctx, client, fsx), e: e, restore: func() {}}
	sh.Out, sh.Stdout, sh.Stderr = e.stdout, e.stdout, e.stderr
	if lcwd, err := os.Getwd(); err == nil {
		sh.LocalDir = lcwd
	}
	done := make(chan struct{})
	defer close(done)
	go sh.watchSignals(done, os.Exit)
	fd, tty := terminalFd(e.stdin)
	if !tty {
		return sh.batch(e.stdin)
	}
	return sh.interactive(ctx, fd, host)
}

func (sh *fileShell) batch(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if quit := sh.Exec(sc.Text()); quit {
			break
		}
	}
	if q := sh.Quit(); q != "" {
		return exitWith(signalStatus(q))
	}
	if sh.Failed() {
		return exitWith(1)
	}
	return nil
}

func (sh *fileShell) interactive(ctx context.Context, fd int, host string) error {
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
	sh.Out = t
	sh.Progress = func() (rexec.Observer, func()) {
		p := newProgress(sh.e.stderr)
		return p, p.Wait
	}
	sh.Cooked = func(f func()) {
		raw, err := term.GetState(fd)
		_ = term.Restore(fd, old) // best effort: output may look odd, nothing is lost
		defer func() {
			if err == nil {
				_ = term.Restore(fd, raw) // back to the editor's raw mode
			}
		}()
		f()
	}
	fmt.Fprintf(t, "Connected to %s (%s). Type help for commands.\n", host, termsafe.String(sh.Client.ServerSoftware()))
	for {
		t.SetPrompt(fmt.Sprintf("%s:%s> ", host, termsafe.String(sh.FS.Getwd())))
		line, err := t.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Past the editor, which would redraw its prompt over it:
				// the shell's own prompt starts on a line of its own.
				_, _ = io.WriteString(sh.e.stdout, "\r\n")
				return nil
			}
			return fail(exitTransport, "terminal: %v", err)
		}
		if quit := sh.Exec(line); quit {
			if q := sh.Quit(); q != "" {
				return exitWith(signalStatus(q))
			}
			return nil
		}
		if _, err := sh.Client.Ping(ctx); err != nil {
			_ = term.Restore(fd, old)
			return fail(exitTransport, "connection lost: %v", err)
		}
	}
}
