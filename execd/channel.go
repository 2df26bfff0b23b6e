package execd

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/asuser"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/proc"
	"github.com/execd-project/execd/internal/xfer"
)

// openExec is the handler of exec channels: it starts the command the
// open asks for, as the connection's account, confirms the channel with
// the command's pid (and job id, when resumable) and streams it.
func (c *serverConn) openExec(nc mux.NewChannel) {
	if m := nc.OpenMsg(); m.Detach {
		if c.srv.ResumeGrace < 0 {
			c.reject(nc, frame.CodeNotSupported, "this daemon keeps no commands apart from their connection (--resume-grace 0)")
			return
		}
		if limit := c.srv.channelLimit(c.account()); c.srv.detachedJobs(c.account()) >= limit {
			c.reject(nc, frame.CodeUserLimit, fmt.Sprintf("%d detached jobs already (running, or exited and kept): the most allowed; rexec kill removes an exited one", limit))
			return
		}
		if used, limit, full := c.srv.jobDiskFull(c.account()); full {
			c.reject(nc, frame.CodeNoSpace, fmt.Sprintf("your detached jobs keep %d bytes on disk, their bound of %d (--job-disk): a new one could keep none of its output; rexec kill removes an exited one", used, limit))
			return
		}
	}
	j, err := c.startCommand(nc)
	if err != nil {
		c.reject(nc, frame.CodeExecFailed, err.Error())
		return
	}
	if j.detached {
		// No channel streams it: the open_ok gives its id, and its stdin
		// is empty, as with nohup's < /dev/null.
		j.saveRecord()
		_, _ = nc.Accept(&frame.OpenOKMsg{Window: 1, PID: j.pid, Encoding: j.encoding, Job: j.id})
		j.start()
		go j.endStdin(nil)
		nc.Finish()
		return
	}
	b := j.newBinding(c, nc, [2]int64{})
	j.bind(b)
	// A failed confirmation means the connection is gone: the binding's
	// end detaches it, and the command ends or waits for an attach.
	_, _ = nc.Accept(&frame.OpenOKMsg{Window: b.stdin.Window(), PID: j.pid, Encoding: j.encoding, Job: j.id})
	j.start()
	c.wg.Add(1)
	go b.serve()
}

// startCommand starts the command of an exec open as a job.
func (c *serverConn) startCommand(nc mux.NewChannel) (*job, error) {
	s, m, id := c.srv, nc.OpenMsg(), nc.ID()
	acct := c.account()
	argv0 := "shell"
	if len(m.Argv) > 0 {
		argv0 = m.Argv[0]
	}
	if acct.noAccount != nil {
		return nil, acct.noAccount
	}
	dir, err := acct.workDir(m.Dir)
	if err != nil {
		return nil, err
	}
	env := s.commandEnv(c, acct, m)
	encoding, err := s.outputEncoding(m.Encoding, m.Pty != nil)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(m.TimeoutMS) * time.Millisecond
	if limit := time.Duration(acct.user.CommandTimeout); limit > 0 && (timeout == 0 || timeout > limit) {
		timeout = limit
	}
	p, err := proc.Start(proc.Spec{Argv: m.Argv, Shell: m.Shell, ShellPath: acct.shell(), Env: env, Dir: dir, Pty: m.Pty, Cred: acct.procCred(), Keeper: s.Keeper.proc()})
	if err != nil {
		return nil, acct.whyNotStarted(dir, err)
	}
	resumable := (m.Resume || m.Detach) && s.ResumeGrace >= 0
	j, err := s.newJob(acct, c.log, p, m.Pty != nil, resumable, m.Detach, m.Window)
	if err != nil {
		p.Terminate(0)
		go func() { // reaped; its output is nobody's
			p.CloseOutput()
			p.Wait()
			p.Release()
		}()
		return nil, err
	}
	j.timeout, j.argv0, j.encoding, j.argv, j.shell = timeout, argv0, encoding, m.Argv, m.Shell
	j.audit = &AuditEvent{Event: "exec", User: acct.user.Name, Addr: c.nc.RemoteAddr().String(), Argv: m.Argv, Shell: m.Shell, Dir: dir, Pty: m.Pty != nil, PID: p.Pid(), Job: j.id}
	if acct.hasQuota() {
		s.quotas.get(acct.home).markDirty() // a command may write anywhere in the home
	}
	j.audit.Start = ptr(j.started.UTC())
	s.Audit.Log(j.audit)
	s.Metrics.commandStarted()
	c.log.Info("command started", "channel", id, "argv0", argv0, "args", max(len(m.Argv)-1, 0),
		"shell", m.Shell != "", "pty", m.Pty != nil, "dir", dir, "pid", p.Pid(), "job", j.id)
	return j, nil
}

// workDir resolves the working directory a client asked for, as file
// paths are: a confined user's inside the home (no absolute path, no ".."
// above it, no symlink leading out), another's anywhere the account may
// enter. Empty is the home.
func (a *account) workDir(req string) (string, error) {
	if req == "" {
		return a.home, nil
	}
	p, err := a.resolve(a.startDir(), req)
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	fsys, err := a.files()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	defer fsys.Close()
	fi, err := fsys.Stat(p)
	if err != nil {
		return "", fmt.Errorf("working directory: %s", xfer.ErrorFor(p, err).Message)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("working directory %s: not a directory", xfer.Display(p))
	}
	if !a.confined {
		return p, nil
	}
	return filepath.Join(a.home, filepath.FromSlash(p)), nil
}

// mergeEnv appends extra KEY=VALUE entries to base, later keys replacing earlier ones.
func mergeEnv(base, extra []string) []string {
	out := make([]string, 0, len(base)+len(extra))
	idx := make(map[string]int, len(base)+len(extra))
	for _, kv := range append(append([]string(nil), base...), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// whyNotStarted words a failed start: a permission error is often the
// working directory, which the account may not enter (the home of a
// run_as account under a private directory), and the bare error would
// blame the program.
func (a *account) whyNotStarted(dir string, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	if cerr := asuser.Do(a.cred, func() error { return canEnter(dir) }); cerr != nil {
		who := a.os.Name
		if who == "" {
			who = "the account"
		}
		return fmt.Errorf("working directory %s: %s may not enter it (%v)", dir, who, errors.Unwrap(cerr))
	}
	return err
}
