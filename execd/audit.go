package execd

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AuditFile is the audit log's name in the state directory.
const AuditFile = "audit.log"

// AuditEvent is one line of the audit log. Event is one of: login,
// login_failed, exec (a command started, or was refused: Result says why),
// exit (it ended), attach (a resumable command was taken over by a new
// connection), kill (a job was signalled or removed), get, put, tail, list, checksum, mkdir, remove, rename,
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
	Job      string     `json:"job,omitempty"` // a resumable command's id; attach and detach events carry it too
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
	cfg  AuditConfig
	mu   sync.Mutex
	f    *os.File
	size int64 // of f, for MaxSize
}

// AuditConfig says how an audit log is written.
type AuditConfig struct {
	// OnError, when non-nil, is told of writes and rotations that fail.
	OnError func(error)
	// MaxSize, when positive, rotates the log once it reaches this many
	// bytes: audit.log becomes audit.log.1, audit.log.1 becomes
	// audit.log.2 (audit.log.2.gz stays compressed), and so on; Keep
	// rotated files are kept (default 10). Zero leaves rotation to
	// logrotate and a hangup.
	MaxSize int64
	Keep    int
	// Sync flushes each event to the disk before the operation it records
	// goes on (fsync per event): none is lost to a crash of the machine.
	Sync bool
}

// DefaultAuditKeep is how many rotated audit logs are kept by default.
const DefaultAuditKeep = 10

// OpenAudit opens (creating, mode 0600) the audit log at path for
// appending.
func OpenAudit(path string, cfg AuditConfig) (*AuditLog, error) {
	a := &AuditLog{path: path, cfg: cfg}
	if a.cfg.Keep <= 0 {
		a.cfg.Keep = DefaultAuditKeep
	}
	f, size, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	a.f, a.size = f, size
	return a, nil
}

// openAppend opens the log's file for appending and tells its size.
func openAppend(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("audit log: %w", err)
	}
	return f, fi.Size(), nil
}

// Reopen opens the log's path anew (creating it) and closes the file it
// replaces, so that a log rotated by renaming goes on in a fresh file
// (logrotate's create mode, through SIGHUP). On failure the old file stays
// in use.
func (a *AuditLog) Reopen() error {
	if a == nil {
		return nil
	}
	f, size, err := openAppend(a.path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.f
	a.f, a.size = f, size
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
		err = a.write(b)
	}
	if err != nil && a.cfg.OnError != nil {
		a.cfg.OnError(fmt.Errorf("audit log: %w", err))
	}
}

// write appends one line, flushing it with Sync and rotating the file
// once it has reached MaxSize.
func (a *AuditLog) write(line []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, err := a.f.Write(line)
	a.size += int64(n)
	if err == nil && a.cfg.Sync {
		err = a.f.Sync()
	}
	if err == nil && a.cfg.MaxSize > 0 && a.size >= a.cfg.MaxSize {
		err = a.rotateLocked()
	}
	return err
}

// rotateLocked shifts the rotated files up by one (dropping those past
// Keep), renames the log to audit.log.1 and goes on in a fresh file.
func (a *AuditLog) rotateLocked() error {
	for i := a.cfg.Keep; i >= 1; i-- {
		for _, ext := range []string{"", ".gz"} {
			from := fmt.Sprintf("%s.%d%s", a.path, i, ext)
			if i == a.cfg.Keep {
				_ = os.Remove(from) // best effort: it may not exist
				continue
			}
			_ = os.Rename(from, fmt.Sprintf("%s.%d%s", a.path, i+1, ext)) // it may not exist
		}
	}
	if err := os.Rename(a.path, a.path+".1"); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	f, size, err := openAppend(a.path)
	if err != nil {
		return err
	}
	old := a.f
	a.f, a.size = f, size
	return old.Close()
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

// AuditFiles lists the audit log at path and its rotated files (path.N,
// path.N.gz, path-DATE[.gz] as logrotate names them), oldest first: the
// order of their last writes, which rotation and gzip keep.
func AuditFiles(path string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	type file struct {
		name string
		mod  time.Time
	}
	var files []file
	base := filepath.Base(path)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok || rest == "" || (rest[0] != '.' && rest[0] != '-') || strings.HasSuffix(rest, ".lock") {
			continue
		}
		name := filepath.Join(filepath.Dir(path), e.Name())
		if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
			files = append(files, file{name, fi.ModTime()})
		}
	}
	sort.SliceStable(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return rotationOrder(files[i].name) > rotationOrder(files[j].name)
	})
	names := make([]string, 0, len(files)+1)
	for _, f := range files {
		names = append(names, f.name)
	}
	if _, err := os.Stat(path); err == nil {
		names = append(names, path)
	}
	return names, nil
}

// rotationOrder is N of path.N[.gz], for files written in the same
// instant: the higher, the older.
func rotationOrder(name string) int {
	ext := filepath.Ext(strings.TrimSuffix(name, ".gz"))
	n, _ := strconv.Atoi(strings.TrimPrefix(ext, "."))
	return n
}

// ReadAuditFiles calls fn for each event of the files in order, reading
// gzip-ed ones (.gz) through gzip. A problem names its file.
func ReadAuditFiles(names []string, fn func(ev *AuditEvent) error) error {
	for _, name := range names {
		if err := readAuditFile(name, fn); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func readAuditFile(name string, fn func(ev *AuditEvent) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	return ReadAudit(r, fn)
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
