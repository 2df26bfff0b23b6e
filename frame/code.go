package frame

import (
	"errors"
	"io"
)

// RemoteError is a failure the peer reported in an error frame: the
// refusal of an open, the failure of a channel, or the end of the whole
// connection. It is the one error type for everything the peer reports;
// errors.As also finds the wire message (*ErrorMsg) through it.
type RemoteError struct {
	Code    Code
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap gives the wire message the error came from.
func (e *RemoteError) Unwrap() error { return &ErrorMsg{Code: e.Code, Message: e.Message} }

// Code is the machine-readable reason carried by an Error frame.
type Code string

// Error codes. SPEC.md lists which are fatal for the connection.
const (
	CodeTooLarge          Code = "too_large"           // declared length over the limit
	CodeVersion           Code = "unsupported_version" // header version not spoken here
	CodeUnknownType       Code = "unknown_type"        // frame type not defined
	CodeBadFrame          Code = "bad_frame"           // reserved byte, flags or channel wrong
	CodeTruncated         Code = "truncated"           // stream ended inside a frame
	CodeMalformed         Code = "malformed_message"   // control payload is not the JSON expected
	CodeInvalid           Code = "invalid_message"     // control message breaks a rule
	CodeHelloRequired     Code = "hello_required"      // a frame came before the hello
	CodeUnexpected        Code = "unexpected_frame"    // a frame the state machine does not allow
	CodeNoChannel         Code = "no_such_channel"     // frame for a channel that was never opened
	CodeChannelInUse      Code = "channel_in_use"      // Open with an id already used
	CodeFlowControl       Code = "flow_control"        // data beyond the granted credit
	CodeHandshakeTimeout  Code = "handshake_timeout"   // no hello in time
	CodeIdleTimeout       Code = "idle_timeout"        // no channel open for too long
	CodeKeepaliveTimeout  Code = "keepalive_timeout"   // a ping went unanswered
	CodeTooManyConns      Code = "too_many_connections"
	CodeTooManyChannels   Code = "too_many_channels"
	CodeShuttingDown      Code = "shutting_down" // server is stopping
	CodeExecFailed        Code = "exec_failed"   // the command could not be started
	CodeNotSupported      Code = "not_supported" // a feature this server lacks
	CodeInternal          Code = "internal_error"
	CodeConnectionClosing Code = "closing"        // orderly close by the peer
	CodeAuthRequired      Code = "auth_required"  // a channel was opened before authentication succeeded
	CodeAuthFailed        Code = "auth_failed"    // too many failed attempts, or none in time
	CodeNotPermitted      Code = "not_permitted"  // the user lacks the permission (exec, get, put)
	CodeQuota             Code = "quota_exceeded" // the user's quota would be exceeded
	CodeUserLimit         Code = "user_limit"     // the user's limit of connections or channels is reached
	CodeRevoked           Code = "revoked"        // the user was removed, or the login's key or password withdrawn, or the user's account changed

	// File operations; these end a channel or answer a Request, never the connection.
	CodeNotFound    Code = "not_found"         // no such file or directory
	CodeExists      Code = "exists"            // the target already exists
	CodePermission  Code = "permission_denied" // the OS refused access
	CodeNotDir      Code = "not_a_directory"
	CodeIsDir       Code = "is_a_directory"
	CodeNotEmpty    Code = "directory_not_empty"
	CodeBadPath     Code = "bad_path"     // a path the protocol does not allow (absolute, backslash, NUL, too long)
	CodePathEscape  Code = "path_escape"  // the path leads outside the served directory
	CodeIntegrity   Code = "integrity"    // the hash of what arrived differs from the sender's
	CodeFileChanged Code = "file_changed" // the source changed while it was being sent
	CodeNoSpace     Code = "no_space"     // the disk or a quota is full
	CodeIO          Code = "io_error"     // any other file system error
)

// CodeOf maps an error of this package (or io.ErrUnexpectedEOF) to the code
// an Error frame should carry. Unknown errors map to CodeInternal.
func CodeOf(err error) Code {
	switch {
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrVersion):
		return CodeVersion
	case errors.Is(err, ErrUnknownType):
		return CodeUnknownType
	case errors.Is(err, ErrReserved), errors.Is(err, ErrFlags), errors.Is(err, ErrChannel):
		return CodeBadFrame
	case errors.Is(err, io.ErrUnexpectedEOF):
		return CodeTruncated
	case errors.Is(err, ErrMalformed):
		return CodeMalformed
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	}
	return CodeInternal
}
