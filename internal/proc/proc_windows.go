package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/execd-project/execd/frame"
)

// Credential is the OS account a command runs as: Windows commands run as
// the daemon's account (run_as is refused there).
type Credential struct{}

// process is a started command in its own Job Object, so that ending it
// ends every process it started, and in its own console process group, so
// that it can be sent Ctrl+Break.
type Process struct {
	cmd *exec.Cmd
	job windows.Handle
	// Stdout and Stderr are the command's output (Stdout alone, merged,
	// on a pty); Stdin its input.
	Stdout io.ReadCloser
	Stderr io.ReadCloser
	Stdin  io.Writer
	inPipe *os.File

	mu     sync.Mutex
	exited bool
	killT  *time.Timer
	closed bool
}

// comspec is the command interpreter: %ComSpec%, else cmd.exe.
func comspec() string {
	if c := os.Getenv("ComSpec"); c != "" {
		return c
	}
	return "cmd.exe"
}

// Start starts the command of spec in a group of its own.
func Start(spec Spec) (*Process, error) {
	if spec.Pty != nil {
		return nil, errors.New("a pty (-t) is not available on this Windows daemon yet: run the command without -t")
	}
	if spec.Cred != nil {
		return nil, errors.New("run_as is not supported on Windows")
	}
	var cmd *exec.Cmd
	if spec.Shell != "" {
		// cmd.exe parses its own command line: give it the line exactly as
		// typed. /S /C "line" strips only the outer quotes; /D skips AutoRun.
		cs := comspec()
		cmd = exec.Command(cs)
		cmd.SysProcAttr = &syscall.SysProcAttr{CmdLine: syscall.EscapeArg(cs) + ` /D /S /C "` + spec.Shell + `"`}
	} else {
		cmd = exec.Command(spec.Argv[0], spec.Argv[1:]...) // argv: Go's quoting, as CommandLineToArgvW reads it
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_NEW_PROCESS_GROUP
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir

	pp, err := newPipes()
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pp.inR, pp.outW, pp.errW

	job, err := newJob()
	if err != nil {
		pp.closeAll()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		pp.closeAll()
		_ = windows.CloseHandle(job)
		return nil, err
	}
	// Between Start and here the command could start a child outside the
	// job: a window of microseconds, before it has read anything.
	if h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(cmd.Process.Pid)); err == nil {
		_ = windows.AssignProcessToJobObject(job, h) // best effort: without it, KILL ends the leader only
		_ = windows.CloseHandle(h)
	}
	pp.closeChildEnds()
	return &Process{cmd: cmd, job: job, Stdout: pp.outR, Stderr: pp.errR, Stdin: pp.inW, inPipe: pp.inW}, nil
}

// newJob makes a Job Object whose processes all end when it is closed.
func newJob() (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, fmt.Errorf("job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		_ = windows.CloseHandle(job)
		return 0, fmt.Errorf("job object: %w", err)
	}
	return job, nil
}

// Pid is the group leader's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal maps a named signal to what Windows offers: INT and BREAK-like
// signals become Ctrl+Break to the command's process group; TERM, HUP and
// KILL end the whole job.
func (p *Process) Signal(name string) error {
	switch name {
	case "INT", "QUIT":
		return windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid()))
	case "TERM", "HUP", "KILL":
		return p.killJob()
	}
	return fmt.Errorf("signal %s has no equivalent on Windows", name)
}

// killJob ends every process of the job.
func (p *Process) killJob() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	return windows.TerminateJobObject(p.job, 1)
}

// Terminate asks politely (Ctrl+Break) and ends the job after grace.
func (p *Process) Terminate(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killT != nil {
		return
	}
	_ = windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid())) // best effort: a service has no console
	p.killT = time.AfterFunc(grace, func() { _ = p.killJob() })
}

// Resize sets the size of the command's pty.
func (p *Process) Resize(cols, rows uint16) error { return errors.New("no pty on this channel") }

func (p *Process) StdinEOF() { _ = p.inPipe.Close() } // best effort

// ExitState is how the command ended.
type ExitState struct {
	code int64
	err  error
}

func (p *Process) Wait() ExitState {
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil
	}
	code := int64(0)
	if p.cmd.ProcessState != nil {
		code = int64(uint32(p.cmd.ProcessState.ExitCode()))
	}
	return ExitState{code: code, err: err}
}

// ExitMsg is the exit frame for this state after d.
func (st ExitState) ExitMsg(d time.Duration) *frame.ExitMsg {
	m := &frame.ExitMsg{Code: st.code, DurationMS: d.Milliseconds()}
	if st.err != nil {
		m.Message = st.err.Error()
	}
	return m
}

func (p *Process) CloseOutput() {
	_ = p.Stdout.Close() // best effort
	if p.Stderr != nil {
		_ = p.Stderr.Close()
	}
}

// Release closes the job (ending anything left in it) and every handle.
func (p *Process) Release() {
	p.mu.Lock()
	if p.killT != nil {
		p.killT.Stop()
	}
	if !p.closed {
		p.closed = true
		_ = windows.CloseHandle(p.job) // KILL_ON_JOB_CLOSE: nothing outlives the command
	}
	p.mu.Unlock()
	p.CloseOutput()
	_ = p.inPipe.Close()
}
