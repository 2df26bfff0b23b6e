package frame

import (
	"fmt"
)

// KindAttach binds a new channel to a command that outlived the channel
// that started it (OpenMsg.Resume): after a lost connection, the client
// attaches with the byte offsets it has written of each output stream,
// and the daemon resumes both from there and tells the client how much of
// its stdin it has taken, so that no byte is delivered twice or lost.
const KindAttach = "attach"

// CodeNoSuchJob refuses an attach to a command the daemon does not hold
// for this user (never started, ended and delivered, or its grace period
// over).
const CodeNoSuchJob Code = "no_such_job"

// CodeOffsetGone refuses an attach whose offset is before what the daemon
// still keeps of a stream (it was acknowledged already), or after what
// the command wrote.
const CodeOffsetGone Code = "offset_gone"

// CodeTakenOver ends the channel that streamed a command when an attach
// from another connection takes the command over.
const CodeTakenOver Code = "taken_over"

// MaxJobIDLen bounds a job id.
const MaxJobIDLen = 64

// AttachRequest is what an attach channel asks for (OpenMsg.Attach).
type AttachRequest struct {
	// Job is the id the exec's open_ok gave.
	Job string `json:"job"`
	// Stdout and Stderr are the offsets of the first byte of each stream
	// the client still needs: what it has written so far.
	Stdout uint64 `json:"stdout"`
	Stderr uint64 `json:"stderr"`
}

// Validate checks the request's structure.
func (r *AttachRequest) Validate() error {
	return checkJobID(r.Job)
}

// checkJobID accepts 1..MaxJobIDLen letters, digits, '-' and '_'.
func checkJobID(id string) error {
	if id == "" || len(id) > MaxJobIDLen {
		return fmt.Errorf("%w: a job id has 1 to %d characters", ErrInvalid, MaxJobIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: a job id is letters, digits, - and _", ErrInvalid)
		}
	}
	return nil
}

// KindJobs lists the user's resumable commands, or signals one: the list
// comes as JSON lines (JobInfo) on the channel's stdout, then an exit of
// status 0.
const KindJobs = "jobs"

// JobsRequest is what a jobs channel asks for (OpenMsg.Jobs); the zero
// value lists.
type JobsRequest struct {
	// Kill names a job to send Signal to (TERM when empty).
	Kill   string `json:"kill,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// Validate checks the request's structure.
func (r *JobsRequest) Validate() error {
	if r.Kill != "" {
		if err := checkJobID(r.Kill); err != nil {
			return err
		}
	}
	if r.Signal != "" && !deliverable(r.Signal) {
		return fmt.Errorf("%w: unknown signal %q", ErrInvalid, r.Signal)
	}
	return nil
}

// JobInfo is one line of a jobs listing.
type JobInfo struct {
	ID       string   `json:"id"`
	Argv     []string `json:"argv,omitempty"`
	Shell    string   `json:"shell,omitempty"`
	PID      int      `json:"pid"`
	Detached bool     `json:"detached,omitempty"`
	// State is "running", "waiting" (a lost client may come back), or
	// "exited".
	State   string `json:"state"`
	StartNS int64  `json:"start_ns"`
	EndNS   int64  `json:"end_ns,omitempty"`
	// Exit is the exit message once State is "exited".
	Exit *ExitMsg `json:"exit,omitempty"`
	// Stdout and Stderr are the bytes each stream has had so far.
	Stdout uint64 `json:"stdout"`
	Stderr uint64 `json:"stderr"`
	// Full says that the command waits because its output reached the
	// daemon's bound and nobody has taken it.
	Full bool `json:"full,omitempty"`
}
