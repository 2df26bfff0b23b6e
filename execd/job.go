package execd

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/proc"
)

// Defaults of resumable commands.
const (
	// DefaultResumeGrace is how long a resumable command whose connection
	// was lost keeps running, its output kept, waiting for its client.
	DefaultResumeGrace = 3 * time.Minute
	// DefaultResumeBuffer bounds the output kept per stream of a resumable
	// command that its client has not acknowledged.
	DefaultResumeBuffer = 2 << 20
	// plainBuffer is the output kept per stream of any other command:
	// enough to read ahead of the connection, no more.
	plainBuffer = 8 * spoolChunk
	// DefaultJobBuffer bounds the output kept per stream of a detached
	// job: all of it, from its start, for any attach.
	DefaultJobBuffer = 16 << 20
	// DefaultJobRetention is how long a detached job that has exited
	// stays listed, its output kept, for an attach to read.
	DefaultJobRetention = time.Hour
	// maxResumeBuffer caps what a client's large window can make a
	// resumable command's spool keep.
	maxResumeBuffer = 64 << 20
	// DefaultResumeMemory and DefaultResumeMemoryPerUser bound the output
	// kept in memory for clients, over all resumable commands (and
	// detached jobs without JobDir) of the daemon and of one user: a
	// command past them runs without resumption.
	DefaultResumeMemory        = 1 << 30
	DefaultResumeMemoryPerUser = 128 << 20
)

// Why a command was ended early; sent in the exit message.
var (
	errAbandoned = errors.New("abandoned by the client")
	errTimeLimit = errors.New("time limit reached")
	errTakenOver = errors.New("attached from another connection")
	errGraceOver = errors.New("no client came back within the grace period")
	errJobClosed = errors.New("server closed")
	errCrowded   = errors.New("as many of the user's commands waited for their client already as they may have channels")
)

// job is one command, apart from the channel it is streamed on: its
// process, its output kept in a spool per stream, addressed by offset,
// and how much of its stdin it took. A plain command lives and dies with
// its channel. A resumable one (OpenMsg.Resume) outlives a lost
// connection for the grace period: a new channel (attach) takes it over
// at the offsets its client has written, and the command never notices.
type job struct {
	srv       *Server
	id        string // "" unless resumable
	acct      *account
	log       *slog.Logger
	p         *proc.Process // nil for a job restored from its record
	pid       int
	dir       string    // a detached job's files (Server.JobDir), or ""
	out       [2]*spool // stdout, stderr (nil with a pty: the terminal merges them)
	resumable bool
	detached  bool // started by --detach: no channel owns it; its output is kept from its start
	argv      []string
	shell     string
	started   time.Time
	timeout   time.Duration
	argv0     string
	encoding  string
	audit     *AuditEvent
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
	memory    int64 // reserved from the kept-memory bounds (keptMemory), given back by drop

	ctx    context.Context // ends the command, with why
	cancel context.CancelCauseFunc
	stdinQ chan []byte   // chunks handed to the stdin writer; nil is the end
	exited chan struct{} // closed when the leader has been reaped
	done   chan struct{} // closed once exit is set and the output drained

	attachMu sync.Mutex // one attach at a time takes the job over

	mu       sync.Mutex
	stdinOff int64
	stdinEOF bool
	bound    *binding // the channel streaming it, or nil
	grace    *time.Timer
	exit     *frame.ExitMsg
	ended    time.Time
}

// newJob wraps a started process; resumable jobs get an id and a place
// in the server's table, where attaches find them.
func (s *Server) newJob(acct *account, log *slog.Logger, p *proc.Process, pty, resumable, detached bool, window uint32) (*job, error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	j := &job{
		srv: s, acct: acct, log: log, p: p, pid: p.Pid(), started: time.Now(),
		ctx: ctx, cancel: cancel,
		stdinQ: make(chan []byte), exited: make(chan struct{}), done: make(chan struct{}),
	}
	size := int64(plainBuffer)
	if resumable {
		size = int64(s.ResumeBuffer)
		if size <= 0 {
			size = DefaultResumeBuffer
		}
		// The client acknowledges (grants credit) after half its window:
		// the spool holds at least that much, or both would wait forever.
		if need := int64(window)/2 + 2*spoolChunk; need > size {
			if need > maxResumeBuffer {
				resumable = false // a window this large is not kept: the command runs plain
				size = plainBuffer
			} else {
				size = need
			}
		}
	}
	if detached {
		resumable, size = true, int64(orDefault(s.JobBuffer, DefaultJobBuffer))
	}
	streams := int64(2)
	if pty {
		streams = 1
	}
	if resumable && !(detached && s.JobDir != "") {
		// Kept in memory: the user's and the daemon's bounds decide.
		if why := s.keptMemory(acct).take(size * streams); why != "" {
			if detached {
				return nil, fmt.Errorf("%s: no detached job can be kept now (one ends, or is removed with rexec kill, to make room)", why)
			}
			j.log.Info("command runs without resumption: no room to keep its output", "why", why)
			resumable, size = false, plainBuffer
		} else {
			j.memory = size * streams
		}
	}
	j.resumable, j.detached = resumable, detached
	j.out[0] = newSpool(size)
	if !pty {
		j.out[1] = newSpool(size)
	}
	if resumable {
		s.mu.Lock()
		if s.jobs == nil {
			s.jobs = make(map[string]*job)
		}
		for j.id == "" || s.jobs[j.id] != nil {
			var b [8]byte
			_, _ = rand.Read(b[:]) // never fails
			j.id = hex.EncodeToString(b[:])
		}
		s.jobs[j.id] = j
		s.mu.Unlock()
	}
	if detached && s.JobDir != "" {
		if err := j.createJobFiles(pty, size); err != nil {
			j.drop()
			return nil, err
		}
	}
	return j, nil
}

// waitingJobs counts the resumable commands of acct (or of all users
// when nil) no channel streams.
func (s *Server) waitingJobs(acct *account) int {
	n := 0
	for _, j := range s.jobsWhere(func(j *job) bool { return !j.detached && (acct == nil || acct.owns(j)) }) {
		if !j.isBound() {
			n++
		}
	}
	return n
}

// channelLimit is the most channels acct may have open: the user's
// limit, else the daemon's per connection. It bounds the user's waiting
// commands and detached jobs too.
func (s *Server) channelLimit(acct *account) int {
	return orDefault(acct.user.MaxChannels, orDefault(s.MaxChannels, DefaultMaxChannels))
}

// detachedJobs counts acct's detached jobs, running or kept after their exit.
func (s *Server) detachedJobs(acct *account) int {
	return len(s.jobsWhere(func(j *job) bool { return j.detached && acct.owns(j) }))
}

// findJob returns acct's resumable job id, or nil.
func (s *Server) findJob(id string, acct *account) *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil || !acct.owns(j) {
		return nil
	}
	return j
}

// owns reports whether j is a's: started by the same user, not by an
// earlier one of the same name (User.ID).
func (a *account) owns(j *job) bool {
	return j.acct.user.Name == a.user.Name && j.acct.user.ID == a.user.ID
}

// forget removes the job from the table, and a detached job's files: it
// can no longer be attached.
func (j *job) forget() {
	if j.drop() {
		j.removeFiles()
	}
}

// drop removes the job from the table, keeping a detached job's files
// for the next start (the daemon is ending); it reports whether the job
// was there.
func (j *job) drop() bool {
	if !j.resumable {
		return false
	}
	j.srv.mu.Lock()
	was := j.srv.jobs[j.id] == j
	if was {
		delete(j.srv.jobs, j.id)
	}
	j.srv.mu.Unlock()
	if was && j.memory > 0 {
		j.srv.keptMemory(j.acct).give(j.memory)
	}
	j.mu.Lock()
	if j.grace != nil {
		j.grace.Stop()
	}
	j.mu.Unlock()
	if was {
		j.closeFiles()
	}
	return was
}

// endJobs ends the resumable commands (Server.Close), or only those no
// client is attached to (Server.Shutdown: with the listeners closed, none
// will come back).
func (s *Server) endJobs(cause error, unboundOnly bool) {
	for _, j := range s.jobsWhere(func(*job) bool { return true }) {
		if !unboundOnly || !j.isBound() {
			j.cancel(cause)
		}
	}
}

// dropJobs lets go of the jobs kept after their exit, once the daemon
// has ended: their files are closed (and their locks released) for the
// next start, which lists them again from their records.
func (s *Server) dropJobs() {
	for _, j := range s.jobsWhere(func(*job) bool { return true }) {
		j.drop()
	}
}

// jobsWhere returns the jobs of the table keep selects; keep sees only
// what never changes in a job (it runs under s.mu, which a job's lock
// may not be taken under).
func (s *Server) jobsWhere(keep func(*job) bool) []*job {
	s.mu.Lock()
	defer s.mu.Unlock()
	var jobs []*job
	for _, j := range s.jobs {
		if keep(j) {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// isDone reports whether the job has ended and its exit is handled.
func (j *job) isDone() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// isBound reports whether a channel streams the job.
func (j *job) isBound() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.bound != nil
}

// start runs the job: output into the spools, stdin from the handoff,
// the exit once the command is gone and its output drained.
func (j *job) start() {
	j.srv.wg.Add(1)
	go j.run()
}

func (j *job) run() {
	defer j.srv.wg.Done()
	grace := durOr(j.srv.KillGrace, DefaultKillGrace)
	drained := j.pumpOutput()
	inDone := j.pumpInput()
	st := j.wait(grace)
	if j.detached {
		// Nobody acknowledges a detached job's output: a full spool
		// stays full, and its writer would wait for ever, now or once
		// it reaches the bound with what is left in the pipe.
		for _, sp := range j.out {
			if sp != nil {
				sp.stopWaiting(errSpoolFull)
			}
		}
	}
	// The leader is gone: what is left of its process group would be an
	// orphan. End it, then drain what it wrote.
	j.p.Terminate(grace)
	j.awaitDrain(drained, grace+time.Second)
	j.p.Release()
	<-inDone
	full, starved := false, false
	for _, sp := range j.out {
		if sp == nil || !j.detached {
			continue
		}
		if gave, st := sp.gaveUp(); gave {
			full, starved = true, starved || st
		}
	}
	exit := j.exitMsg(st)
	for _, sp := range j.out {
		if err := sp.writeErrOrNil(); err != nil && exit.Message == "" {
			exit.Message = err.Error()
		}
	}
	switch {
	case exit.Message != "":
	case starved:
		exit.Message = fmt.Sprintf("the user's jobs reached their bound of %d bytes on disk; the rest of its output was not kept", cmp.Or(j.srv.JobDisk, DefaultJobDisk))
	case full:
		exit.Message = fmt.Sprintf("its output reached the job's bound of %d bytes per stream; the rest was not kept", j.out[0].max)
	}
	// Logged and audited before the exit can reach the client: what a
	// client has seen end is on record.
	j.log.Info("command exited", "job", j.id, "pid", j.p.Pid(), "argv0", j.argv0, "code", exit.Code,
		"signal", exit.Signal, "duration_ms", exit.DurationMS, "timed_out", exit.TimedOut)
	j.recordExit(exit)
	j.mu.Lock()
	j.exit, j.ended = exit, time.Now()
	j.mu.Unlock()
	j.saveRecord()
	close(j.done)
	if j.detached && errors.Is(context.Cause(j.ctx), errJobClosed) {
		// The daemon is ending: the job's record and output stay for
		// the next start.
		j.drop()
		return
	}
	if j.detached {
		// Listed, its output kept, for the retention time (or until a
		// kill removes it).
		time.AfterFunc(durOr(j.srv.JobRetention, DefaultJobRetention), j.forget)
		return
	}
	if !j.isBound() && (!j.resumable || j.ctx.Err() != nil) {
		// Nobody is attached, and nobody will be: the exit stays in the
		// audit log alone. (A resumable job left by a lost connection
		// waits out its grace period, so that its client gets the rest.)
		j.forget()
	}
}

// awaitDrain waits for the output pumps to end after the leader's exit.
// A pipe that a process which left the group still holds open would keep
// them for ever: after an interval in which no byte came, no spool was
// full (waiting for its reader) and nothing waited in the pipes, the
// output is closed. What the command wrote is never cut while its client
// takes it, however slowly, or the daemon is slow to read it.
func (j *job) awaitDrain(drained <-chan struct{}, interval time.Duration) {
	last, _ := j.outputState()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-drained:
			return
		case <-tick.C:
		}
		now, full := j.outputState()
		if now == last && !full && j.p.PendingOutput() == 0 {
			j.log.Warn("output still open after exit, closing", "job", j.id, "pid", j.p.Pid())
			j.p.CloseOutput()
			<-drained
			return
		}
		last = now
	}
}

// outputState is how many bytes the spools took in all, and whether one
// of them is full (its writer waits for its reader).
func (j *job) outputState() (taken int64, full bool) {
	for _, sp := range j.out {
		if sp == nil {
			continue
		}
		sp.mu.Lock()
		taken += sp.end
		full = full || sp.end-sp.base >= sp.max
		sp.mu.Unlock()
	}
	return taken, full
}

// pumpOutput copies stdout and stderr into their spools; the returned
// channel is closed when both have ended.
func (j *job) pumpOutput() <-chan struct{} {
	var wg sync.WaitGroup
	pump := func(r io.ReadCloser, sp *spool, stream string) {
		defer wg.Done()
		// Ends at io.EOF, or EIO from a pty whose processes have all
		// exited. When nobody will read the output any more (the spool was
		// abandoned), stop reading so that the command's writes fail; a
		// read error alone closes nothing (closing a pty master would hang
		// up the terminal).
		n, err := sp.ReadFrom(r)
		j.bytesOut.Add(n)
		j.srv.Metrics.addBytes("out", stream, n)
		if err != nil && (errors.Is(err, errSpoolAbandoned) || errors.Is(err, errSpoolFull)) {
			_ = r.Close() // best effort
		}
		sp.closeWrite()
		j.log.Debug("output ended", "job", j.id, "stream", stream, "bytes", n, "err", err)
	}
	wg.Add(1)
	go pump(decodeOutput(j.p.Stdout, j.encoding), j.out[0], "stdout")
	if j.out[1] != nil {
		wg.Add(1)
		go pump(decodeOutput(j.p.Stderr, j.encoding), j.out[1], "stderr")
	}
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		close(drained)
	}()
	return drained
}

// Why a spool stops taking a command's output.
var (
	errSpoolAbandoned = errors.New("execd: output abandoned")                            // nobody will read it
	errSpoolFull      = errors.New("execd: output past the job's bound, after its exit") // nobody will make room
)

// pumpInput writes what bindings hand over to the command's stdin; the
// returned channel is closed when that has ended (the end of stdin, or
// the command's exit).
func (j *job) pumpInput() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := io.Copy(j.p.Stdin, encodeInput(&stdinQueue{q: j.stdinQ, quit: j.exited}, j.encoding))
		j.bytesIn.Add(n)
		j.srv.Metrics.addBytes("in", "stdin", n)
		if err == nil {
			j.p.StdinEOF()
		}
	}()
	return done
}

// stdinQueue reads the chunks handed over to a job's stdin; a nil chunk
// is the end of stdin.
type stdinQueue struct {
	q    <-chan []byte
	quit <-chan struct{}
	cur  []byte
}

func (r *stdinQueue) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		select {
		case c := <-r.q:
			if c == nil {
				return 0, io.EOF
			}
			r.cur = c
		case <-r.quit:
			return 0, io.ErrClosedPipe
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// wait waits for the command's leader to exit, ending its process group
// when the job is cancelled first (the client left or abandoned it, the
// grace period or the time limit passed, the server closed).
func (j *job) wait(grace time.Duration) proc.ExitState {
	if j.timeout > 0 {
		timer := time.AfterFunc(j.timeout, func() { j.cancel(errTimeLimit) })
		defer timer.Stop()
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-j.ctx.Done():
		case <-j.exited:
			return
		}
		if cause := context.Cause(j.ctx); !errors.Is(cause, errTimeLimit) && !errors.Is(cause, errRevoked) {
			// Nobody will read the output any more: do not wait for room.
			// (A command ended by its time limit or a revocation has its
			// client still reading, to the end of the output.)
			for _, sp := range j.out {
				if sp != nil {
					sp.abandon(errSpoolAbandoned)
				}
			}
		}
		j.p.Terminate(grace)
	}()
	st := j.p.Wait()
	close(j.exited)
	<-watchDone
	return st
}

// exitMsg is the exit frame of the command, with why it was ended early.
func (j *job) exitMsg(st proc.ExitState) *frame.ExitMsg {
	exit := st.ExitMsg(time.Since(j.started))
	exit.Encoding = j.encoding
	var re *frame.RemoteError
	switch cause := context.Cause(j.ctx); {
	case errors.Is(cause, errTimeLimit):
		exit.TimedOut = true
		exit.Message = fmt.Sprintf("time limit of %s reached", j.timeout)
	case errors.Is(cause, mux.ErrAbandoned):
		exit.Message = errAbandoned.Error()
	case errors.Is(cause, errCrowded):
		exit.Message = "ended when its connection was lost: " + errCrowded.Error()
	case errors.Is(cause, errJobClosed) && j.detached:
		exit.Message = "the daemon shut down while it ran"
	case errors.Is(cause, errJobClosed):
		exit.Message = "the daemon shut down before its client came back"
	case errors.Is(cause, errGraceOver):
		exit.Message = fmt.Sprintf("%s of %s", errGraceOver, j.srv.resumeGrace())
	case errors.As(cause, &re):
		exit.Message = "the client reported: " + re.Message
	case errors.Is(cause, errRevoked):
		exit.Message = cause.Error()
	}
	return exit
}

// recordExit writes the exit event to the audit log.
func (j *job) recordExit(exit *frame.ExitMsg) {
	s := j.srv
	ev := *j.audit
	ev.Time, ev.Event, ev.End = time.Time{}, "exit", ptr(time.Now().UTC())
	ev.Exit, ev.Signal, ev.TimedOut, ev.Result = ptr(int(exit.Code)), exit.Signal, exit.TimedOut, exit.Message
	ev.BytesIn, ev.BytesOut = j.bytesIn.Load(), j.bytesOut.Load()
	s.Audit.Log(&ev)
	s.Metrics.commandExited(exit)
	if acct := j.acct; acct.hasQuota() {
		s.quotas.get(acct.home).markDirty()
	}
}

func (s *Server) resumeGrace() time.Duration { return durOr(s.ResumeGrace, DefaultResumeGrace) }

func (j *job) signal(name string) {
	if j.p == nil {
		return // restored from its record: its process is long gone
	}
	if err := j.p.Signal(name); err != nil {
		j.log.Debug("signal not delivered", "job", j.id, "signal", name, "err", err)
		return
	}
	j.log.Info("signal delivered", "job", j.id, "pid", j.p.Pid(), "signal", name)
}

func (j *job) resize(cols, rows uint16) {
	if j.p == nil {
		return
	}
	if err := j.p.Resize(cols, rows); err != nil {
		j.log.Debug("resize ignored", "job", j.id, "err", err)
	}
}
