package tunnels

import "time"

// Depth. See the package documentation for why these values give a
// neighbour no hint whether a message started at its sender.
const (
	// MaxDepth is the largest depth a Search or TunnelRequest may carry;
	// the depth is the number of hops a message may still travel, and a
	// message received with depth 0 is served but not forwarded.
	MaxDepth = 6
	// DepthKeepAtMax is the probability that a relay forwards a message
	// received at MaxDepth without decrementing its depth. It is also the
	// share of a node's emitted messages that travel at least one more
	// hop, so it sets the reach: a path goes on for k more hops with
	// probability DepthKeepAtMax^k (0.95 for 5 more). The simulator
	// (kith sim, 1,000 nodes of degree 8) found a file held by one node
	// in about half the searches at 0.8 (with 0.2 below the maximum) and
	// 93% at 0.99; with DepthKeepBelowMax at 0.5 too, in nearly all. A
	// search then reaches nearly every node of a network of that size;
	// the spread (SearchFanout) keeps what it costs affordable.
	DepthKeepAtMax = 0.99
	// DepthKeepBelowMax is the probability that a relay keeps a depth
	// between 1 and MaxDepth-1. It must be below DepthKeepAtMax. At 0.5
	// the one search in ten that starts below MaxDepth still goes about
	// two hops per depth, so it reaches about as far as the others.
	DepthKeepBelowMax = 0.5
	// SearchFanout is the number of friends to which a relay sends a
	// spreading search (or a tunnel request) it received at a depth above
	// 0: the friends of the lowest draws among those but the sender,
	// fixed per (sender, friend, query) by RouterConfig.Secret, like the
	// depth-0 choice, so repeating a probe shows nothing new; all of them
	// if it has no more. A flood to every friend reaches every node
	// several times over: at degree 8 each node got 7 copies, 6 of them
	// useless. With 3 each node sends about 3 copies at most, and 97-99%
	// of the nodes of a small world of 1,000 or 10,000 nodes of degree 8
	// get the search (kith sim; BENCHMARKS.md), enough for a file held by
	// one node to be found in 95% of searches; a node with 3 friends or
	// fewer floods as before, so small networks lose nothing.
	SearchFanout = 3
	// SearchWalkKeep is the probability that a node that received a
	// walking search (Search.Walk) keeps it walking: it sends it to one
	// friend, still walking; else it spreads it from there. The origin
	// always starts a walk. So a search first goes on a random walk of
	// 1/(1-SearchWalkKeep) = 2.5 hops on average, and a friend that gets
	// a walking copy from X knows that X is the origin with probability
	// 1-SearchWalkKeep = 0.4, under the 0.5 of a coin. Colluders who see
	// where the spread starts learn the end of the walk, not the origin
	// (phantom flooding: Kamat et al., ICDCS 2005): 25% colluders name the
	// origin only when the walk's first hop is one of them, of about 25%
	// of searches, where a flood gave them 58% (BENCHMARKS.md).
	SearchWalkKeep = 0.6
	// MaxHeardLinks caps the links a node remembers, per search, as having
	// sent it a copy (so that it does not send them one): a node's friends,
	// up to a generous degree.
	MaxHeardLinks = 32
	// SpreadHeardStop is the number of friends besides its first sender
	// that, once they have sent a node copies of a search, make it send
	// no more spreading copies of it (see skipSpread and
	// DefaultSpreadDelay): the search is all around it. 2: at 1, kith
	// sim's reach at 2,000 nodes fell from 98% to 94% (5% fewer copies
	// again); at 2 it stayed at 98%. Only nodes with more than
	// SearchFanout friends besides the sender stop so: a node with fewer
	// may be the only way to one of them.
	SpreadHeardStop = 2
	// MaxWalkRepeats caps how often a node passes on walking copies of a
	// search it has seen already (a walk that came round a loop, back to
	// its origin, or back from a friend with no other friend), each to a
	// friend it has not sent the search to: a walk is not dropped as a
	// duplicate, which would lose the search, but a walk that keeps
	// coming back cannot go round forever. 4: a node whose first four
	// picks were dead ends (friends with no other friend) still passes
	// it on.
	MaxWalkRepeats = 4
	// DepthKeepAtZero is the probability that a relay forwards a message
	// it received at depth 0, still at depth 0, to each other friend; it
	// must be below DepthKeepAtMax too. Depth 0 is no last hop: a friend
	// that sends you depth 0 cannot tell your answer from one of a node
	// behind you. The router decides it once per pair of links (keyed by
	// RouterConfig.Secret), so repeating a probe shows the same choice,
	// and always forwards to at least one other friend, so a node with
	// one other friend never ends a message. 0.5, like the depths below
	// the maximum: at degree 8 a depth-0 message then still reaches about
	// as far as any other, which is what makes an answer to it say
	// nothing about who gave it.
	DepthKeepAtZero = 0.5
)

// Per-friend rates. A friend that exceeds one has its excess dropped; the
// node's service to others is unaffected.
const (
	// SearchesPerSecond is the sustained rate of Search messages accepted
	// from one friend, its own and those it relays together. A search
	// reaches nearly every node of the network, but crosses a given link
	// only with probability about 3/8 at degree 8 (SearchFanout; kith sim:
	// 0.35), so a network searching S times a second puts about
	// 0.35*S on each link: 10,000 nodes searching once in ten minutes
	// (17 a second) put about 6 a second on a link. 20 leaves room for
	// three times that, and for the links of nodes with many friends; it
	// is also what one friend can make the whole network carry, since a
	// search is relayed everywhere (20 searches of about 90 bytes, about
	// 1.8 KB/s, on each link it crosses).
	SearchesPerSecond = 20
	// SearchBurst is the number of searches a friend may send at once
	// before SearchesPerSecond applies.
	SearchBurst = 40
	// TunnelRequestsPerSecond is the sustained rate of TunnelRequest
	// messages accepted from one friend. A download asks for a few tunnels
	// and asks again only when one dies.
	TunnelRequestsPerSecond = 2
	// TunnelRequestBurst is the number of tunnel requests a friend may
	// send at once.
	TunnelRequestBurst = 10
	// SearchSendRate is the share of SearchesPerSecond at which a router
	// sends searches to one friend, with bursts of SearchSendBurst: below
	// what the friend accepts, with room for the network's jitter, so
	// that a burst of searches (a relay that stalled, then forwards what
	// it read; searches for one query, whose fixed delays keep them
	// together) is spread out instead of dropped by the friend.
	SearchSendRate = 0.9
	// SearchSendBurst is the searches a router sends one friend at once
	// before SearchSendRate applies: half what the friend accepts.
	SearchSendBurst = SearchBurst / 2
	// SearchSendWait is the longest a search waits for its turn on a
	// link; one that would wait longer is dropped (and counted) by the
	// sender. 2 s: well within the time a searcher listens.
	SearchSendWait = 2 * time.Second
)

// Tunnel and search state kept per friend and in total.
const (
	// MaxTunnelsPerFriend caps the tunnels relayed or served through one
	// friend link at once (counted on the link the request came from).
	MaxTunnelsPerFriend = 64
	// MaxTunnels caps all tunnels a node relays or serves at once. Each
	// idle relayed tunnel costs three goroutines (the stream handler
	// waiting in Splice and its two copiers), two small buffers and two
	// libp2p streams: about 30 KB of heap and stack (BENCHMARKS.md).
	MaxTunnels = 1024
	// MaxPendingTunnelRequests caps tunnel requests waiting for an answer,
	// per friend they came from.
	MaxPendingTunnelRequests = 32
	// TunnelRequestTTL is how long a forwarded TunnelRequest waits for a
	// TunnelOK before the entry is dropped and TunnelFail sent back.
	TunnelRequestTTL = 20 * time.Second
	// RequestCacheSize caps the tunnel request ids remembered for
	// refusing copies that arrive by other paths; when full, the oldest
	// go.
	RequestCacheSize = 16384
	// RequestCacheTTL is how long a tunnel request id is remembered. It
	// outlives the request itself (TunnelRequestTTL).
	RequestCacheTTL = 2 * TunnelRequestTTL
	// MaxResultsPerSearch caps the SearchResult messages a node sends
	// back for one search id, its own and those it relays, and is the
	// budget a walking search carries (Search.Answers unset). A node that
	// spreads a search splits its budget in equal shares among the links
	// it sent it on, at least 1 each, and tells each friend its share in
	// the copy, so that a friend's flood of answers cannot crowd out
	// another link's and the budgets shrink away from where the walk
	// ended: 16 there, 5 one spread hop further, 1 beyond. At the
	// search's origin it caps, per link, both the answers that open and
	// those that do not. Later ones are dropped. 16: a search reaches
	// nearly every node, so a file held by many is answered from all of
	// them, and each answer (about 580 bytes then; 194 for a search by
	// root since SealRootPad) travelled until a relay's share was full:
	// at 10,000 nodes a file held by 500 sent 6,511 answer messages per
	// search with 64 per relay and 4,800 with 16 (kith sim), for at most
	// 16 delivered. 16 answers of up to MaxFilesPerResult
	// files each are plenty of sources.
	MaxResultsPerSearch = 16
	// OriginSpreadAnswers is the answer budget an origin that spreads its
	// search at once (it has SearchFanout friends or fewer) gives each
	// friend: what a relay far from the end of a walk gives (a budget of
	// 5 split three ways), so that the budget does not tell a friend of
	// such an origin that its search starts there. Such an origin gets
	// at most one answer through each friend it sent the search to, and
	// through nodes behind it.
	OriginSpreadAnswers = 1
	// MaxFilesPerResult caps the files in one sealed SearchResult.
	MaxFilesPerResult = 32
	// SearchCacheSize caps the search ids remembered for duplicate
	// suppression and reverse routing. When full, the oldest entries go.
	SearchCacheSize = 16384
	// SearchCacheTTL is how long a search id is remembered for dropping
	// duplicates. It outlives any flood, which ends within seconds.
	SearchCacheTTL = 2 * time.Minute
	// ReversePathTTL is how long answers to a search are routed back
	// towards the link it came from.
	ReversePathTTL = time.Minute
)

// Message sizes.
const (
	// MaxControlMsg caps one RouterMessage on /kith/router/1. The largest
	// legitimate one is a SearchResult carrying MaxSealedResults.
	MaxControlMsg = 64 << 10
	// MaxKeywordsLen caps the keywords of a Search, in bytes.
	MaxKeywordsLen = 256
	// MaxNameLen caps a file name in a search result, in bytes (the share
	// package uses the same value).
	MaxNameLen = 255
	// SearchHashLen is the length of SearchHash, the root hash a Search
	// carries: 128 bits name a file among all there are as well as 256
	// (they only have to match; nothing is proven with them), and each of
	// the search's copies, which are most of a node's router traffic, is
	// 16 bytes shorter.
	SearchHashLen = 16
	// MaxSealedResults caps the sealed payload of one SearchResult:
	// MaxFilesPerResult files with the longest names, padded.
	MaxSealedResults = 16 << 10
	// SealPad is the block to which the plaintext of sealed results is
	// padded, so relays learn little from the length of an answer.
	SealPad = 512
	// SealRootPad is the one block that an answer to a search by root
	// hash is sealed in (SealForRoot), its name shortened to fit (about
	// 75 bytes): such an answer is 194 bytes on the wire instead of 578,
	// and answers to searches for popular files were about a third of the
	// router traffic of the busiest nodes (BENCHMARKS.md, issue 18).
	SealRootPad = 128
	// MaxHandshakeMsg caps one Noise handshake frame of a session. The
	// largest, message 3 of XK, is 64 bytes.
	MaxHandshakeMsg = 256
	// MaxEarlyData caps the early data of a file session, the first
	// Write that rides in the handshake's first message
	// (StartFileSession): with the 32-byte key and 16-byte tag the message
	// stays within MaxHandshakeMsg. A Have and the request for the group
	// that proves the size take about 100 bytes.
	MaxEarlyData = MaxHandshakeMsg - 64
)

// Sessions and relaying.
const (
	// FrameOverhead is the length prefix and the AEAD tag of one session
	// frame.
	FrameOverhead = 2 + 16
	// MaxFramePayload is the most plaintext bytes in one session frame:
	// the frame's ciphertext, tag included, stays within Noise's 65535.
	MaxFramePayload = 65535 - 16
	// SessionWriteBatch is the most frames a Session encrypts into one
	// write to the underlying stream, so a large Write costs few syscalls
	// and stream frames.
	SessionWriteBatch = 4
	// RekeyInterval is the number of frames after which each direction of
	// a session replaces its key (Noise Rekey), so a key compromised later
	// does not expose earlier traffic of a long session. 2^20 frames is up
	// to 64 GiB.
	RekeyInterval = 1 << 20
	// MaxSessionFrames is the most frames one direction of a session may
	// carry; a Write after that fails with ErrSessionExhausted. It stays
	// below Noise's nonce limit of 2^64-1.
	MaxSessionFrames = 1<<64 - 2
	// HandshakeTimeout bounds a session handshake whose context has no
	// deadline. It covers three crossings of a tunnel of MaxDepth hops.
	HandshakeTimeout = 20 * time.Second
	// CloseNotifyTimeout bounds the write of the end-of-stream frame in
	// Session.Close, where the underlying stream supports deadlines.
	CloseNotifyTimeout = time.Second
	// RelayBufSize is the copy buffer of each direction of a busy relayed
	// tunnel, taken from a pool while data flows. It matches a full
	// session frame.
	RelayBufSize = 64 << 10
	// RelayIdleBufSize is the buffer a relay direction holds while it
	// waits for data, so idle tunnels cost little memory.
	RelayIdleBufSize = 2 << 10
)

// --- Router (router.go, router_search.go, router_tunnel.go, dataplane.go).
const (
	// DefaultSearchDelay is the longest random delay before a node sends
	// a search on to a friend, its own searches included, so that timing
	// tells a friend of the origin less about who started a search. It
	// adds about half of it per hop to the time to a first answer.
	DefaultSearchDelay = 200 * time.Millisecond
	// DefaultHolderDelay is the longest delay before a node answers, as a
	// holder, a search (beyond the per-link part, up to the search delay)
	// or a tunnel request, so that the time of its own answer does not
	// tell a friend that the answer is its own: the delay is the sum of
	// two parts drawn uniformly up to half of it, fixed per query and
	// target by RouterConfig.Secret (see the package documentation). It
	// adds 0.75 s on average to the time to a first answer from a single
	// holder and to a tunnel's setup. At 1.5 s, a friend comparing your
	// answers with those of your friends (one hop further) gets
	// precision at most about 0.6 at recall 0.25, against 0.5 by chance.
	DefaultHolderDelay = 1500 * time.Millisecond
	// DefaultSpreadDelay is the longest random delay before a node with
	// more than SearchFanout friends besides the sender sends a spreading
	// copy on, fixed per (sender, friend, query) like the search delay.
	// Such a node never spreads a search of its own (it walks it), so the
	// delay hides nothing; it lets copies that friends send this node
	// meanwhile arrive, and a copy is not sent to a friend that sent one
	// (skipSpread). With SpreadHeardStop, at 100 ms (five link latencies
	// of the simulator) kith sim measured 13% fewer messages per search
	// at 2,000 nodes and 12% fewer at 10,000 (BENCHMARKS.md); 150 and
	// 200 ms saved no more beyond noise. The spread, about 13 hops deep
	// at 10,000 nodes, takes up to 0.65 s longer on average.
	DefaultSpreadDelay = 100 * time.Millisecond
	// DefaultLinkRetry is how often a router (re)opens the control streams
	// to connected friends that have none.
	DefaultLinkRetry = 2 * time.Second
	// LinkOpenTimeout bounds opening a router or tunnel stream.
	LinkOpenTimeout = 10 * time.Second
	// LinkWriteTimeout bounds one write of a control message and the
	// exchange of a tunnel stream's header; a friend that does not read
	// for that long loses its link.
	LinkWriteTimeout = 10 * time.Second
	// LinkQueue is the control messages queued for one friend; more are
	// dropped.
	LinkQueue = 256
	// LinkQueueBytes bounds the bytes of the control messages queued for
	// one friend, charged to the router stream's resource-manager scope
	// until written; a message that does not fit is dropped. 256 KiB is
	// LinkQueue answers of a typical size (one 512-byte sealed block), but
	// only 16 of the largest (MaxSealedResults): without it, a friend that
	// stops reading would hold LinkQueue of those, 4 MiB, until
	// LinkWriteTimeout cut it off.
	LinkQueueBytes = 256 << 10
	// DefaultFrameTimeout bounds the time from the first byte of a control
	// message to its last (RouterConfig.FrameTimeout). A friend that
	// announces a message and sends it slowly holds only the bytes it has
	// sent (the reader grows its buffer as they arrive) and, after this,
	// loses its link: MaxControlMsg takes 8 s at 64 kbit/s.
	DefaultFrameTimeout = 10 * time.Second
	// MaxRouterStreamsPerFriend caps the inbound router streams one friend
	// may have open at once. A link is one stream; a second is allowed
	// while a friend that reconnected replaces its old one. More are reset
	// at once. (The node may set the libp2p resource manager's
	// per-protocol, per-peer stream limit of RouterProtocol to this.)
	MaxRouterStreamsPerFriend = 2
	// MaxTunnelStreamsPerFriend caps the inbound tunnel streams one friend
	// may have open at once: one per tunnel it relays or opens through
	// this node (MaxTunnelsPerFriend), and a few more whose 8-byte header
	// is still being read (a stream whose header names no tunnel is reset
	// at once, one that sends none within LinkWriteTimeout too). More are
	// reset at once. (The node may set the resource manager's
	// per-protocol, per-peer inbound stream limit of TunnelProtocol to
	// this.)
	MaxTunnelStreamsPerFriend = MaxTunnelsPerFriend + 16
	// SearchResultQueue is the results of one's own search buffered for
	// a caller that has not read them yet; more are dropped.
	SearchResultQueue = 256
)
