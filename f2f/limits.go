package f2f

import "time"

// Limits of the f2f layer, in one place. Values that bytes from a peer or a
// pasted invite could push are bounded here.
const (
	// MaxInviteText bounds an invite's text form.
	MaxInviteText = 4096
	// MaxInviteAddrs bounds the addresses carried in one invite.
	MaxInviteAddrs = 16
	// MaxNameLen bounds a nickname in bytes.
	MaxNameLen = 64
	// MaxStoredAddrs bounds the addresses remembered per friend.
	MaxStoredAddrs = 16
	// StreamsPerPeer caps the streams one friend may hold open with us,
	// enforced by libp2p's resource manager.
	StreamsPerPeer = 512
	// MaxStreams caps the streams of the whole host, and of any one
	// protocol, in each direction. It is fixed rather than scaled to the
	// machine so that the tunnels the router admits (tunnels.MaxTunnels,
	// an inbound and an outbound stream each) fit on any machine.
	MaxStreams = 8192
	// ConnsPerPeer caps concurrent connections per friend.
	ConnsPerPeer = 8
	// MaxConns caps all connections of the host (friends only, by the gater).
	MaxConns = 1024
	// HostMemory bounds the resource manager's memory for the whole host.
	HostMemory = 1 << 30
)

// Redial backoff for friends that cannot be reached.
const (
	// RedialMin is the first wait after a failed dial or a lost connection.
	RedialMin = time.Second
	// RedialMax caps the exponential backoff between dials.
	RedialMax = 5 * time.Minute
	// DialTimeout bounds one dial attempt (all addresses of a friend).
	DialTimeout = 15 * time.Second
	// ConnProbeTimeout bounds the ping that tells a friend's live
	// connection from a dead one when the friend reconnects.
	ConnProbeTimeout = 3 * time.Second
)
