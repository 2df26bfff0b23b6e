package frame

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Limits on control message fields, checked by Validate.
const (
	MaxArgs        = 4096    // argv entries
	MaxEnv         = 1024    // environment entries
	MaxPingPayload = 64      // bytes echoed by Pong
	MaxWindow      = 1 << 30 // largest credit a single window message may grant
	MaxTermLen     = 64      // bytes in a terminal type
	MaxMessageLen  = 4096    // bytes in an error or go-away message
	MaxPathLen     = 4096    // bytes in a file path
	MaxEntries     = 1024    // directory entries in one Reply
)

// Channel kinds an OpenMsg may ask for.
const (
	KindExec = "exec" // run a command
	KindGet  = "get"  // send one file to the client
	KindPut  = "put"  // receive one file from the client
	KindFS   = "fs"   // a file session: Request/Reply with a current directory
)

// HelloMsg is the first frame in each direction.
type HelloMsg struct {
	// Software names the implementation, e.g. "execd/0.1"; informational.
	Software string `json:"software"`
	// MaxPayload is the largest payload this side accepts.
	MaxPayload uint32 `json:"max_payload"`
	// KeepAliveMS is how often the server pings; 0 means never (server only).
	KeepAliveMS int64 `json:"keepalive_ms,omitempty"`
	// Features lists optional capabilities; unknown names are ignored.
	Features []string `json:"features,omitempty"`
	// Auth lists the authentication methods the server accepts (server
	// only); empty means the server asks for none and channels may open
	// at once.
	Auth []string `json:"auth,omitempty"`
	// Challenge is 32 random bytes (base64 in JSON) a publickey proof must
	// sign (server only, with Auth).
	Challenge []byte `json:"challenge,omitempty"`
	// Instance names this run of the daemon (server only; informational):
	// new at each start, so that a client that reconnects can tell a
	// restart, which ended its command, from a network cut.
	Instance string `json:"instance,omitempty"`
	// MaxChannels is how many channels the server keeps open at once on
	// one connection (server only; informational, 0: not said): a client
	// with more to open spreads them over more connections.
	MaxChannels int `json:"max_channels,omitempty"`
}

// Validate checks the hello against SPEC.md.
func (m *HelloMsg) Validate() error {
	if m.MaxPayload < MinMaxPayload || m.MaxPayload > MaxMaxPayload {
		return fmt.Errorf("%w: max_payload %d outside [%d, %d]", ErrInvalid, m.MaxPayload, MinMaxPayload, MaxMaxPayload)
	}
	if m.KeepAliveMS < 0 {
		return fmt.Errorf("%w: negative keepalive_ms", ErrInvalid)
	}
	if m.MaxChannels < 0 {
		return fmt.Errorf("%w: negative max_channels", ErrInvalid)
	}
	if len(m.Auth) > 0 && len(m.Challenge) != ChallengeLen {
		return fmt.Errorf("%w: auth needs a challenge of %d bytes", ErrInvalid, ChallengeLen)
	}
	return nil
}

// PtyRequest asks for a pseudo-terminal.
type PtyRequest struct {
	Term string `json:"term"`
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// OpenMsg asks the server to open a channel of one Kind.
type OpenMsg struct {
	// Kind is the channel's kind: one of Kinds() (exec, attach, jobs,
	// get, put, fs, tail).
	Kind string `json:"kind"`
	// Argv is the command and its arguments, run without a shell.
	Argv []string `json:"argv,omitempty"`
	// Shell, when non-empty, is a command line run by the platform shell
	// (sh -c on Unix). Exactly one of Argv and Shell is set.
	Shell string `json:"shell,omitempty"`
	// Env holds KEY=VALUE entries added to the command's environment.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory (exec) or the starting directory (fs);
	// empty means the server's default.
	Dir string `json:"dir,omitempty"`
	// Pty, when set, runs the command on a pseudo-terminal.
	Pty *PtyRequest `json:"pty,omitempty"`
	// TimeoutMS ends the command after this many milliseconds; 0 means none.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Encoding overrides the daemon's choice of how the command's output
	// is transcoded to UTF-8 (and its stdin from UTF-8): "auto", "utf-8",
	// "gbk", "gb18030" or "raw"; empty means the daemon's --encoding.
	Encoding string `json:"encoding,omitempty"`
	// Window is the initial credit for each of stdout and stderr (exec) or
	// for file data (get).
	Window uint32 `json:"window"`

	// Tail is what a tail channel (KindTail) asks for; Path names its file.
	Tail *TailRequest `json:"tail,omitempty"`

	// Attach is what an attach channel (KindAttach) asks for. Pty, when
	// set, gives the client's terminal size: the daemon resizes the
	// command's terminal and sends it SIGWINCH, so that it redraws.
	Attach *AttachRequest `json:"attach,omitempty"`
	// Detach (exec) starts the command as a job detached from any
	// connection: the open_ok gives its job id and the channel ends; the
	// output is kept from its start for attaches (KindAttach) and the
	// command runs until it exits. Implies Resume.
	Detach bool `json:"detach,omitempty"`
	// Jobs is what a jobs channel (KindJobs) asks for.
	Jobs *JobsRequest `json:"jobs,omitempty"`

	// Path names the file of a get, put or tail, relative to the served directory.
	Path string `json:"path,omitempty"`
	// Hash names the hash of a get or put: HashSHA256 (the default when
	// empty) or HashBLAKE3 when the server's hello offers FeatureBLAKE3.
	Hash string `json:"hash,omitempty"`
	// Offset asks a get to resume at this byte; PrefixHash (hex) is the
	// hash of the bytes [0, Offset) the client already holds. The server
	// resumes only when its own prefix has the same hash.
	Offset     uint64 `json:"offset,omitempty"`
	PrefixHash string `json:"prefix_hash,omitempty"`
	// Size, Mode and MtimeNS describe the file a put sends. Mode holds the
	// permission bits (0 means 0644); MtimeNS 0 means leave the time as written.
	Size    uint64 `json:"size,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
	MtimeNS int64  `json:"mtime_ns,omitempty"`
	// Resume lets a put continue a partial copy the server kept. On an
	// exec it asks the daemon to keep the command running when the
	// connection is lost, its output kept, for a grace period in which
	// the client may attach (KindAttach) with the job id of the open_ok.
	Resume bool `json:"resume,omitempty"`
	// Stream marks a put whose size is not known in advance (a pipe):
	// Size must be 0, Resume false; the done frame gives the size.
	Stream bool `json:"stream,omitempty"`
}

// Validate checks the open request against SPEC.md.
func (m *OpenMsg) Validate() error {
	if m.Window == 0 || m.Window > MaxWindow {
		return fmt.Errorf("%w: window %d outside [1, %d]", ErrInvalid, m.Window, MaxWindow)
	}
	switch m.Kind {
	case KindExec:
		return m.validateExec()
	case KindGet, KindPut:
		if err := checkPathField("path", m.Path); err != nil {
			return err
		}
		if m.Path == "" {
			return fmt.Errorf("%w: %s needs a path", ErrInvalid, m.Kind)
		}
		if err := checkHash(m.PrefixHash); err != nil {
			return err
		}
		if err := checkHashName(m.Hash); err != nil {
			return err
		}
		if m.Kind == KindPut && m.Mode&^0o7777 != 0 {
			return fmt.Errorf("%w: mode %#o has bits beyond 07777", ErrInvalid, m.Mode)
		}
		if m.Stream && (m.Kind != KindPut || m.Size != 0 || m.Resume) {
			return fmt.Errorf("%w: stream is for a put without size or resume", ErrInvalid)
		}
		if m.Offset > 0 && m.PrefixHash == "" && m.Kind == KindGet {
			return fmt.Errorf("%w: a resumed get needs prefix_hash", ErrInvalid)
		}
		return nil
	case KindFS:
		return checkPathField("dir", m.Dir)
	case KindJobs:
		if m.Jobs == nil {
			return nil
		}
		return m.Jobs.Validate()
	case KindAttach:
		if m.Attach == nil {
			return fmt.Errorf("%w: attach needs an attach request", ErrInvalid)
		}
		return m.Attach.Validate()
	case KindTail:
		if err := checkPathField("path", m.Path); err != nil {
			return err
		}
		if m.Path == "" || m.Tail == nil {
			return fmt.Errorf("%w: tail needs a path and a tail request", ErrInvalid)
		}
		return m.Tail.Validate()
	}
	return fmt.Errorf("%w: unknown channel kind %q", ErrInvalid, m.Kind)
}

// checkPathField applies the structural limits of SPEC.md to a path; what
// a path may name is the server's to decide.
func checkPathField(name, p string) error {
	if len(p) > MaxPathLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, name, MaxPathLen)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w: NUL byte in %s", ErrInvalid, name)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, name)
	}
	return nil
}

// Hashes of file transfers; both give 32 bytes, sent as 64 lowercase hex digits.
const (
	HashSHA256 = "sha256" // the default: in every standard library
	HashBLAKE3 = "blake3" // faster; offered by servers that announce FeatureBLAKE3
)

// FeatureBLAKE3 in a server's hello offers HashBLAKE3 for file transfers.
const FeatureBLAKE3 = "hash:blake3"

// FeatureControlLogin in a control master's hello says that an accepting
// auth_reply follows at once, naming the user the master logged in as
// (frame/SPEC.md, "Shared connections"); without it the daemon asked for
// no login.
const FeatureControlLogin = "control-login"

func checkHashName(h string) error {
	if h != "" && h != HashSHA256 && h != HashBLAKE3 {
		return fmt.Errorf("%w: unknown hash %q", ErrInvalid, h)
	}
	return nil
}

// checkHash accepts "" or 64 lowercase hex digits.
func checkHash(h string) error {
	if h == "" {
		return nil
	}
	if len(h) != 64 {
		return fmt.Errorf("%w: a hash is 64 hex digits", ErrInvalid)
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: a hash is lowercase hex", ErrInvalid)
		}
	}
	return nil
}

func (m *OpenMsg) validateExec() error {
	if (len(m.Argv) == 0) == (m.Shell == "") {
		return fmt.Errorf("%w: exactly one of argv and shell must be given", ErrInvalid)
	}
	if len(m.Argv) > 0 && m.Argv[0] == "" {
		return fmt.Errorf("%w: empty command name", ErrInvalid)
	}
	if len(m.Argv) > MaxArgs || len(m.Env) > MaxEnv {
		return fmt.Errorf("%w: too many arguments or environment entries", ErrInvalid)
	}
	for _, s := range m.Argv {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%w: NUL byte in argument", ErrInvalid)
		}
	}
	if strings.IndexByte(m.Shell, 0) >= 0 || strings.IndexByte(m.Dir, 0) >= 0 {
		return fmt.Errorf("%w: NUL byte in command line or directory", ErrInvalid)
	}
	for _, e := range m.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.IndexByte(e, 0) >= 0 {
			return fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrInvalid, e)
		}
	}
	if m.Pty != nil && (len(m.Pty.Term) > MaxTermLen || strings.ContainsAny(m.Pty.Term, "\x00/")) {
		return fmt.Errorf("%w: bad terminal type", ErrInvalid)
	}
	if m.TimeoutMS < 0 {
		return fmt.Errorf("%w: negative timeout_ms", ErrInvalid)
	}
	switch m.Encoding {
	case "", EncodingAuto, EncodingUTF8, EncodingGBK, EncodingGB18030, EncodingRaw:
	default:
		return fmt.Errorf("%w: encoding %q (one of auto, utf-8, gbk, gb18030, raw)", ErrInvalid, m.Encoding)
	}
	return nil
}

// Encodings a client may ask for in OpenMsg.Encoding.
const (
	EncodingAuto    = "auto"    // the code page the command writes in (the daemon's choice)
	EncodingUTF8    = "utf-8"   // the output is UTF-8 already: untouched
	EncodingGBK     = "gbk"     // code page 936
	EncodingGB18030 = "gb18030" // code page 54936
	EncodingRaw     = "raw"     // untouched, for binary output
	MaxEncodingLen  = 32
)

// OpenOKMsg confirms an OpenMsg.
type OpenOKMsg struct {
	// Window is the initial credit for what the client sends: stdin (exec)
	// or file data (put).
	Window uint32 `json:"window"`
	// PID is the command's process id on the server (informational).
	PID int `json:"pid,omitempty"`
	// Offset is where file data starts: for a get, the byte the server
	// resumes at (0 when it starts over); for a put, the length of the
	// partial copy the server kept, whose hash is PrefixHash.
	Offset     uint64 `json:"offset,omitempty"`
	PrefixHash string `json:"prefix_hash,omitempty"`
	// Info describes the file of a get.
	Info *FileInfo `json:"info,omitempty"`
	// Cwd is the current directory of an fs channel.
	Cwd string `json:"cwd,omitempty"`
	// Encoding names how the command's output is transcoded to UTF-8 (exec).
	Encoding string `json:"encoding,omitempty"`
	// Job is the id to attach with (exec with Resume, attach).
	Job string `json:"job,omitempty"`
	// StdinOffset (attach) is how many bytes of stdin the command has
	// taken: the client sends on from there. StdinEOF says that the end
	// of stdin was taken too.
	StdinOffset uint64 `json:"stdin_offset,omitempty"`
	StdinEOF    bool   `json:"stdin_eof,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *OpenOKMsg) Validate() error {
	if len(m.Encoding) > MaxEncodingLen {
		return fmt.Errorf("%w: encoding name too long", ErrInvalid)
	}
	if m.Window == 0 || m.Window > MaxWindow {
		return fmt.Errorf("%w: window %d outside [1, %d]", ErrInvalid, m.Window, MaxWindow)
	}
	if m.Info != nil {
		if err := m.Info.Validate(); err != nil {
			return err
		}
	}
	if err := checkPathField("cwd", m.Cwd); err != nil {
		return err
	}
	if m.Job != "" {
		if err := checkJobID(m.Job); err != nil {
			return err
		}
	}
	return checkHash(m.PrefixHash)
}

// File types in FileInfo.
const (
	FileRegular = "file"
	FileDir     = "dir"
	FileSymlink = "symlink"
	FileOther   = "other" // device, socket, pipe: listed, never transferred
)

// FileInfo describes one file or directory.
type FileInfo struct {
	// Name is the last element of the path (the entry name in a listing).
	Name string `json:"name"`
	Type string `json:"type"`
	Size uint64 `json:"size"`
	// Mode holds the permission bits, with setuid, setgid and sticky (07777).
	Mode    uint32 `json:"mode"`
	MtimeNS int64  `json:"mtime_ns"`
	// Target is a symlink's target, as stored.
	Target string `json:"target,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *FileInfo) Validate() error {
	switch m.Type {
	case FileRegular, FileDir, FileSymlink, FileOther:
	default:
		return fmt.Errorf("%w: unknown file type %q", ErrInvalid, m.Type)
	}
	if m.Mode&^0o7777 != 0 {
		return fmt.Errorf("%w: mode %#o has bits beyond 07777", ErrInvalid, m.Mode)
	}
	if err := checkPathField("name", m.Name); err != nil {
		return err
	}
	return checkPathField("target", m.Target)
}

// DoneMsg ends a file transfer: the size and hash (hex, of the kind the
// open chose) of the whole file, including any resumed prefix.
type DoneMsg struct {
	Size uint64 `json:"size"`
	Hash string `json:"hash"`
}

// Validate checks the message against SPEC.md.
func (m *DoneMsg) Validate() error {
	if m.Hash == "" {
		return fmt.Errorf("%w: done needs a hash", ErrInvalid)
	}
	return checkHash(m.Hash)
}

// Operations a FileRequest may ask for.
const (
	OpStat     = "stat"     // Info of Path, following a final symlink that stays inside
	OpLstat    = "lstat"    // Info of Path itself
	OpList     = "list"     // Entries of the directory Path, in batches (More)
	OpMkdir    = "mkdir"    // create the directory Path (Parents: and its parents)
	OpRemove   = "remove"   // remove Path (Recursive: a whole tree)
	OpRename   = "rename"   // rename Path to To, replacing a file at To
	OpChecksum = "checksum" // Hash (of kind HashName) and Info of the file Path
	OpChdir    = "chdir"    // change the channel's current directory; Cwd answers
	OpSetattr  = "setattr"  // set Mode (when HasMode) and MtimeNS (when non-zero)
	OpSymlink  = "symlink"  // create the symlink Path pointing to Target
)

var fileOps = []string{OpStat, OpLstat, OpList, OpMkdir, OpRemove, OpRename, OpChecksum, OpChdir, OpSetattr, OpSymlink}

// FileRequest is one operation on an fs channel. Relative paths are taken
// from the channel's current directory.
type FileRequest struct {
	// ID is echoed in the Reply; a client numbers its requests.
	ID        uint32 `json:"id"`
	Op        string `json:"op"`
	Path      string `json:"path"`
	To        string `json:"to,omitempty"`
	Target    string `json:"target,omitempty"`
	Mode      uint32 `json:"mode,omitempty"`
	HasMode   bool   `json:"has_mode,omitempty"`
	MtimeNS   int64  `json:"mtime_ns,omitempty"`
	Parents   bool   `json:"parents,omitempty"`
	Recursive bool   `json:"recursive,omitempty"`
	// HashName chooses the hash of a checksum; empty means HashSHA256.
	HashName string `json:"hash_name,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *FileRequest) Validate() error {
	known := false
	for _, op := range fileOps {
		known = known || op == m.Op
	}
	if !known {
		return fmt.Errorf("%w: unknown file operation %q", ErrInvalid, m.Op)
	}
	if m.Mode&^0o7777 != 0 {
		return fmt.Errorf("%w: mode %#o has bits beyond 07777", ErrInvalid, m.Mode)
	}
	for _, f := range [][2]string{{"path", m.Path}, {"to", m.To}, {"target", m.Target}} {
		if err := checkPathField(f[0], f[1]); err != nil {
			return err
		}
	}
	return checkHashName(m.HashName)
}

// FileReply answers the FileRequest with the same ID. Exactly one of Error
// and the result fields is meaningful.
type FileReply struct {
	ID    uint32    `json:"id"`
	Error *ErrorMsg `json:"error,omitempty"`
	Info  *FileInfo `json:"info,omitempty"`
	// Entries of a list, sorted by name; More says another Reply with the
	// same ID follows.
	Entries []FileInfo `json:"entries,omitempty"`
	More    bool       `json:"more,omitempty"`
	// Cwd is the channel's current directory after a chdir.
	Cwd  string `json:"cwd,omitempty"`
	Hash string `json:"hash,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *FileReply) Validate() error {
	if m.Error != nil {
		return m.Error.Validate()
	}
	if len(m.Entries) > MaxEntries {
		return fmt.Errorf("%w: more than %d entries in one reply", ErrInvalid, MaxEntries)
	}
	if m.Info != nil {
		if err := m.Info.Validate(); err != nil {
			return err
		}
	}
	for i := range m.Entries {
		if err := m.Entries[i].Validate(); err != nil {
			return err
		}
	}
	if err := checkPathField("cwd", m.Cwd); err != nil {
		return err
	}
	return checkHash(m.Hash)
}

// WindowMsg grants Credit more bytes on one stream of a channel.
type WindowMsg struct {
	Stream Type   `json:"stream"`
	Credit uint32 `json:"credit"`
}

// Validate checks the message against SPEC.md.
func (m *WindowMsg) Validate() error {
	if !m.Stream.IsData() {
		return fmt.Errorf("%w: window for non-stream %s", ErrInvalid, m.Stream)
	}
	if m.Credit == 0 || m.Credit > MaxWindow {
		return fmt.Errorf("%w: credit %d outside [1, %d]", ErrInvalid, m.Credit, MaxWindow)
	}
	return nil
}

// SignalMsg asks the server to deliver a signal to the command's process group.
type SignalMsg struct {
	Signal string `json:"signal"`
}

// Validate checks the message against SPEC.md.
func (m *SignalMsg) Validate() error {
	if deliverable(m.Signal) {
		return nil
	}
	return fmt.Errorf("%w: unknown signal %q", ErrInvalid, m.Signal)
}

// ResizeMsg changes a pty's window size.
type ResizeMsg struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// Validate checks the message against SPEC.md.
func (m *ResizeMsg) Validate() error {
	if m.Cols == 0 || m.Rows == 0 {
		return fmt.Errorf("%w: zero window size", ErrInvalid)
	}
	return nil
}

// ExitMsg ends a channel. It is sent after the last stdout and stderr frame.
type ExitMsg struct {
	// Code is the exit status: 0..255 on Unix, the process's 32-bit exit
	// code (0..4294967295) on Windows (cmd's 9009 for an unknown command);
	// -1 when Signal is set.
	Code int64 `json:"code"`
	// Signal names the signal that ended the command, e.g. "TERM".
	Signal string `json:"signal,omitempty"`
	// CoreDumped reports that the command dumped core.
	CoreDumped bool `json:"core_dumped,omitempty"`
	// DurationMS is the command's wall-clock run time.
	DurationMS int64 `json:"duration_ms"`
	// TimedOut reports that the server ended the command at its time limit.
	TimedOut bool `json:"timed_out,omitempty"`
	// Message explains an abnormal end (time limit, shutdown), if any.
	Message string `json:"message,omitempty"`
	// Encoding names how the command's output was transcoded to UTF-8
	// ("utf-8" and "raw": untouched; "gbk", "gb18030", "windows-1252"...).
	Encoding string `json:"encoding,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *ExitMsg) Validate() error {
	if m.Signal == "" && (m.Code < 0 || m.Code > math.MaxUint32) {
		return fmt.Errorf("%w: exit code %d outside [0, %d]", ErrInvalid, m.Code, uint32(math.MaxUint32))
	}
	if len(m.Encoding) > MaxEncodingLen {
		return fmt.Errorf("%w: encoding name too long", ErrInvalid)
	}
	if m.Signal != "" && m.Code != -1 {
		return fmt.Errorf("%w: code must be -1 with a signal", ErrInvalid)
	}
	if m.DurationMS < 0 || len(m.Message) > MaxMessageLen {
		return fmt.Errorf("%w: bad duration or message", ErrInvalid)
	}
	return nil
}

// ErrorMsg reports a failure. On channel 0 it ends the connection; on any
// other channel it ends that channel (an Open that failed, or a frame that
// referred to a channel that is not open).
type ErrorMsg struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Validate checks the message against SPEC.md.
func (m *ErrorMsg) Validate() error {
	if m.Code == "" || len(m.Message) > MaxMessageLen {
		return fmt.Errorf("%w: error needs a code and a message of at most %d bytes", ErrInvalid, MaxMessageLen)
	}
	return nil
}

// Error makes a received ErrorMsg usable as a Go error.
func (m *ErrorMsg) Error() string {
	return fmt.Sprintf("%s (%s)", m.Message, m.Code)
}

// GoAwayMsg tells the client that no new channels will be accepted.
type GoAwayMsg struct {
	Reason string `json:"reason"`
}

// Validate checks the message against SPEC.md.
func (m *GoAwayMsg) Validate() error {
	if len(m.Reason) > MaxMessageLen {
		return fmt.Errorf("%w: reason too long", ErrInvalid)
	}
	return nil
}

// Message is implemented by every control message.
type Message interface {
	Validate() error
}

// Marshal encodes a control message as compact JSON.
func Marshal(m any) ([]byte, error) {
	p, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return p, nil
}

// Unmarshal decodes a control payload into m and validates it. The payload
// must be exactly one JSON object; unknown fields are ignored so that later
// versions can add fields, but a key given twice, or differing from a
// field's name only in case, is refused (ErrMalformed): the SPEC's names
// are exact.
func Unmarshal(p []byte, m Message) error {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || p[0] != '{' {
		return fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	if err := dec.Decode(m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after JSON object", ErrMalformed)
	}
	if err := checkStrict(p, reflect.TypeOf(m)); err != nil {
		return err
	}
	return m.Validate()
}
