// Package frame is the wire format of execd and rexec: a fixed binary header
// followed by a payload, frame types and flags, the JSON control messages,
// and a Reader and Writer that enforce the limits. It knows nothing of
// sockets, commands or policy. frame/SPEC.md is the authoritative text.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire layout of the header. Every width is named; HeaderSize is their sum.
const (
	VersionSize  = 1 // u8: protocol version, first so that it can always be read
	TypeSize     = 1 // u8: frame type
	FlagsSize    = 1 // u8: flag bits, see Flags
	ReservedSize = 1 // u8: must be zero
	ChannelSize  = 4 // u32 big-endian: channel id, 0 for the connection
	LengthSize   = 4 // u32 big-endian: payload length in bytes

	// HeaderSize is the size of every frame header on the wire.
	HeaderSize = VersionSize + TypeSize + FlagsSize + ReservedSize + ChannelSize + LengthSize
)

// Byte offsets of the header fields.
const (
	offVersion  = 0
	offType     = offVersion + VersionSize
	offFlags    = offType + TypeSize
	offReserved = offFlags + FlagsSize
	offChannel  = offReserved + ReservedSize
	offLength   = offChannel + ChannelSize
)

// Version is the only protocol version this package speaks.
const Version uint8 = 1

// Payload limits.
const (
	// DefaultMaxPayload is the largest payload a peer accepts unless it
	// announces another limit in its hello.
	DefaultMaxPayload = 256 << 10
	// MinMaxPayload is the smallest limit a peer may announce: every
	// control message of the protocol fits in it.
	MinMaxPayload = 4 << 10
	// MaxMaxPayload is the largest limit a peer may announce.
	MaxMaxPayload = 16 << 20
)

// ConnChannel is the channel id of frames that concern the whole connection
// (hello, ping, pong, go-away, connection errors).
const ConnChannel uint32 = 0

// Type identifies what a frame carries.
type Type uint8

// Frame types. Control payloads are JSON objects; data payloads are raw bytes.
const (
	// Hello opens a connection in each direction (JSON HelloMsg, channel 0).
	Hello Type = 0x01
	// Ping asks the peer for a Pong echoing its payload (raw, at most 64 bytes, channel 0).
	Ping Type = 0x02
	// Pong answers a Ping with the same payload (raw, channel 0).
	Pong Type = 0x03
	// GoAway tells the client that the server accepts no new channels (JSON GoAwayMsg, channel 0).
	GoAway Type = 0x04
	// Error reports a failure of a channel, or of the connection on channel 0 (JSON ErrorMsg).
	Error Type = 0x05
	// Auth is one authentication attempt by the client (JSON AuthMsg, channel 0).
	Auth Type = 0x06
	// AuthReply answers an Auth: accepted, or refused with the methods left
	// (JSON AuthReplyMsg, channel 0).
	AuthReply Type = 0x07

	// Open asks the server to open a channel: a command, a file transfer or
	// a file session (JSON OpenMsg).
	Open Type = 0x10
	// OpenOK confirms an Open (JSON OpenOKMsg).
	OpenOK Type = 0x11
	// Close abandons a channel: the server ends its command or transfer (empty payload).
	Close Type = 0x12

	// Stdin carries bytes for the command's standard input (raw).
	Stdin Type = 0x20
	// Stdout carries bytes of the command's standard output (raw).
	Stdout Type = 0x21
	// Stderr carries bytes of the command's standard error (raw).
	Stderr Type = 0x22
	// Data carries file bytes: daemon to client on a get channel, client to
	// daemon on a put channel (raw).
	Data Type = 0x23

	// Window grants the peer more credit on one stream (JSON WindowMsg).
	Window Type = 0x30
	// Signal asks the server to signal the command's process group (JSON SignalMsg).
	Signal Type = 0x31
	// Resize changes the pty window size (JSON ResizeMsg).
	Resize Type = 0x32
	// Exit ends a channel with the command's status (JSON ExitMsg).
	Exit Type = 0x33
	// Done ends a file transfer with the size and hash of the whole file
	// (JSON DoneMsg): sent by the sender after its last Data frame, and by
	// the daemon to confirm a put that was committed.
	Done Type = 0x34

	// Request asks for one file operation on an fs channel (JSON FileRequest).
	Request Type = 0x40
	// Reply answers a Request (JSON FileReply).
	Reply Type = 0x41
)

var typeNames = map[Type]string{
	Hello: "hello", Ping: "ping", Pong: "pong", GoAway: "goaway", Error: "error",
	Auth: "auth", AuthReply: "auth_reply",
	Open: "open", OpenOK: "open_ok", Close: "close",
	Stdin: "stdin", Stdout: "stdout", Stderr: "stderr", Data: "data",
	Window: "window", Signal: "signal", Resize: "resize", Exit: "exit", Done: "done",
	Request: "request", Reply: "reply",
}

// String returns the lowercase wire name of t, or "type(0xNN)" when unknown.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%#02x)", uint8(t))
}

// Known reports whether t is a frame type of this version.
func (t Type) Known() bool {
	_, ok := typeNames[t]
	return ok
}

// IsData reports whether t carries raw stream bytes (stdin, stdout, stderr,
// file data). Data streams are flow-controlled and may carry FlagEOF.
func (t Type) IsData() bool { return t == Stdin || t == Stdout || t == Stderr || t == Data }

// MarshalText encodes a stream type by name, as in {"stream":"stdout"}.
func (t Type) MarshalText() ([]byte, error) {
	if !t.Known() {
		return nil, fmt.Errorf("%w: %s", ErrUnknownType, t)
	}
	return []byte(t.String()), nil
}

// UnmarshalText decodes a type name written by MarshalText.
func (t *Type) UnmarshalText(b []byte) error {
	for k, v := range typeNames {
		if v == string(b) {
			*t = k
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrUnknownType, b)
}

// Flags are the header's flag bits.
type Flags uint8

const (
	// FlagEOF on a data frame ends that stream after its payload.
	FlagEOF Flags = 1 << iota

	knownFlags = FlagEOF
)

// Sentinel errors. Every error of this package wraps one of them.
var (
	// ErrTooLarge is returned when a declared payload length exceeds the limit.
	ErrTooLarge = errors.New("frame: payload too large")
	// ErrVersion is returned for a header whose version is not Version.
	ErrVersion = errors.New("frame: unsupported protocol version")
	// ErrUnknownType is returned for a frame type this version does not define.
	ErrUnknownType = errors.New("frame: unknown frame type")
	// ErrReserved is returned when the reserved byte is not zero.
	ErrReserved = errors.New("frame: reserved byte not zero")
	// ErrFlags is returned for flag bits that are undefined or not allowed on the type.
	ErrFlags = errors.New("frame: invalid flags")
	// ErrMalformed is returned for a control payload that is not the expected JSON object.
	ErrMalformed = errors.New("frame: malformed control message")
	// ErrInvalid is returned for a control message whose fields break the rules of SPEC.md.
	ErrInvalid = errors.New("frame: invalid control message")
	// ErrChannel is returned for a frame on the wrong kind of channel
	// (a connection frame on a channel, or a channel frame on channel 0).
	ErrChannel = errors.New("frame: wrong channel for frame type")
)

// Header is a decoded frame header.
type Header struct {
	Version uint8
	Type    Type
	Flags   Flags
	Channel uint32
	Length  uint32
}

// AppendHeader appends the wire form of h to b. Reserved is always zero.
func AppendHeader(b []byte, h Header) []byte {
	b = append(b, h.Version, byte(h.Type), byte(h.Flags), 0)
	b = binary.BigEndian.AppendUint32(b, h.Channel)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// ParseHeader decodes and checks a header: version, reserved byte, type,
// flags and channel. It does not check Length against a limit: that is the
// reader's job, because the limit is the reader's.
func ParseHeader(b [HeaderSize]byte) (Header, error) {
	h := Header{
		Version: b[offVersion],
		Type:    Type(b[offType]),
		Flags:   Flags(b[offFlags]),
		Channel: binary.BigEndian.Uint32(b[offChannel:]),
		Length:  binary.BigEndian.Uint32(b[offLength:]),
	}
	if h.Version != Version {
		return h, fmt.Errorf("%w: %d (this side speaks %d)", ErrVersion, h.Version, Version)
	}
	if b[offReserved] != 0 {
		return h, ErrReserved
	}
	if !h.Type.Known() {
		return h, fmt.Errorf("%w: %#02x", ErrUnknownType, uint8(h.Type))
	}
	if h.Flags&^knownFlags != 0 || (h.Flags&FlagEOF != 0 && !h.Type.IsData()) {
		return h, fmt.Errorf("%w: %#02x on %s", ErrFlags, uint8(h.Flags), h.Type)
	}
	if connLevel(h.Type) != (h.Channel == ConnChannel) && h.Type != Error {
		return h, fmt.Errorf("%w: %s on channel %d", ErrChannel, h.Type, h.Channel)
	}
	return h, nil
}

// connLevel reports whether frames of type t belong on channel 0.
func connLevel(t Type) bool {
	switch t {
	case Hello, Ping, Pong, GoAway, Auth, AuthReply:
		return true
	}
	return false
}

// Tracer watches frames as they cross the wire: out is true for a frame
// this side sent. The payload is borrowed for the call. Tracing is for
// people (rexec --trace, execd --trace); it never changes a frame.
type Tracer interface {
	TraceFrame(out bool, h Header, payload []byte)
}
