package execd

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// info describes the job for a listing.
func (j *job) info() frame.JobInfo {
	j.mu.Lock()
	defer j.mu.Unlock()
	in := frame.JobInfo{ID: j.id, Argv: j.argv, Shell: j.shell, PID: j.pid, Detached: j.detached,
		State: "running", StartNS: j.started.UnixNano()}
	switch {
	case j.exit != nil && j.isDone():
		// Exited once its exit is on record (done): a kill then removes
		// it, as the listing says.
		in.State, in.Exit, in.EndNS = "exited", j.exit, j.ended.UnixNano()
	case j.bound == nil && !j.detached:
		in.State = "waiting"
	}
	for i, sp := range j.out {
		if sp == nil {
			continue
		}
		_, end, _ := sp.bounds()
		if i == 0 {
			in.Stdout = uint64(end)
		} else {
			in.Stderr = uint64(end)
		}
		in.Full = in.Full || sp.full()
	}
	return in
}

// openJobs is the handler of jobs channels: the user's resumable commands
// as JSON lines on stdout, or a signal to one of them (a kill of one that
// has exited removes it).
func (c *serverConn) openJobs(nc mux.NewChannel) {
	m, acct := nc.OpenMsg(), c.account()
	user := acct.user.Name
	if req := m.Jobs; req != nil && req.Kill != "" {
		j := c.srv.findJob(req.Kill, acct)
		if j == nil {
			c.reject(nc, frame.CodeNoSuchJob, fmt.Sprintf("no job %s", req.Kill))
			return
		}
		sig := req.Signal
		if sig == "" {
			sig = "TERM"
		}
		select {
		case <-j.done:
			j.forget()
		default:
			if err := j.p.Signal(sig); err != nil {
				c.reject(nc, frame.CodeExecFailed, fmt.Sprintf("job %s: %v", j.id, err))
				return
			}
		}
		c.srv.Audit.Log(&AuditEvent{Event: "kill", User: user, Addr: c.nc.RemoteAddr().String(), Job: j.id, PID: j.pid, Signal: sig})
		if _, err := nc.Accept(&frame.OpenOKMsg{Window: 1}); err == nil {
			_ = nc.SendJSON(frame.Exit, &frame.ExitMsg{})
		}
		nc.Finish()
		return
	}
	jobs := c.srv.jobsWhere(acct.owns)
	infos := make([]frame.JobInfo, 0, len(jobs))
	for _, j := range jobs {
		infos = append(infos, j.info())
	}
	slices.SortFunc(infos, func(a, b frame.JobInfo) int { return cmp.Compare(a.StartNS, b.StartNS) })
	out := nc.Outbound(frame.Stdout, m.Window)
	if _, err := nc.Accept(&frame.OpenOKMsg{Window: 1}); err != nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer nc.Finish()
		for _, in := range infos {
			line, _ := json.Marshal(in) // a struct of plain fields: cannot fail
			if _, err := out.Write(append(line, '\n')); err != nil {
				return
			}
		}
		if out.Close() == nil {
			_ = nc.SendJSON(frame.Exit, &frame.ExitMsg{})
		}
	}()
}
