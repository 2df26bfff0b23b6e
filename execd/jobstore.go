package execd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/atomicfile"
)

// DefaultJobDisk bounds the bytes one user's detached jobs keep on disk
// (Server.JobDisk), all their streams together.
const DefaultJobDisk = 256 << 20

// errDaemonEnded is the exit message of a job found running in its
// record after a restart: the daemon ended without recording its exit.
var errDaemonEnded = errors.New("the daemon ended while it ran, and its processes with it; the output up to then is kept")

// A detached job's files, under Server.JobDir: USER/ID/ holds meta.json
// (a jobRecord), stdout and stderr (the streams from offset 0).
const (
	jobMeta   = "meta.json"
	jobStdout = "stdout"
	jobStderr = "stderr"
)

// jobRecord is what a detached job's meta.json says of it.
type jobRecord struct {
	ID       string         `json:"id"`
	User     string         `json:"user"`
	UserID   string         `json:"user_id,omitempty"` // User.ID: the user, not an earlier one of that name
	Login    string         `json:"login,omitempty"`   // how the user logged in to start it (account.via)
	Argv     []string       `json:"argv,omitempty"`
	Shell    string         `json:"shell,omitempty"`
	PID      int            `json:"pid"`
	Encoding string         `json:"encoding,omitempty"`
	Pty      bool           `json:"pty,omitempty"`
	StartNS  int64          `json:"start_ns"`
	EndNS    int64          `json:"end_ns,omitempty"`
	Exit     *frame.ExitMsg `json:"exit,omitempty"`
}

// userDirName is the directory of a user's jobs: the name, or "_" for the
// daemon's own user when it has no users database.
func userDirName(user string) string {
	if user == "" {
		return "_"
	}
	return user
}

// jobDiskBudget is the budget of user's detached jobs.
func (s *Server) jobDiskBudget(user string) *diskBudget {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobBudgets == nil {
		s.jobBudgets = map[string]*diskBudget{}
	}
	b := s.jobBudgets[user]
	if b == nil {
		limit := s.JobDisk
		if limit == 0 {
			limit = DefaultJobDisk
		}
		b = &diskBudget{max: limit}
		s.jobBudgets[user] = b
	}
	return b
}

// jobDiskFull reports whether acct's detached jobs have filled their
// budget on disk: a new job would keep none of its output.
func (s *Server) jobDiskFull(acct *account) (used, limit int64, full bool) {
	if s.JobDir == "" {
		return 0, 0, false
	}
	b := s.jobDiskBudget(acct.user.Name)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.max, b.used >= b.max
}

// createJobFiles makes the directory and stream files of a new detached
// job and gives it spools kept in them.
func (j *job) createJobFiles(pty bool, size int64) error {
	dir := filepath.Join(j.srv.JobDir, userDirName(j.acct.user.Name), j.id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keeping the job's output: %w", err)
	}
	budget := j.srv.jobDiskBudget(j.acct.user.Name)
	names := []string{jobStdout, jobStderr}
	if pty {
		names = names[:1]
	}
	for i, name := range names {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil && i == 0 {
			// Held while the job is this daemon's: a second daemon on
			// the same state directory leaves the job alone.
			if ok, lerr := tryLock(f); !ok {
				err = cmp.Or(lerr, errors.New("its output file is locked by another process"))
				_ = f.Close()
			}
		}
		if err != nil {
			j.closeFiles()
			_ = os.RemoveAll(dir)
			return fmt.Errorf("keeping the job's output: %w", err)
		}
		j.out[i] = newFileSpool(f, 0, size, budget)
	}
	j.dir = dir
	return nil
}

// record is the job as its meta.json says it.
func (j *job) record() jobRecord {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := jobRecord{ID: j.id, User: j.acct.user.Name, UserID: j.acct.user.ID, Login: j.acct.via, Argv: j.argv, Shell: j.shell, PID: j.pid,
		Encoding: j.encoding, Pty: j.out[1] == nil, StartNS: j.started.UnixNano(), Exit: j.exit}
	if j.exit != nil {
		r.EndNS = j.ended.UnixNano()
	}
	return r
}

// saveRecord writes the job's meta.json whole; a failure is logged (the
// job goes on, its record is older).
func (j *job) saveRecord() {
	if j.dir == "" {
		return
	}
	b, _ := json.Marshal(j.record()) // plain fields: cannot fail
	if err := atomicfile.WriteFile(filepath.Join(j.dir, jobMeta), b, 0o600); err != nil {
		j.log.Warn("job record not written", "job", j.id, "err", err)
	}
}

// closeFiles closes the job's stream files.
func (j *job) closeFiles() {
	for _, sp := range j.out {
		if sp != nil && sp.file != nil {
			_ = sp.file.Close()
		}
	}
}

// removeFiles deletes the job's record and output, and gives their bytes
// back to the user's budget.
func (j *job) removeFiles() {
	if j.dir == "" {
		return
	}
	var size int64
	for _, sp := range j.out {
		if sp != nil && sp.file != nil {
			_, end, _ := sp.bounds()
			size += end
		}
	}
	j.closeFiles()
	if err := os.RemoveAll(j.dir); err != nil {
		j.log.Warn("job files not removed", "job", j.id, "err", err)
	}
	j.srv.jobDiskBudget(j.acct.user.Name).give(size)
}

// restoreJobs reads the records under JobDir after a start: every job is
// listed again, as exited (a job that was running when the daemon ended
// says so), its output readable by attach for what is left of its
// retention. Records that cannot be read are logged and left alone.
func (s *Server) restoreJobs() {
	if s.JobDir == "" {
		return
	}
	log := s.logger()
	metas, err := filepath.Glob(filepath.Join(s.JobDir, "*", "*", jobMeta))
	if err != nil {
		return
	}
	retention := durOr(s.JobRetention, DefaultJobRetention)
	restored := 0
	for _, meta := range metas {
		j, err := s.restoreJob(filepath.Dir(meta))
		if errors.Is(err, errJobLive) {
			continue // another daemon's, running on this state directory
		}
		if err != nil {
			log.Warn("job record not restored", "dir", filepath.Dir(meta), "err", err)
			continue
		}
		left := retention - time.Since(j.ended)
		if left <= 0 {
			j.removeFiles()
			continue
		}
		s.mu.Lock()
		if s.jobs == nil {
			s.jobs = make(map[string]*job)
		}
		s.jobs[j.id] = j
		s.mu.Unlock()
		time.AfterFunc(left, j.forget)
		restored++
	}
	if restored > 0 {
		log.Info("jobs restored from their records", "jobs", restored, "dir", s.JobDir)
	}
}

// errJobLive is a job whose output another live daemon holds.
var errJobLive = errors.New("the job is another daemon's")

// restoreJob rebuilds a job from its directory, unless another daemon
// on the same state directory holds it (errJobLive).
func (s *Server) restoreJob(dir string) (*job, error) {
	b, err := os.ReadFile(filepath.Join(dir, jobMeta))
	if err != nil {
		return nil, err
	}
	var r jobRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.ID != filepath.Base(dir) || userDirName(r.User) != filepath.Base(filepath.Dir(dir)) {
		return nil, fmt.Errorf("record of job %q of user %q in the wrong directory", r.ID, r.User)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errDaemonEnded)
	j := &job{
		srv: s, id: r.ID, acct: &account{user: User{Name: r.User, ID: r.UserID}, via: r.Login}, log: s.logger(),
		resumable: true, detached: true, argv: r.Argv, shell: r.Shell, pid: r.PID, encoding: r.Encoding,
		started: time.Unix(0, r.StartNS), ctx: ctx, cancel: cancel, dir: dir,
		exited: make(chan struct{}), done: make(chan struct{}), exit: r.Exit,
		stdinEOF: true, // a detached job's stdin is empty, and it has ended
	}
	close(j.exited)
	close(j.done)
	j.ended = time.Unix(0, r.EndNS)
	if j.exit == nil {
		// It was running: the daemon stopped (or crashed) first. Its
		// processes went with it (they are the daemon's children, in
		// its cgroups); the record is all that is left.
		j.exit = &frame.ExitMsg{Code: -1, Signal: "KILL", Message: errDaemonEnded.Error(), Encoding: r.Encoding}
		if fi, err := os.Stat(filepath.Join(dir, jobMeta)); err == nil {
			j.ended = fi.ModTime()
		}
		j.exit.DurationMS = max(j.ended.Sub(j.started).Milliseconds(), 0)
	}
	budget := s.jobDiskBudget(r.User)
	names := []string{jobStdout, jobStderr}
	if r.Pty {
		names = names[:1]
	}
	for i, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			j.closeFiles()
			return nil, err
		}
		if i == 0 {
			if ok, err := tryLock(f); !ok {
				_ = f.Close()
				return nil, cmp.Or(err, errJobLive)
			}
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			j.closeFiles()
			return nil, err
		}
		sp := newFileSpool(f, fi.Size(), fi.Size(), nil)
		sp.eof = true
		j.out[i] = sp
	}
	for _, sp := range j.out {
		if sp != nil {
			budget.charge(sp.end) // what is on disk counts, over the bound if need be
		}
	}
	j.saveRecord() // with the exit it was given
	return j, nil
}
