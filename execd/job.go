package execd

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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

// keptMemory is the bound of acct's output kept in memory.
func (s *Server) keptMemory(acct *account) memoryBudget {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memUsers == nil {
		s.memUsers = map[string]*budget{}
		s.memAll = &budget{max: cmp.Or(s.ResumeMemory, DefaultResumeMemory)}
	}
	u := s.memUsers[acct.user.Name]
	if u == nil {
		u = &budget{max: cmp.Or(s.ResumeMemoryPerUser, DefaultResumeMemoryPerUser)}
		s.memUsers[acct.user.Name] = u
	}
	return memoryBudget{user: u, all: s.memAll, name: acct.user.Name}
}

// KeptMemory is the memory reserved for output kept for clients
// (resumable commands, detached jobs without JobDir), in bytes.
func (s *Server) KeptMemory() int64 {
	s.mu.Lock()
	all := s.memAll
	s.mu.Unlock()
	if all == nil {
		return 0
	}
	return all.used.Load()
}

// budget is a bound on bytes, taken and given back.
type budget struct {
	mu   sync.Mutex
	used atomic.Int64
	max  int64
}

// memoryBudget is a user's share of the kept memory and the daemon's whole.
type memoryBudget struct {
	user, all *budget
	name      string
}

// take reserves n bytes from both, or says why not.
func (m memoryBudget) take(n int64) string {
	m.user.mu.Lock()
	defer m.user.mu.Unlock()
	if m.user.used.Load()+n > m.user.max {
		return fmt.Sprintf("user %s's commands keep %d bytes of output in memory, their bound of %d", m.name, m.user.used.Load(), m.user.max)
	}
	m.all.mu.Lock()
	defer m.all.mu.Unlock()
	if m.all.used.Load()+n > m.all.max {
		return fmt.Sprintf("the daemon keeps %d bytes of commands' output in memory, its bound of %d", m.all.used.Load(), m.all.max)
	}
	m.user.used.Add(n)
	m.all.used.Add(n)
	return ""
}

// give returns n bytes to both.
func (m memoryBudget) give(n int64) {
	m.user.used.Add(-n)
	m.all.used.Add(-n)
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
	select {
	case <-drained:
	case <-time.After(grace + time.Second):
		j.log.Warn("output still open after exit, closing", "job", j.id, "pid", j.p.Pid())
		j.p.CloseOutput()
		<-drained
	}
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
	var re *mux.RemoteError
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

// bind makes b the channel the job is streamed on.
func (j *job) bind(b *binding) {
	j.mu.Lock()
	j.bound = b
	if j.grace != nil {
		j.grace.Stop()
		j.grace = nil
	}
	j.mu.Unlock()
}

// unbind is told that b has ended, with why. A plain job ends with its
// channel; so does a resumable one its client abandoned. A resumable job
// whose connection was lost (or taken over) waits for an attach until
// the grace period is over.
func (j *job) unbind(b *binding, cause error) {
	// Counted before j.mu is taken (waitingJobs takes each job's); j is
	// still bound, so not counted.
	crowded := j.resumable && j.srv.waitingJobs(j.acct) >= j.srv.channelLimit(j.acct)
	j.mu.Lock()
	if j.bound != b {
		j.mu.Unlock()
		return
	}
	j.bound = nil
	if j.detached || b.takenOver.Load() {
		j.mu.Unlock()
		return // it goes on without a channel (detached), or a new one is on its way
	}
	select {
	case <-j.done:
		if !j.resumable {
			j.mu.Unlock()
			return
		}
	default:
		var re *mux.RemoteError
		if !j.resumable || errors.Is(cause, mux.ErrAbandoned) || errors.As(cause, &re) {
			j.mu.Unlock()
			j.cancel(cause)
			return
		}
	}
	j.srv.mu.Lock()
	closing := j.srv.closing
	j.srv.mu.Unlock()
	why := errJobClosed
	if !closing && crowded {
		closing, why = true, errCrowded
		j.log.Warn("ending a command that lost its client", "job", j.id, "user", j.acct.user.Name, "why", errCrowded)
	}
	if closing {
		// The daemon is shutting down (nobody can attach any more), or
		// the user has too many commands waiting.
		j.mu.Unlock()
		j.cancel(why)
		select {
		case <-j.done:
			j.forget()
		default: // run forgets it at its end
		}
		return
	}
	select {
	case <-j.done:
		// What waits for the client is the end of the output: keep no
		// more memory for it than it needs.
		for _, sp := range j.out {
			if sp != nil {
				sp.compact()
			}
		}
	default:
	}
	grace := j.srv.resumeGrace()
	j.grace = time.AfterFunc(grace, func() {
		if j.isBound() {
			return
		}
		select {
		case <-j.done:
		default:
			j.log.Info("ending a command its client did not come back for", "job", j.id, "pid", j.p.Pid(), "grace", grace)
			j.cancel(errGraceOver)
			<-j.done
		}
		j.forget()
	})
	j.mu.Unlock()
	j.log.Info("command waits for its client", "job", j.id, "pid", j.p.Pid(), "grace", grace, "cause", cause)
}

// binding streams a job on one channel, from given offsets: the spools to
// the client under its credit (whose grants acknowledge, and so trim,
// what it has written), the client's stdin to the job, and at the end
// the exit.
type binding struct {
	j     *job
	c     *serverConn
	ch    *mux.Channel
	stdin *mux.Inbound
	out   [2]*mux.Outbound
	from  [2]int64
	stop  chan struct{} // closed to stop the pumps
	once  sync.Once
	// takenOver marks a binding an attach took the job from: its end
	// neither ends the job nor starts a grace period.
	takenOver atomic.Bool
	pumps     sync.WaitGroup
}

// newBinding sets up the streams of a new channel (before its Accept).
func (j *job) newBinding(c *serverConn, nc mux.NewChannel, from [2]int64) *binding {
	win := c.srv.Window
	if win == 0 {
		win = DefaultWindow
	}
	m := nc.OpenMsg()
	b := &binding{j: j, c: c, ch: nc.Channel, from: from, stop: make(chan struct{})}
	c.streams(nc.Channel, j)
	b.stdin = nc.Inbound(frame.Stdin, win)
	b.out[0] = nc.Outbound(frame.Stdout, m.Window)
	if j.out[1] != nil {
		b.out[1] = nc.Outbound(frame.Stderr, m.Window)
	}
	for i, o := range b.out {
		if o != nil && j.resumable && !j.detached { // a detached job keeps all its output
			sp, start := j.out[i], from[i]
			o.OnCredit(func(granted int64) { sp.ack(start + granted) })
		}
	}
	nc.OnControl(frame.Signal, mux.On(func(_ *mux.Channel, m *frame.SignalMsg) error { j.signal(m.Signal); return nil }))
	nc.OnControl(frame.Resize, mux.On(func(_ *mux.Channel, m *frame.ResizeMsg) error { j.resize(m.Cols, m.Rows); return nil }))
	// Every pump serve starts is counted now, before anyone may wait
	// for them: serve's watcher when the channel ends at once (a
	// client's Ctrl-C), an attach taking the job over.
	b.pumps.Add(1)
	for _, o := range b.out {
		if o != nil {
			b.pumps.Add(1)
		}
	}
	return b
}

// halt stops the binding's pumps; it is idempotent.
func (b *binding) halt(cause error) {
	b.once.Do(func() {
		close(b.stop)
		for i, o := range b.out {
			if o != nil {
				o.Abort(cause)
				b.j.out[i].wake()
			}
		}
		b.stdin.CloseWithError(cause)
	})
}

// serve streams the job until its exit is sent or the channel ends.
func (b *binding) serve() {
	defer b.c.wg.Done()
	j := b.j
	finished := make(chan struct{})
	go func() {
		select {
		case <-b.ch.Context().Done():
			select {
			case <-finished:
				return // the exit was sent before the channel ended: serve unbinds
			default:
			}
			cause := context.Cause(b.ch.Context())
			b.halt(cause)
			b.pumps.Wait()
			j.unbind(b, cause)
		case <-finished:
		}
	}()
	go b.pumpInput()
	var outs sync.WaitGroup
	errs := make([]error, 2)
	for i, o := range b.out {
		if o == nil {
			continue
		}
		outs.Add(1)
		go func() {
			defer b.pumps.Done()
			defer outs.Done()
			_, errs[i] = o.ReadFrom(&spoolReader{sp: j.out[i], off: b.from[i], stop: b.stop, drop: !j.resumable})
		}()
	}
	outs.Wait()
	if errs[0] == nil && errs[1] == nil {
		for _, o := range b.out {
			if o != nil {
				_ = o.Close() // best effort: a dead connection fails every send
			}
		}
	}
	select { // the exit is set once the job is done
	case <-j.done:
	case <-b.ch.Context().Done():
	}
	if (errors.Is(errs[0], errTrimmed) || errors.Is(errs[1], errTrimmed)) && b.ch.Context().Err() == nil {
		// A stream lost its place with the channel still open: a fault of
		// ours, said rather than left hanging. (A failed send means the
		// connection is gone: the channel's end follows.)
		b.c.log.Error("output stream failed", "job", j.id, "stdout", errs[0], "stderr", errs[1])
		b.ch.Fail(frame.CodeInternal, fmt.Sprintf("output stream failed: %v", cmp.Or(errs[0], errs[1])))
	}
	if b.ch.Context().Err() != nil {
		cause := context.Cause(b.ch.Context())
		if errors.Is(cause, mux.ErrLost) || b.takenOver.Load() || j.detached {
			return // the watcher above unbinds: the job waits for an attach, ends, or (detached) goes on
		}
		// Abandoned, or failed by the client: the job ends, and its exit
		// (with why) is still sent, as the client waits for it.
		<-j.done
	}
	j.mu.Lock()
	exit := j.exit
	j.mu.Unlock()
	if err := b.ch.SendJSON(frame.Exit, exit); err != nil {
		return
	}
	close(finished)
	b.halt(io.ErrClosedPipe)
	if !j.resumable || j.detached {
		b.ch.Finish()
		b.pumps.Wait()
		j.unbind(b, nil)
		return
	}
	// The exit is sent. The client has it once its close of the channel
	// (its acknowledgement) or the pong of a ping sent after the exit
	// comes back (frames are read in order); then nobody will attach. If
	// the connection ends first, the exit may be lost: the job waits out
	// the grace period for an attach.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.c.mu.Lock()
	sess := b.c.sess
	b.c.mu.Unlock()
	pinged := make(chan error, 1)
	go func() { _, err := sess.Ping(ctx); pinged <- err }()
	var delivered bool
	select {
	case <-b.ch.Context().Done():
		delivered = errors.Is(context.Cause(b.ch.Context()), mux.ErrAbandoned)
	case err := <-pinged:
		// A connection that ended after the client's close was read: the
		// close is the acknowledgement (the read loop took it first).
		delivered = err == nil || (b.ch.Context().Err() != nil && errors.Is(context.Cause(b.ch.Context()), mux.ErrAbandoned))
	}
	b.ch.Finish()
	b.pumps.Wait()
	if !delivered {
		b.c.log.Debug("exit not known to be delivered", "job", j.id, "channel", context.Cause(b.ch.Context()), "session", sess.Err())
		j.unbind(b, mux.ErrLost)
		return
	}
	j.mu.Lock()
	if j.bound == b {
		j.bound = nil
	}
	j.mu.Unlock()
	j.forget()
}

// pumpInput hands the client's stdin to the job, counting what the job
// took: the offset an attach resumes stdin at.
func (b *binding) pumpInput() {
	defer b.pumps.Done()
	j := b.j
	j.mu.Lock()
	eof := j.stdinEOF
	j.mu.Unlock()
	if eof {
		return // the client knows from the open_ok: it sends nothing more
	}
	if _, err := b.stdin.WriteTo(handoff{b}); err == nil {
		j.endStdin(b.stop)
	}
}

// endStdin hands the end of stdin to the job's writer, unless stop is
// closed or the command exits first.
func (j *job) endStdin(stop <-chan struct{}) {
	select {
	case j.stdinQ <- nil:
		j.mu.Lock()
		j.stdinEOF = true
		j.mu.Unlock()
	case <-stop:
	case <-j.exited:
	}
}

// handoff gives a chunk of stdin to the job's writer, or fails once the
// binding stops or the command has exited.
type handoff struct{ b *binding }

func (h handoff) Write(p []byte) (int, error) {
	j := h.b.j
	c := append([]byte(nil), p...)
	select {
	case j.stdinQ <- c:
		j.mu.Lock()
		j.stdinOff += int64(len(p))
		j.mu.Unlock()
		return len(p), nil
	case <-h.b.stop:
		return 0, errStopped
	case <-j.exited:
		return 0, io.ErrClosedPipe
	}
}

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
