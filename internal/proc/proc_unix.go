//go:build unix

package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/execd-project/execd/frame"
)

// Credential is the OS account a command runs as.
type Credential = syscall.Credential

// process is a started command in its own process group (or, with a pty,
// its own session). Every signal goes to the whole group.
type Process struct {
	cmd  *exec.Cmd
	pgid int
	tty  *os.File // pty master, nil without a pty
	// Stdout and Stderr are the command's output (Stdout alone, merged,
	// on a pty); Stdin its input.
	Stdout io.ReadCloser
	Stderr io.ReadCloser
	Stdin  io.Writer
	inPipe *os.File // our end of the stdin pipe, nil with a pty

	keeper *Keeper
	cg     *cgroup // nil without a keeper's cgroups
	gone   sync.Once

	mu     sync.Mutex
	exited bool
	killT  *time.Timer
}

// shellArgv runs a command line through the platform shell.
func shellArgv(shell, line string) []string {
	if shell == "" {
		shell = "/bin/sh"
	}
	return []string{shell, "-c", line}
}

// Start starts the command of spec in a group of its own.
func Start(spec Spec) (*Process, error) {
	argv := spec.Argv
	if spec.Shell != "" {
		argv = shellArgv(spec.ShellPath, spec.Shell)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: spec.Cred}
	setDeathSignal(cmd.SysProcAttr)
	var cg *cgroup
	if spec.Keeper != nil {
		var err error
		if cg, err = spec.Keeper.cg.create(); err != nil {
			return nil, err
		}
		cg.attach(cmd.SysProcAttr)
	}
	p, err := start(cmd, spec)
	cg.started()
	if err != nil {
		_ = cg.remove()
		return nil, err
	}
	p.keeper, p.cg = spec.Keeper, cg
	if cg == nil && p.tty != nil {
		spec.Keeper.tell("s", p.pgid) // the session: a shell's jobs have groups of their own
	} else if cg == nil {
		spec.Keeper.tell("+", p.pgid)
	}
	return p, nil
}

// start starts cmd, made ready by Start, with a pty or pipes.
func start(cmd *exec.Cmd, spec Spec) (*Process, error) {
	if spec.Pty != nil {
		size := &pty.Winsize{Rows: spec.Pty.Rows, Cols: spec.Pty.Cols}
		if size.Rows == 0 || size.Cols == 0 {
			size = &pty.Winsize{Rows: 24, Cols: 80}
		}
		tty, err := pty.StartWithSize(cmd, size) // Setsid + Setctty: the session is the group
		if err != nil {
			return nil, err
		}
		if tty, err = pollable(tty); err != nil {
			_ = cmd.Process.Kill() // best effort: reaped by Wait
			_ = cmd.Wait()
			return nil, err
		}
		return &Process{cmd: cmd, pgid: cmd.Process.Pid, tty: tty, Stdout: tty, Stdin: tty}, nil
	}
	pp, err := newPipes()
	if err != nil {
		return nil, err
	}
	growPipe(pp.outR)
	growPipe(pp.errR)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pp.inR, pp.outW, pp.errW
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		pp.closeAll()
		return nil, err
	}
	// The child holds its own copies now.
	pp.closeChildEnds()
	return &Process{cmd: cmd, pgid: cmd.Process.Pid, Stdout: pp.outR, Stderr: pp.errR, Stdin: pp.inW, inPipe: pp.inW}, nil
}

// Pid is the group leader's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal delivers a named signal (frame.SignalNames) to the process group.
func (p *Process) Signal(name string) error {
	if !slices.Contains(frame.SignalNames(), name) {
		return fmt.Errorf("unknown signal %q", name)
	}
	sig := unix.SignalNum("SIG" + name)
	if sig == 0 {
		return fmt.Errorf("signal %s does not exist on this system", name)
	}
	return p.killGroup(sig)
}

// killGroup delivers sig to the process group alone.
func (p *Process) killGroup(sig syscall.Signal) error {
	err := syscall.Kill(-p.pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // the whole group is gone already
	}
	return err
}

// kill delivers sig to the process group; with a pty, to every process
// group of the terminal's session (a shell's background jobs included),
// as a hangup of the terminal would reach them; with a cgroup, to every
// process in it.
func (p *Process) kill(sig syscall.Signal) error {
	err := p.killGroup(sig)
	p.cg.signal(sig) // everything the command started, setsid children included
	if p.tty != nil {
		for _, g := range sessionGroups(p.pgid) {
			if g != p.pgid {
				_ = syscall.Kill(-g, sig) // best effort: it may be gone
			}
		}
	}
	return err
}

// alive reports whether anything of the group (with a pty: the session)
// is left.
func (p *Process) alive() bool {
	if !errors.Is(syscall.Kill(-p.pgid, 0), syscall.ESRCH) || p.cg.populated() {
		return true
	}
	return p.tty != nil && len(sessionGroups(p.pgid)) > 0
}

// Terminate sends TERM to the group and KILL after grace. Calling it
// again does not restart the grace period.
func (p *Process) Terminate(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killT != nil {
		return
	}
	if p.tty != nil {
		// Hang up the terminal's session, as sshd's closing of the pty
		// does: HUP to every group of it, not only the foreground one.
		_ = p.kill(syscall.SIGHUP)
	}
	_ = p.kill(syscall.SIGTERM) // best effort: ESRCH means nothing is left
	// A stopped process ignores TERM until continued.
	_ = p.kill(syscall.SIGCONT)
	p.killT = time.AfterFunc(grace, func() {
		_ = p.kill(syscall.SIGKILL)
		p.forget()
	})
}

// Resize sets the size of the command's pty.
func (p *Process) Resize(cols, rows uint16) error {
	if p.tty == nil {
		return errors.New("no pty on this channel")
	}
	// Through SyscallConn, not pty.Setsize, whose Fd call would make the
	// master blocking again.
	rc, err := p.tty.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		return err
	}
	return ierr
}

// pollable returns a pty master the runtime's poller serves: creack/pty
// calls Fd on it, which puts it in blocking mode for good, and then
// closing it no longer ends a pending read (a process that escaped with
// the terminal would hold the exit back). The descriptor is duplicated,
// set non-blocking, and the original closed.
func pollable(tty *os.File) (*os.File, error) {
	defer tty.Close()
	fd, err := unix.Dup(int(tty.Fd()))
	if err != nil {
		return nil, fmt.Errorf("pty: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("pty: %w", err)
	}
	return os.NewFile(uintptr(fd), tty.Name()), nil
}

// StdinEOF passes the end of stdin on: a closed pipe, or the terminal's
// end-of-file character on a pty.
func (p *Process) StdinEOF() {
	if p.tty != nil {
		_, _ = p.tty.Write([]byte{4}) // ^D: best effort
		return
	}
	_ = p.inPipe.Close() // best effort
}

// ExitState is how the group leader ended.
type ExitState struct {
	ws  syscall.WaitStatus
	err error
}

// Wait waits for the group leader to exit.
func (p *Process) Wait() ExitState {
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil
	}
	return ExitState{ws: ws, err: err}
}

// ExitMsg is the exit frame for this state after d.
func (st ExitState) ExitMsg(d time.Duration) *frame.ExitMsg {
	m := &frame.ExitMsg{DurationMS: d.Milliseconds()}
	switch {
	case st.ws.Signaled():
		m.Code = -1
		m.Signal = strings.TrimPrefix(unix.SignalName(st.ws.Signal()), "SIG")
		if m.Signal == "" {
			m.Signal = fmt.Sprintf("SIG%d", int(st.ws.Signal()))
		}
		m.CoreDumped = st.ws.CoreDump()
	default:
		m.Code = int64(st.ws.ExitStatus() & 0xff)
	}
	if st.err != nil {
		m.Message = st.err.Error()
	}
	return m
}

// CloseOutput unblocks readers of the output when something that escaped
// the group still holds it open.
func (p *Process) CloseOutput() {
	_ = p.Stdout.Close() // best effort
	if p.Stderr != nil {
		_ = p.Stderr.Close()
	}
}

// forget removes the command's cgroup and tells the keeper its group is
// gone, once nothing of it is left (after KILL: the kernel's moment).
func (p *Process) forget() {
	p.gone.Do(func() {
		_ = p.cg.remove() // best effort: a cgroup left busy goes with the keeper's
		if p.cg == nil {
			p.keeper.tell("-", p.pgid)
		}
	})
}

// Release closes every descriptor the daemon holds for the process, and
// cancels the pending KILL when nothing of the group is left.
func (p *Process) Release() {
	p.mu.Lock()
	if !p.alive() {
		if p.killT != nil {
			p.killT.Stop()
		}
		defer p.forget()
	}
	p.mu.Unlock()
	p.CloseOutput()
	if p.inPipe != nil {
		_ = p.inPipe.Close() // best effort
	}
}
