package share

import "errors"

// Errors from hashing and verification.
var (
	// ErrSizeChanged means a file did not hold the number of bytes it was
	// said to have while it was hashed; it probably changed on disk.
	ErrSizeChanged = errors.New("file size changed while hashing")
	// ErrFileTooLarge means a size exceeds MaxFileSize.
	ErrFileTooLarge = errors.New("file too large")
	// ErrBadOutboard means an outboard does not fit the file size it is
	// used with.
	ErrBadOutboard = errors.New("outboard does not match file size")
	// ErrBadRange means a group range is empty, too long or outside the file.
	ErrBadRange = errors.New("bad group range")
	// ErrBadProof means a proof or data buffer has the wrong length for the
	// range it claims to prove.
	ErrBadProof = errors.New("proof or data has wrong length")
	// ErrMismatch means data and proof do not hash to the expected root:
	// the sender is broken or lying.
	ErrMismatch = errors.New("data does not match root")
	// ErrPartialChanged means a download's partial file no longer holds
	// what was written to it: something else truncated or changed it.
	ErrPartialChanged = errors.New("the partial file changed on disk")
)

// Errors from ParseLink.
var (
	// ErrLinkTooLong means a link is longer than MaxLinkLen.
	ErrLinkTooLong = errors.New("link too long")
	// ErrBadScheme means a link does not start with kith://file/ or
	// kith://folder/.
	ErrBadScheme = errors.New("not a kith://file/ or kith://folder/ link")
	// ErrBadRoot means a root is not 64 hexadecimal digits.
	ErrBadRoot = errors.New("root is not 64 hex digits")
	// ErrBadSize means a size is not a non-negative decimal integer.
	ErrBadSize = errors.New("bad size")
	// ErrBadName means a name is empty, too long, not UTF-8, holds a path
	// separator or control character, or is "." or "..".
	ErrBadName = errors.New("bad file name")
	// ErrBadLink means a link is malformed in another way, such as a
	// repeated parameter or a fragment.
	ErrBadLink = errors.New("malformed link")
)

// Errors from reading and writing share protocol messages.
var (
	// ErrMessageTooLarge means a peer announced a message larger than
	// MaxMessageSize. The stream cannot be used any more.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrUnknownMessage means a frame carried no message type this version
	// knows. The frame was consumed whole, so the stream stays usable and
	// the request can be answered with CodeUnknownRequest.
	ErrUnknownMessage = errors.New("unknown message type")
	// ErrBadMessage means a message was decoded but holds invalid values.
	// For anything but a RangeReply the frame was consumed whole and the
	// stream stays usable.
	ErrBadMessage = errors.New("invalid message")
	// ErrNoPayload means ReadPayload was called for more bytes than the
	// current range reply carries.
	ErrNoPayload = errors.New("read past range payload")
)

// Server and peer errors.
var (
	// ErrPeerClosed means a share stream was closed or broke; every request
	// pending on it, and every later one, fails with an error wrapping it.
	ErrPeerClosed = errors.New("share stream closed")
	// ErrBadReply means a peer answered out of order, with the wrong kind of
	// reply, or with a range reply whose lengths do not fit the request. The
	// peer is broken or lying, and the stream is closed.
	ErrBadReply = errors.New("bad reply from peer")
	// ErrStreamIdle means a share stream moved no bytes either way for the
	// server's idle timeout and was closed.
	ErrStreamIdle = errors.New("share stream idle")
	// ErrBadRate means a rate is not a non-negative number of bytes per
	// second such as "64MiB" or "10MB".
	ErrBadRate = errors.New("bad rate")
)

// Index errors.
var (
	// ErrNotShared means a folder is not one of the node's shares.
	ErrNotShared = errors.New("folder is not shared")
	// ErrNestedShare means a folder lies inside another share or holds
	// one: a file must belong to one share only.
	ErrNestedShare = errors.New("folder is inside or contains another share")
	// ErrNotFolder means a path given as a share is not a folder.
	ErrNotFolder = errors.New("not a folder")
	// ErrShareUnreadable means a shared folder could not be listed, so a
	// scan left its index as it was (the folder may be on a drive that is
	// not mounted).
	ErrShareUnreadable = errors.New("shared folder cannot be read")
	// ErrNoSuchPath means a browse path names nothing a friend may list. A
	// folder that is not browsable gives the same error as one that does
	// not exist.
	ErrNoSuchPath = errors.New("no such shared path")
	// ErrBadQuery means a search query is empty of words, longer than
	// MaxQueryLen bytes or has more than MaxQueryWords words.
	ErrBadQuery = errors.New("bad search query")
)

// Folder errors.
var (
	// ErrBadManifest means a folder manifest is too large, malformed, or
	// lists a path that is not relative and clean, a path twice, a tree
	// too deep, too many files or too many bytes: the whole folder is
	// refused and nothing of it is written.
	ErrBadManifest = errors.New("bad folder manifest")
	// ErrIsFolder means a folder link was given where a file link was
	// expected: a folder is downloaded with AddFolder.
	ErrIsFolder = errors.New("link names a folder")
	// ErrNoSuchFolder means no folder download has the given root.
	ErrNoSuchFolder = errors.New("no such folder download")
	// ErrNoManifest means no source could give a folder's manifest.
	ErrNoManifest = errors.New("no source has the folder's manifest")
	// ErrNotStreamable means a file cannot be streamed: it is neither
	// being downloaded nor downloaded.
	ErrNotStreamable = errors.New("file is not being downloaded")
)
