package rexec

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// JobInfo describes a job in a listing (Client.Jobs).
type JobInfo struct {
	ID string
	// Argv or Shell is the command, as it was started.
	Argv  []string
	Shell string
	PID   int
	// Detached: started by Detach; otherwise a command whose client was
	// lost and that waits for it to come back.
	Detached bool
	// State is "running", "waiting" (a lost client may come back), or
	// "exited".
	State string
	// Start and End (zero while it runs) are when the command started
	// and ended.
	Start, End time.Time
	// Exit is how it ended, once State is "exited".
	Exit *Exit
	// Stdout and Stderr are the bytes each stream has had so far.
	Stdout, Stderr uint64
	// Full says that the command waits because its output reached the
	// daemon's bound and nobody has taken it.
	Full bool
}

// jobInfoOf is the listing's line m for a client.
func jobInfoOf(m *frame.JobInfo) JobInfo {
	j := JobInfo{ID: m.ID, Argv: m.Argv, Shell: m.Shell, PID: m.PID, Detached: m.Detached, State: m.State,
		Start: time.Unix(0, m.StartNS), Stdout: m.Stdout, Stderr: m.Stderr, Full: m.Full}
	if m.EndNS != 0 {
		j.End = time.Unix(0, m.EndNS)
	}
	if m.Exit != nil {
		j.Exit = exitOf(m.Exit)
	}
	return j
}

// Detach starts argv on the daemon as a job detached from any connection
// and returns its id: the command runs until it exits, its stdin empty,
// its output kept from the start for Attach (up to the daemon's bound).
// Dir, Timeout, Encoding and Setenv apply; the streams do not.
func (s *Session) Detach(ctx context.Context, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("rexec: no command")
	}
	return s.detach(ctx, &frame.OpenMsg{Argv: argv})
}

// DetachShell is Detach for a command line run by the daemon's shell.
func (s *Session) DetachShell(ctx context.Context, cmdline string) (string, error) {
	if cmdline == "" {
		return "", errors.New("rexec: empty command line")
	}
	return s.detach(ctx, &frame.OpenMsg{Shell: cmdline})
}

func (s *Session) detach(ctx context.Context, m *frame.OpenMsg) (string, error) {
	m.Detach = true
	if err := s.execOpen(m); err != nil {
		return "", err
	}
	ch, err := s.c.open(ctx, m, func(ch *mux.Channel) { ch.Sends(frame.Stdin) })
	if err != nil {
		return "", err
	}
	ch.Finish()
	job := ch.OpenOK().Job
	if job == "" {
		return "", errors.New("rexec: the daemon did not detach the command")
	}
	return job, nil
}

// Attach streams a job the daemon keeps (a detached one, or one whose
// connection was lost) from the given offsets of its stdout and stderr,
// as Start does for a new command: Wait returns its exit. With Reconnect
// set, a lost connection is resumed too. Stdin, when set, is sent to a
// command that has not had the end of its stdin.
func (s *Session) Attach(ctx context.Context, job string, stdout, stderr int64) error {
	if err := s.begin(); err != nil {
		return err
	}
	s.job = job
	s.written[0].Store(stdout)
	s.written[1].Store(stderr)
	s.stdinLog = newStdinLog(2 * mux.DefaultChunk)
	if s.Stdin == nil {
		s.stdinLog.eof = true
	}
	if err := s.attach(ctx, s.c, false); err != nil {
		return err
	}
	if s.Stdin != nil {
		go s.stdinLog.fill(s.Stdin) // not waited for: a Read of the local stdin may never return
	}
	s.stopCtx = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cancelled = ctx.Err()
		s.mu.Unlock()
		s.abandon()
	})
	s.supervised = make(chan struct{})
	close(s.started)
	go s.supervise(ctx)
	return nil
}

// Written returns the offsets of stdout and stderr the session has
// delivered: where an Attach goes on from.
func (s *Session) Written() (stdout, stderr int64) { return s.written[0].Load(), s.written[1].Load() }

// Jobs lists the user's jobs on the daemon: detached ones, and commands
// whose connection was lost and that wait for their client.
func (c *Client) Jobs(ctx context.Context) ([]JobInfo, error) {
	var list []JobInfo
	err := c.jobs(ctx, &frame.JobsRequest{}, func(line []byte) error {
		var in frame.JobInfo
		if err := json.Unmarshal(line, &in); err != nil {
			return fmt.Errorf("rexec: a jobs line: %w", err)
		}
		list = append(list, jobInfoOf(&in))
		return nil
	})
	return list, err
}

// KillJob sends sig (TERM when empty) to a job's process group; a job
// that has exited is removed from the daemon's list instead.
func (c *Client) KillJob(ctx context.Context, job string, sig Signal) error {
	if job == "" {
		return errors.New("rexec: kill: no job id")
	}
	return c.jobs(ctx, &frame.JobsRequest{Kill: job, Signal: string(sig)}, func([]byte) error { return nil })
}

func (c *Client) jobs(ctx context.Context, req *frame.JobsRequest, line func([]byte) error) error {
	m := &frame.OpenMsg{Kind: frame.KindJobs, Window: c.window, Jobs: req}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("rexec: %w", err)
	}
	var out *mux.Inbound
	exited := make(chan struct{})
	ch, err := c.open(ctx, m, func(ch *mux.Channel) {
		out = ch.Inbound(frame.Stdout, c.window)
		ch.OnControl(frame.Exit, mux.On(func(ch *mux.Channel, _ *frame.ExitMsg) error {
			close(exited)
			ch.Finish()
			return nil
		}))
	})
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if err := line(sc.Bytes()); err != nil {
			ch.Close(err)
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return c.channelErr(ch)
	}
	select {
	case <-exited:
		return nil
	case <-ch.Done():
		select {
		case <-exited:
			return nil
		default:
		}
		return c.channelErr(ch)
	case <-ctx.Done():
		ch.Close(ctx.Err())
		return ctx.Err()
	}
}
