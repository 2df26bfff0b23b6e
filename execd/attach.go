package execd

import (
	"fmt"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// openAttach is the handler of attach channels: it finds the user's
// resumable job, takes it over from the channel that streamed it (if the
// daemon has not noticed yet that its connection is gone), and streams
// it from the offsets the client asks for.
func (c *serverConn) openAttach(nc mux.NewChannel) {
	m := nc.OpenMsg()
	j := c.srv.findJob(m.Attach.Job, c.account())
	if j == nil {
		c.reject(nc, frame.CodeNoSuchJob, fmt.Sprintf("no command %s to attach to: it ended and was delivered, its grace period is over, or the daemon restarted since (a restart ends every command but detached jobs)", m.Attach.Job))
		return
	}
	j.attachMu.Lock()
	defer j.attachMu.Unlock()
	from := [2]int64{int64(m.Attach.Stdout), int64(m.Attach.Stderr)}
	if err := j.checkOffsets(from); err != nil {
		c.reject(nc, frame.CodeOffsetGone, err.Error()) // before the channel streaming it is touched
		return
	}
	j.mu.Lock()
	old := j.bound
	j.mu.Unlock()
	if old != nil {
		// The old channel is told why it ends (a close frame is the
		// client's to send, not the daemon's).
		old.takenOver.Store(true)
		old.halt(errTakenOver)
		old.ch.Fail(frame.CodeTakenOver, errTakenOver.Error())
		waited := make(chan struct{})
		go func() { old.pumps.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(2 * time.Second):
			// Its connection is stuck in a write: end it.
			old.c.abort(errTakenOver)
			<-waited
		}
		j.unbind(old, errTakenOver)
	}
	if err := j.checkOffsets(from); err != nil {
		c.reject(nc, frame.CodeOffsetGone, err.Error())
		j.unbindRefused()
		return
	}
	for i, sp := range j.out {
		if sp != nil && !j.detached {
			sp.ack(from[i]) // the client has written what is before: an acknowledgement
		}
	}
	b := j.newBinding(c, nc, from)
	j.bind(b)
	j.mu.Lock()
	ok := &frame.OpenOKMsg{Window: b.stdin.Window(), PID: j.pid, Encoding: j.encoding, Job: j.id,
		StdinOffset: uint64(j.stdinOff), StdinEOF: j.stdinEOF}
	j.mu.Unlock()
	_, _ = nc.Accept(ok)
	c.log.Info("command attached", "job", j.id, "pid", j.pid, "stdout", from[0], "stderr", from[1], "stdin", ok.StdinOffset)
	c.srv.Audit.Log(&AuditEvent{Event: "attach", User: c.account().user.Name, Addr: c.nc.RemoteAddr().String(), Job: j.id, PID: j.pid})
	if m.Pty != nil && m.Pty.Cols > 0 && m.Pty.Rows > 0 {
		// As tmux does on attach: the new size, and a SIGWINCH even when
		// the size is the same, so that the program redraws its screen.
		j.resize(m.Pty.Cols, m.Pty.Rows)
		j.signal("WINCH") // best effort: the command may have exited
	}
	c.wg.Add(1)
	go b.serve()
}

// checkOffsets refuses offsets outside what the spools keep.
func (j *job) checkOffsets(from [2]int64) error {
	for i, sp := range j.out {
		if sp == nil {
			continue
		}
		if base, end, _ := sp.bounds(); from[i] < base || from[i] > end {
			return fmt.Errorf("%s offset %d outside what is kept, [%d, %d]", []string{"stdout", "stderr"}[i], from[i], base, end)
		}
	}
	return nil
}

// unbindRefused restarts the grace period of a job an attach could not
// take (the old binding is gone, no new one came).
func (j *job) unbindRefused() {
	b := &binding{}
	j.bind(b)
	j.unbind(b, mux.ErrLost)
}
