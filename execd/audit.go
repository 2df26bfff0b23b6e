package execd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// AuditFile is the audit log's name in the state directory.
const AuditFile = "audit.log"

// AuditEvent is one line of the audit log. Event is one of: login,
// login_failed, exec (a command started, or was refused: Result says why),
// exit (it ended), get, put, list, checksum, mkdir, remove, rename,
// setattr, symlink.
type AuditEvent struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	User   string    `json:"user,omitempty"`
	Addr   string    `json:"addr,omitempty"`
	Method string    `json:"method,omitempty"` // login: publickey or password
	Key    string    `json:"key,omitempty"`    // login: the key's fingerprint

	// Commands.
	Argv     []string   `json:"argv,omitempty"`
	Shell    string     `json:"shell,omitempty"`
	Dir      string     `json:"dir,omitempty"`
	Pty      bool       `json:"pty,omitempty"`
	PID      int        `json:"pid,omitempty"`
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	Exit     *int       `json:"exit,omitempty"`
	Signal   string     `json:"signal,omitempty"`
	TimedOut bool       `json:"timed_out,omitempty"`
	BytesIn  int64      `json:"bytes_in,omitempty"`
	BytesOut int64      `json:"bytes_out,omitempty"`

	// File operations.
	Path string  `json:"path,omitempty"`
	To   string  `json:"to,omitempty"`
	Size *uint64 `json:"size,omitempty"`
	Hash string  `json:"hash,omitempty"`

	// Result is "ok" or why the operation or login failed.
	Result string `json:"result,omitempty"`
}

// AuditLog appends events as JSON lines to a file opened in append mode;
// each event is one write, so lines never interleave. It is safe for
// concurrent use.
type AuditLog struct {
	path string
	mu   sync.Mutex
	f    *os.File
	err  func(error) // reports a failed write
}

// OpenAudit opens (creating, mode 0600) the audit log at path for
// appending. onError, when non-nil, is told of writes that fail.
func OpenAudit(path string, onError func(error)) (*AuditLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &AuditLog{path: path, f: f, err: onError}, nil
}

// Reopen opens the log's path anew (creating it) and closes the file it
// replaces, so that a log rotated by renaming goes on in a fresh file
// (logrotate's create mode, through SIGHUP). On failure the old file stays
// in use.
func (a *AuditLog) Reopen() error {
	if a == nil {
		return nil
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	a.mu.Lock()
	old := a.f
	a.f = f
	a.mu.Unlock()
	return old.Close()
}

// Log appends one event, stamping its time if unset. A nil log discards it.
func (a *AuditLog) Log(ev *AuditEvent) {
	if a == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	b, err := json.Marshal(ev)
	if err == nil {
		b = append(b, '\n')
		a.mu.Lock()
		_, err = a.f.Write(b)
		a.mu.Unlock()
	}
	if err != nil && a.err != nil {
		a.err(fmt.Errorf("audit log: %w", err))
	}
}

// Close closes the file.
func (a *AuditLog) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

// ReadAudit calls fn for each event in r in order. A line that is not an
// event (a torn last line after a crash) is reported with its number.
func ReadAudit(r io.Reader, fn func(ev *AuditEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var ev AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("audit log line %d: %w", n, err)
		}
		if err := fn(&ev); err != nil {
			return err
		}
	}
	return sc.Err()
}

func ptr[T any](v T) *T { return &v }
