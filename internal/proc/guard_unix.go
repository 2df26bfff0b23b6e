//go:build unix

package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The guard's protocol, one line each on its stdin:
//
//	cgroup DIR   the keeper's cgroup, to end and remove
//	+ PGID       a command's process group was started
//	s SID        a command's terminal session was started (with a pty):
//	             every process group in it is the command's
//	- ID         that group or session is gone
//
// At the end of its stdin the guard kills what it knows of and exits.

// guard is the daemon's end of the guard process. Nil: no guard.
type guard struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	w    *os.File
	done chan struct{}
}

func startGuard(argv []string, cg *cgroupRoot, stderr io.Writer) (*guard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = r
	cmd.Stderr = stderr
	// Its own process group: a Ctrl-C at the daemon's terminal is not for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, err
	}
	_ = r.Close()
	g := &guard{cmd: cmd, w: w, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(g.done) }()
	if cg != nil {
		g.send("cgroup " + cg.dir)
	}
	return g, nil
}

func (g *guard) pid() int { return g.cmd.Process.Pid }

// send writes one line; a guard that died is not the command's problem.
func (g *guard) send(line string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.w != nil {
		_, _ = g.w.WriteString(line + "\n") // best effort: the guard's death is logged by the daemon's status
	}
}

// close lets the guard go: it finds nothing left and exits.
func (g *guard) close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	_ = g.w.Close()
	g.w = nil
	g.mu.Unlock()
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
		return fmt.Errorf("guard process %d did not exit", g.pid())
	}
	return nil
}

// RunGuard is the guard process's work: it reads in (the pipe from the
// daemon) until its end, which comes when the daemon exits or dies, then
// ends what is left of the daemon's commands. Terminal and stop signals
// are ignored: the end of the pipe is its only cue.
func RunGuard(in io.Reader, stderr io.Writer) error {
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	var root string
	live := map[int]string{} // by id: "+" a group, "s" a session
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		op, arg, _ := strings.Cut(sc.Text(), " ")
		id, err := strconv.Atoi(arg)
		switch {
		case op == "cgroup":
			root = arg
		case err != nil || id <= 1:
		case op == "+" || op == "s":
			live[id] = op
		case op == "-":
			delete(live, id)
		}
	}
	for id, kind := range live {
		_ = unix.Kill(-id, unix.SIGKILL) // best effort: it may be gone
		if kind == "s" {
			for _, g := range sessionGroups(id) { // a shell's jobs, each a group
				_ = unix.Kill(-g, unix.SIGKILL)
			}
		}
	}
	if root != "" {
		if _, err := os.Stat(root); err == nil {
			if err := (&cgroupRoot{dir: root}).close(); err != nil {
				fmt.Fprintln(stderr, "execd guard:", err)
				return err
			}
		}
	}
	return nil
}
