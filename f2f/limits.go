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
	// both directions together, enforced by libp2p's resource manager.
	StreamsPerPeer = 512
	// InboundStreamsPerPeer caps the streams one friend may open to us at
	// once. It bounds what the resource manager does not see: yamux gives
	// every new stream a 256 KiB receive window without a reservation, so
	// one friend can make us buffer up to InboundStreamsPerPeer x 256 KiB
	// (48 MiB) before any handler reads or resets its streams. What a
	// friend needs is far less: 80 tunnel streams (tunnels'
	// MaxTunnelStreamsPerFriend), 16 share, 8 DHT, 4 chat, 2 lobby, 2
	// router, and a few of libp2p's own.
	InboundStreamsPerPeer = 192
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
	// PeerMemory bounds the memory one peer's connections and streams may
	// hold in the resource manager (muxer windows, frame buffers charged
	// to stream scopes): one friend can take at most an eighth of
	// HostMemory, so eight misbehaving friends are needed to starve the
	// rest. 128 MiB still lets a fast friend's yamux windows grow to
	// their 16 MiB maximum on several streams at once.
	PeerMemory = 128 << 20
	// StreamMemory bounds the memory of one stream in the resource
	// manager. yamux grows a stream's receive window (to 16 MiB) only
	// while every scope it is charged to stays at most half full, so a
	// stream needs twice its window and what its protocol reserves for
	// frames: libp2p's default of 16 MiB stops windows at 8 MiB, about
	// 80 MiB/s at 100 ms.
	StreamMemory = 40 << 20
	// TransientMemory bounds what streams and connections may hold
	// before their protocol or peer is known (multistream negotiation,
	// handshakes): nothing of ours runs there, so it is small.
	TransientMemory = 64 << 20
	// MaxConnsPerIP caps concurrent connections from one IPv4 address
	// (or IPv6 /56), in libp2p's resource manager. Its default of 8 would
	// refuse the ninth friend behind one NAT; 64 still bounds the
	// half-open handshakes one source can hold.
	MaxConnsPerIP = 64
)

// Admission of inbound connections before the security handshake (see
// admission.go). A stranger is refused by the gater only after the
// handshake, which costs the node a key exchange and a signature (about
// 0.5 ms of CPU each way); these rates bound how often a source that is
// not a known friend endpoint may make it pay that.
const (
	// HandshakeRatePerIP is the sustained rate, per second, of inbound
	// connections allowed to start a handshake from one IP (IPv6: one
	// /56) that is not a known friend endpoint. A friend that moved
	// reconnects in one or two attempts; a flood gets 2 a second.
	HandshakeRatePerIP = 2.0
	// HandshakeBurstPerIP is how many such connections one IP may start
	// at once: enough for several friends behind one NAT coming back
	// together after we restart.
	HandshakeBurstPerIP = 16
	// HandshakeRate is the sustained rate, per second, of such
	// connections from all sources together: 32 handshakes a second cost
	// under 2% of a core.
	HandshakeRate = 32.0
	// HandshakeBurst is how many such connections all sources together
	// may start at once.
	HandshakeBurst = 64
	// KnownHandshakeRate is the sustained rate, per second, of inbound
	// connections from known friend endpoints, all together: they skip
	// the per-IP buckets (so friends behind a stranger's IP get in), but
	// a friend reconnecting in a loop still costs a bounded CPU.
	KnownHandshakeRate = 16.0
	// KnownHandshakeBurst is how many connections from known friend
	// endpoints may start at once (every friend coming back together
	// after we restart).
	KnownHandshakeBurst = 128
	// MaxTrackedSources bounds the per-IP buckets kept at once. A bucket
	// exists only for a source admitted in the last
	// HandshakeBurstPerIP/HandshakeRatePerIP seconds (a full bucket is
	// dropped: it is the same as none), and only admitted sources get
	// one, so HandshakeBurst + HandshakeRate*8 s = 320 are ever needed.
	MaxTrackedSources = 4096
	// MaxKnownEndpoints bounds the remote endpoints (IP and port) of
	// friends' past inbound connections that skip the rate limits.
	MaxKnownEndpoints = 4096
	// KnownEndpointTTL is how long such an endpoint is remembered.
	KnownEndpointTTL = 24 * time.Hour
)

// Addresses of friends (see addrs.go).
const (
	// MaxAddrLen bounds one stored or dialled address in bytes: an IP,
	// a port, a transport and a peer ID fit in 64; 128 leaves room for
	// DNS names.
	MaxAddrLen = 128
	// UnconfirmedAddrTTL is how long an address we never connected to
	// is kept after it was last learned (from an invite, identify or the
	// DHT); a friend's current addresses are learned again at each
	// connection, stale ones go.
	UnconfirmedAddrTTL = 72 * time.Hour
	// MaxUnconfirmedDials is how many failed dials an address we never
	// connected to survives: with the redial backoff that is about two
	// hours of a friend being away, then the node stops dialling what a
	// friend told it and waits to be dialled or found through the DHT.
	MaxUnconfirmedDials = 32
	// AddrWorkedRefresh is how stale the stored time an address last
	// worked may get before another connection to it is written to disk
	// (one write per reconnect would be one per friend per redial).
	AddrWorkedRefresh = time.Hour
	// AddrExpiryInterval is how often the Connector drops expired
	// addresses.
	AddrExpiryInterval = time.Minute
	// InterfaceRefresh is how long the list of our own interface
	// networks (which private ranges we share) is cached.
	InterfaceRefresh = 30 * time.Second
)

// Friends DHT (see dht.go, kad.go, lookup.go).
const (
	// KadMaxMessage bounds one friends-DHT message: a request is under
	// 100 bytes, an answer names one peer with at most MaxStoredAddrs
	// addresses of at most MaxAddrLen bytes (about 2.2 KiB).
	KadMaxMessage = 16 << 10
	// KadFrameTimeout bounds the time from a DHT message's first byte to
	// its last: a friend trickling a frame holds a stream that long.
	KadFrameTimeout = 5 * time.Second
	// KadIdleTimeout closes a DHT stream that carries no request for
	// this long.
	KadIdleTimeout = 30 * time.Second
	// KadRequestTimeout bounds one request of ours, answer included.
	KadRequestTimeout = 10 * time.Second
	// KadStreamsPerPeer caps the DHT streams one friend may have open
	// with us at once (resource manager, per protocol per peer). A
	// lookup asks a peer one question at a time; 8 leaves room for
	// lookups running side by side.
	KadStreamsPerPeer = 8
	// LookupStreamsPerPeer caps one friend's concurrent lookup-grant
	// streams (one message each).
	LookupStreamsPerPeer = 2
	// MaxLookupVerifiers bounds the verifiers one friend's grant may
	// carry (one per friend of theirs, padded): 1024 x 16 bytes is 16 KiB
	// held per friend.
	MaxLookupVerifiers = 1024
	// LookupVerifierPad rounds the verifiers we send up to a multiple of
	// this, with random fillers, so a friend learns our friend count only
	// to within 32.
	LookupVerifierPad = 32
	// LookupGrantMax bounds one grant message: MaxLookupVerifiers
	// verifiers of 16 bytes with their 2-byte tags.
	LookupGrantMax = 20 << 10
	// LookupGrantRate is how many grants per second we take from one
	// friend: it sends one per connection and per change of its friend
	// list, and each replaces the last, so more is only a friend making us
	// parse 20 KiB in a loop.
	LookupGrantRate = 1.0
	// LookupGrantBurst is how many grants of one friend we take at once.
	LookupGrantBurst = 8
	// LookupGrantDelay gathers changes of our friend list before we send
	// new grants.
	LookupGrantDelay = 200 * time.Millisecond
)

// Redial backoff for friends that cannot be reached.
const (
	// RedialMin is the first wait after a failed dial or a lost connection.
	RedialMin = time.Second
	// RedialMax caps the exponential backoff between dials.
	RedialMax = 5 * time.Minute
	// DialTimeout bounds one dial attempt (all addresses of a friend).
	DialTimeout = 15 * time.Second
	// MaxConcurrentLookups bounds the friends-DHT lookups the Connector
	// runs at once (each asks several friends): after a move, many stale
	// friends are looked up a few at a time, within every friend's
	// KadStreamsPerPeer.
	MaxConcurrentLookups = 4
	// ConnProbeTimeout bounds the ping that tells a friend's live
	// connection from a dead one when the friend reconnects.
	ConnProbeTimeout = 3 * time.Second
)

// Friends relay for friends (see relay.go, reserve.go). A relayed
// connection carries every kith protocol of a friend link until a direct
// path exists, so no single circuit is cut short (libp2p's default, 2
// minutes and 128 KiB, would end a friend link at once); what relaying
// costs the relay is capped as a whole instead.
const (
	// DefaultRelayRate is the relay's bandwidth cap, bytes per second, for
	// all the circuits it carries together, in both directions: 1 MiB/s
	// (8 Mbit/s) is a fifth of a modest home upload link, enough for
	// friend links, chat and browsing, and a download at a useful pace
	// for the friends that cannot hole-punch; `kith up --relay-rate`
	// changes it.
	DefaultRelayRate = 1 << 20
	// DefaultRelayCircuits caps the circuits the relay carries at once,
	// for all friends together: one per pair of friends that cannot
	// reach each other directly, with room for a few dozen.
	DefaultRelayCircuits = 32
	// RelayCircuitsPerPeer caps the circuits one friend may be an end
	// of at once (libp2p's MaxCircuits).
	RelayCircuitsPerPeer = 8
	// RelayReservations caps the friends that may hold a reservation
	// with us at once.
	RelayReservations = 128
	// RelayReservationsPerIP caps reservations from one IP (friends
	// behind one NAT).
	RelayReservationsPerIP = 16
	// RelayReservationTTL is how long a reservation lasts without a
	// refresh.
	RelayReservationTTL = time.Hour
	// RelayBufferSize is the copy buffer of one relayed direction
	// (libp2p's default is 2 KiB, which makes a fast transfer cost a
	// system call per 2 KiB); two per circuit, so DefaultRelayCircuits
	// circuits hold 2 MiB.
	RelayBufferSize = 32 << 10
	// RelayRateBurst is the burst of the relay's bandwidth cap: at
	// least one buffer, so that a copy never waits for more tokens than
	// the bucket holds.
	RelayRateBurst = 2 * RelayBufferSize
)

// Reservations a node behind NAT holds on friends (reserve.go).
const (
	// WantReservations is how many friends' relays a node that is not
	// directly reachable reserves on: two or more, so that one friend
	// going offline leaves a path.
	WantReservations = 3
	// ReserveTimeout bounds one reservation request.
	ReserveTimeout = 10 * time.Second
	// ReserveInterval is how often the reservations are checked: dropped
	// relays replaced, a better relay (one we dialled at a public
	// address) taken, renewals made.
	ReserveInterval = 2 * time.Second
	// ReserveRefresh is how often a reservation is renewed: a relay that
	// found itself behind NAT since refuses the renewal, and the slot is
	// dropped (one stream per relay every 5 minutes).
	ReserveRefresh = 5 * time.Minute
	// ReserveRetry is how long a relay that refused a reservation (or
	// failed) is left alone.
	ReserveRetry = time.Minute
	// MaxCircuitAddrsPerRelay bounds the circuit addresses we advertise
	// through one relay.
	MaxCircuitAddrsPerRelay = 4
)

// Reachability learned from friends (reach.go).
const (
	// MaxReachAddrs bounds the addresses one dial-back request may name
	// (and the answers to it).
	MaxReachAddrs = 8
	// ReachMaxMessage bounds one reach message: MaxReachAddrs addresses
	// of MaxAddrLen bytes with their framing.
	ReachMaxMessage = 2 << 10
	// ReachDialTimeout bounds one dial back (an address that drops
	// packets takes all of it): a handshake is three round trips, under
	// a second on any link a friend can use.
	ReachDialTimeout = 3 * time.Second
	// ReachRequestTimeout bounds a whole dial-back request, answer
	// included (its dials run side by side).
	ReachRequestTimeout = 15 * time.Second
	// ReachRequestRate is how many dial-back requests per second we
	// answer for one friend: a friend checks at start, when its
	// addresses change and every ReachRecheck.
	ReachRequestRate = 0.1
	// ReachRequestBurst is how many dial-back requests of one friend we
	// answer at once.
	ReachRequestBurst = 3
	// ReachConcurrent bounds the dial-back requests we answer at once,
	// for all friends together (each builds a short-lived dialler).
	ReachConcurrent = 4
	// ReachCheckers is how many friends a node asks to dial it back.
	ReachCheckers = 2
	// ReachRecheck is how often reachability is checked again when
	// nothing changed.
	ReachRecheck = 10 * time.Minute
	// ReachTick is how often Reach looks whether a check is due (a
	// change is checked ReachSettle after it, to this precision).
	ReachTick = 500 * time.Millisecond
	// ReserveUnknownDelay is how long a node that does not know yet
	// whether it is reachable waits for its friends' answer before it
	// reserves on their relays anyway (an answer takes a few seconds;
	// a node that is reachable then never holds a reservation).
	ReserveUnknownDelay = 6 * time.Second
	// ReachUnknownRetry is how often a node that knows nothing of its
	// reachability yet asks again.
	ReachUnknownRetry = 30 * time.Second
	// ReachSettle is how long after a change of our candidate addresses
	// (or a friend connecting while we know nothing) a check waits, to
	// gather more changes.
	ReachSettle = 2 * time.Second
	// ObservedAgree is how many friends (from different IPs) must report
	// the same observed address before it is advertised without a
	// dial-back confirming it; libp2p's own threshold (4 observers) is
	// more friends than many nodes have online.
	ObservedAgree = 2
	// MaxObservedAddrs bounds the observed addresses remembered (one
	// per friend and transport).
	MaxObservedAddrs = 256
	// AdvertiseRefresh is how long the interface addresses the node
	// advertises are cached: a new DHCP lease or another network shows
	// in the advertised addresses within this plus libp2p's 5 s address
	// tick (libp2p's own cache is a minute).
	AdvertiseRefresh = 2 * time.Second
)

// Moving networks and relayed links (connector.go).
const (
	// RelayedCloseDelay is how long a relayed connection to a friend
	// stays after a direct one identified: streams opened on it just
	// before finish their exchange, the long-lived ones reopen on the
	// direct connection.
	RelayedCloseDelay = 2 * time.Second
	// MaxLastError bounds the text of a friend's last dial error we keep
	// for `kith friend ls`.
	MaxLastError = 256
	// MaxConcurrentProbes bounds the pings that check our connections
	// after our addresses changed.
	MaxConcurrentProbes = 16
	// DirectUpgradeMin is how long a friend is connected only through a
	// relay before we dial its direct addresses (time for the hole
	// punch first), doubling up to DirectUpgradeMax while it stays so.
	DirectUpgradeMin = 10 * time.Second
	// DirectUpgradeMax caps the wait between such dials.
	DirectUpgradeMax = 10 * time.Minute
	// CircuitDialGrace is how long a directly reachable node leaves a
	// friend it knows only through relays to dial it directly, before it
	// dials through the relay itself: long enough for the friend's own
	// redial and lookup, short enough that a friend that cannot reach us
	// (a firewall that blocks it) is reached through the relay soon.
	CircuitDialGrace = 15 * time.Second
)

// Moving a friend met over QUIC alone to TCP (tcpupgrade.go). Over long or
// lossy paths quic-go moved a download at a fraction of what the kernel's
// TCP moved over the same link (issue 14), and libp2p adds no TCP
// connection to a peer it is connected to already.
const (
	// TCPUpgradeDelay is how long a friend stays connected by direct
	// QUIC connections only (and identified) before the side with the
	// lower peer ID checks its TCP address: the friend's own dial,
	// still running, may bring a TCP connection (a dial of ours that
	// still runs is waited for anyway). Short, so that the move comes
	// before the friends start a download: wan-bench starts one about
	// 1.3 s after the friends meet, and with 2 s, then 1 s, the move
	// interrupted it.
	TCPUpgradeDelay = 250 * time.Millisecond
	// TCPUpgradeInterval is the least time between two checks of one
	// friend, doubling up to TCPUpgradeMax while the friend stays on
	// QUIC: a friend whose TCP port does not answer costs one TCP
	// connect per interval, a friend whose TCP port answers but whose
	// TCP dial fails costs one reconnection per interval. It is also
	// how long the side with the higher peer ID waits before it checks
	// (the lower one may be unable to reach the other's TCP port, when
	// the other could reach its own).
	TCPUpgradeInterval = 10 * time.Minute
	// TCPUpgradeMax caps the wait between two checks of one friend.
	TCPUpgradeMax = 2 * time.Hour
	// TCPRemoveDelay is the least time after a successful move before
	// the same friend may be moved again, doubling with each move up to
	// TCPUpgradeInterval. A move that worked resets the check's backoff:
	// a TCP connection that dies later (a keep-alive that timed out
	// behind a lossy path's queue, a NAT that dropped its mapping) and
	// leaves the friend on QUIC alone is moved back soon, not after
	// TCPUpgradeInterval. Seen in wan-bench's lossy profile: a relay's
	// TCP connection to the holder closed 21 s into an anonymous
	// download, the friends met again over QUIC (0.3 MiB/s there) and
	// every tunnel through them stalled for the 10 minutes the old
	// backoff waited. The doubling brings a friend whose TCP keeps
	// dying back to one move per TCPUpgradeInterval after six moves.
	TCPRemoveDelay = 10 * time.Second
	// TCPUpgradeYoung is the age under which a QUIC connection is
	// closed for TCP even with a download or tunnel on it: what runs
	// on it then has just begun and resumes over TCP at once (a
	// download keeps what it verified, a tunnel is set up again). An
	// older connection is moved only once it carries no bulk stream.
	TCPUpgradeYoung = 30 * time.Second
	// TCPProbeTimeout bounds the plain TCP connect that checks a
	// friend's TCP address before its QUIC connection is closed: a few
	// round trips of a long path on a busy machine.
	TCPProbeTimeout = 3 * time.Second
	// MaxTCPProbes bounds the TCP addresses of one friend checked per
	// attempt (the first that answers is dialled).
	MaxTCPProbes = 4
)

// Hole punching (traversal.go).
const (
	// PunchCheckInterval is how often the node looks for relayed
	// connections libp2p's DCUtR service did not punch.
	PunchCheckInterval = 2 * time.Second
	// PunchRetryMin is the wait before the first punch of such a
	// connection (libp2p's own punch, if it runs, goes first), doubling
	// after each attempt.
	PunchRetryMin = 3 * time.Second
	// PunchRetryMax caps the wait between punches of a friend that stays
	// relayed (its NAT defeats punching): one attempt of up to three
	// punches every ten minutes costs little.
	PunchRetryMax = 10 * time.Minute
)

// One-step friendship (introduce.go).
const (
	// DefaultIntroTTL is how long an introduction invite works: a day is
	// long enough to reach a friend by mail, short enough that a leaked
	// invite soon stops working.
	DefaultIntroTTL = 24 * time.Hour
	// MaxIntroTTL caps --expires of an introduction invite.
	MaxIntroTTL = 30 * 24 * time.Hour
	// MaxIntroTokens caps the introduction tokens open at once (each is
	// a peer ID the gater admits for one exchange).
	MaxIntroTokens = 16
	// IntroKeepUsed is how long a token is remembered after it expired,
	// so that a replay is refused as used.
	IntroKeepUsed = 7 * 24 * time.Hour
	// MaxIntroRequests caps the introductions waiting for approval.
	MaxIntroRequests = 64
	// IntroMaxMessage bounds one introduction message: an invite
	// (MaxInviteText) and a signature.
	IntroMaxMessage = MaxInviteText + 256
	// IntroTimeout bounds one introduction, dial included.
	IntroTimeout = 20 * time.Second
	// IntroLinger is how long a token's connection stays after the
	// answer, for the introduced node to read it and close.
	IntroLinger = 3 * time.Second
)

// Kernel buffers of friends' TCP connections (sockbuf.go).
const (
	// TCPSendBuffer is the send buffer asked for each friend's TCP
	// connection, in place of the kernel's autotuning. Linux's autotuning
	// stops at net.ipv4.tcp_wmem's maximum (4 MiB by default), which
	// keeps about 2 MB in flight: 36.6 MiB/s over wan-bench's 50 ms link
	// of 500 Mbit/s, whose bandwidth-delay product is 3.1 MB, while
	// quic-go, which forces 7 MB UDP buffers the same way, moved 53.
	// The kernel doubles the figure for its bookkeeping, so about 8 MB
	// may be in flight: 160 MB/s at 50 ms, 80 MB/s at 100 ms. It is a
	// ceiling, not an allocation: the kernel holds only what the
	// connection has not yet had acknowledged, and only friends' TCP
	// connections get it (the gater sets it once the key is known).
	TCPSendBuffer = 8 << 20
)
