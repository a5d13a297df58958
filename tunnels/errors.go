package tunnels

import "errors"

// Errors from reading and writing router messages.
var (
	// ErrMessageTooLarge means a friend announced a control message larger
	// than MaxControlMsg. The stream cannot be used any more.
	ErrMessageTooLarge = errors.New("router message too large")
	// ErrUnknownMessage means a control message carried a type this
	// version does not know. It was consumed whole: skip it and read on.
	ErrUnknownMessage = errors.New("unknown router message type")
	// ErrInvalidMessage means a control message broke the protocol (bad
	// lengths, depth above MaxDepth, empty query, ...). The friend that
	// sent it is broken or hostile: close its router stream.
	ErrInvalidMessage = errors.New("invalid router message")
)

// Errors from sealing and opening search results.
var (
	// ErrSealedInvalid means sealed results could not be opened: they were
	// not sealed to this key, were altered, or hold a malformed list.
	ErrSealedInvalid = errors.New("sealed results are invalid")
	// ErrTooManyResults means Seal was given more than MaxFilesPerResult
	// files, or a file that does not fit the limits.
	ErrTooManyResults = errors.New("too many or too large results")
)

// Errors from end-to-end sessions.
var (
	// ErrHandshake means the Noise handshake of a session failed: a wrong
	// key, a peer that is not who was asked for, or a broken stream.
	ErrHandshake = errors.New("tunnel handshake failed")
	// ErrBadFrame means a session frame could not be authenticated or was
	// malformed. The tunnel was tampered with or broke; it is unusable.
	ErrBadFrame = errors.New("bad tunnel frame")
	// ErrTruncated means a session's stream ended without the peer's
	// authenticated end-of-stream mark: a link of the tunnel dropped.
	// Session.Read returns it joined with io.ErrUnexpectedEOF.
	ErrTruncated = errors.New("tunnel closed without end of stream")
	// ErrSessionExhausted means one direction of a session carried
	// MaxSessionFrames frames; a new session is needed.
	ErrSessionExhausted = errors.New("tunnel session exhausted its nonces")
	// ErrSessionClosed is returned by Write after CloseWrite or Close, and
	// by Read after Close.
	ErrSessionClosed = errors.New("tunnel session closed")
	// ErrNoDeadline means the underlying stream of a session does not
	// support deadlines.
	ErrNoDeadline = errors.New("underlying stream has no deadlines")
)

// --- Router (router.go, router_tunnel.go).
var (
	// ErrRouterClosed means the Router was closed.
	ErrRouterClosed = errors.New("router closed")
	// ErrNoTunnel means no holder answered a tunnel request in time: the
	// file is not reachable through friends now; try again later.
	ErrNoTunnel = errors.New("no tunnel to the target")
)
