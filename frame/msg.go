package frame

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Limits on control message fields, checked by Validate.
const (
	MaxArgs        = 4096    // argv entries
	MaxEnv         = 1024    // environment entries
	MaxPingPayload = 64      // bytes echoed by Pong
	MaxWindow      = 1 << 30 // largest credit a single window message may grant
	MaxTermLen     = 64      // bytes in a terminal type
	MaxMessageLen  = 4096    // bytes in an error or go-away message
)

// Channel kinds an OpenMsg may ask for.
const (
	KindExec = "exec"
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
}

// Validate checks the hello against SPEC.md.
func (m *HelloMsg) Validate() error {
	if m.MaxPayload < MinMaxPayload || m.MaxPayload > MaxMaxPayload {
		return fmt.Errorf("%w: max_payload %d outside [%d, %d]", ErrInvalid, m.MaxPayload, MinMaxPayload, MaxMaxPayload)
	}
	if m.KeepAliveMS < 0 {
		return fmt.Errorf("%w: negative keepalive_ms", ErrInvalid)
	}
	return nil
}

// PtyRequest asks for a pseudo-terminal.
type PtyRequest struct {
	Term string `json:"term"`
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// OpenMsg asks the server to start a command on a new channel.
type OpenMsg struct {
	// Kind is KindExec.
	Kind string `json:"kind"`
	// Argv is the command and its arguments, run without a shell.
	Argv []string `json:"argv,omitempty"`
	// Shell, when non-empty, is a command line run by the platform shell
	// (sh -c on Unix). Exactly one of Argv and Shell is set.
	Shell string `json:"shell,omitempty"`
	// Env holds KEY=VALUE entries added to the command's environment.
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; empty means the server's default.
	Dir string `json:"dir,omitempty"`
	// Pty, when set, runs the command on a pseudo-terminal.
	Pty *PtyRequest `json:"pty,omitempty"`
	// TimeoutMS ends the command after this many milliseconds; 0 means none.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Window is the initial credit for each of stdout and stderr.
	Window uint32 `json:"window"`
}

// Validate checks the open request against SPEC.md.
func (m *OpenMsg) Validate() error {
	if m.Kind != KindExec {
		return fmt.Errorf("%w: unknown channel kind %q", ErrInvalid, m.Kind)
	}
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
	if m.Window == 0 || m.Window > MaxWindow {
		return fmt.Errorf("%w: window %d outside [1, %d]", ErrInvalid, m.Window, MaxWindow)
	}
	return nil
}

// OpenOKMsg confirms an OpenMsg.
type OpenOKMsg struct {
	// Window is the initial stdin credit.
	Window uint32 `json:"window"`
	// PID is the command's process id on the server (informational).
	PID int `json:"pid,omitempty"`
}

// Validate checks the message against SPEC.md.
func (m *OpenOKMsg) Validate() error {
	if m.Window == 0 || m.Window > MaxWindow {
		return fmt.Errorf("%w: window %d outside [1, %d]", ErrInvalid, m.Window, MaxWindow)
	}
	return nil
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

// Signal names accepted in SignalMsg.
var signalNames = []string{"INT", "TERM", "HUP", "KILL", "QUIT", "USR1", "USR2", "ALRM", "STOP", "CONT", "WINCH", "PIPE"}

// SignalNames returns the signal names the protocol defines.
func SignalNames() []string { return append([]string(nil), signalNames...) }

// SignalMsg asks the server to deliver a signal to the command's process group.
type SignalMsg struct {
	Signal string `json:"signal"`
}

// Validate checks the message against SPEC.md.
func (m *SignalMsg) Validate() error {
	for _, s := range signalNames {
		if s == m.Signal {
			return nil
		}
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
	// Code is the exit status, 0..255; -1 when Signal is set.
	Code int `json:"code"`
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
}

// Validate checks the message against SPEC.md.
func (m *ExitMsg) Validate() error {
	if m.Signal == "" && (m.Code < 0 || m.Code > 255) {
		return fmt.Errorf("%w: exit code %d outside [0, 255]", ErrInvalid, m.Code)
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
// versions can add fields.
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
	return m.Validate()
}
