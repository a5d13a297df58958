package node

import "time"

// Limits of the web UI's server (web.go). The server listens on loopback
// only, but any local process, and any web page the user's browser opens,
// can reach it: these bound what such a caller can make the daemon hold.
const (
	// DefaultWebPort is the port `kith init` picks for the web UI on
	// 127.0.0.1 when it is free (another free port otherwise), so that the
	// page's address stays the same across restarts and can be bookmarked.
	DefaultWebPort = 8731

	// WebLoginTTL is how long a login link printed by `kith web` works: long
	// enough to paste it into a browser, short enough that one left in a
	// terminal's scroll-back is useless later. It works once in any case.
	WebLoginTTL = 5 * time.Minute
	// MaxWebLoginTokens bounds the login tokens waiting to be used (each is
	// 32 bytes and an expiry); the oldest is forgotten when one more is made.
	MaxWebLoginTokens = 16
	// MaxWebSessions bounds the logged-in browser sessions the daemon keeps
	// in memory; the least recently used is ended when one more logs in.
	MaxWebSessions = 32
	// WebSessionIdle ends a session not used for this long; sessions live
	// in memory only, so a restart of the daemon ends them all too.
	WebSessionIdle = 7 * 24 * time.Hour

	// MaxWebConns bounds the TCP connections the web server serves at once
	// (a browser opens at most six per origin, one held by the event
	// stream); more wait in the kernel's backlog.
	MaxWebConns = 64
	// maxWebHeaderBytes bounds a request's header block.
	maxWebHeaderBytes = 64 << 10
	// maxQRText bounds the text of a QR code request: an invite is at most
	// f2f's 4096 bytes, and a QR code holds at most 2953 bytes anyway.
	maxQRText = 4096
)
