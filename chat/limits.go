package chat

import "time"

// Sizes of chat messages and of what a peer may send.
const (
	// MaxTextSize is the most bytes of text in one message (64 KiB).
	// Longer text is refused before it is stored.
	MaxTextSize = 64 << 10
	// MaxFrameSize caps one Frame on a chat stream or session: the
	// largest message plus its id, time and framing.
	MaxFrameSize = MaxTextSize + 256
	// MaxAckIDs caps the ids in one Ack.
	MaxAckIDs = 256
	// MaxNickSize caps a chat identity's nickname, in bytes.
	MaxNickSize = 64
	// MaxIdempotencyKeySize caps the idempotency key a local client gives
	// a Send (SendKeyed), in bytes: the key is hashed into the message id,
	// not stored, so it only needs to be long enough for 128 random bits
	// in any text form.
	MaxIdempotencyKeySize = 64
	// MaxOutbox caps the messages waiting for one conversation's ack; a
	// Send beyond it fails with ErrOutboxFull.
	MaxOutbox = 10000
	// MaxOutboxBytes caps the text waiting for one conversation's ack
	// (counted as MessageCost); a Send beyond it fails with
	// ErrOutboxFull. It is a quarter of HistoryBudget, so the budget can
	// always be kept by deleting delivered messages.
	MaxOutboxBytes = HistoryBudget / 4
	// MaxLogPage caps the messages one page of a history (chat, distant
	// or lobby) holds.
	MaxLogPage = 1000
	// MaxLogPageBytes caps the text of one page of a history; a page has
	// at least one message. So no answer of the local API grows with a
	// history (a page of the largest messages is 16 of them).
	MaxLogPageBytes = 1 << 20
)

// Storage: what chat keeps on disk, per conversation and in all
// (history.go). Sizes are counted as MessageCost: the text and a fixed
// overhead, whatever the record's encoding.
const (
	// MessageOverhead is what a stored message costs besides its text:
	// its record (id, times, flags), its key, its entry in the seen
	// bucket and bbolt's per-entry overhead, rounded up.
	MessageOverhead = 128
	// HistoryBudget is the most one conversation (with a friend, or a
	// distant one) keeps. Past it, the oldest messages that are not
	// waiting for delivery are deleted as new ones arrive (at most
	// TrimBatch per message), and the conversation's Summary counts
	// them (Trimmed), so `kith chat log` can say so. 16 MiB is about
	// 200,000 typed messages; one friend that writes as fast as the
	// rate allows only churns within it.
	HistoryBudget = 16 << 20
	// TrimBatch caps the messages one new message makes room for by
	// deleting, so that a conversation over its budget (an old store)
	// shrinks step by step instead of in one huge transaction.
	TrimBatch = 64
	// ChatStorageBudget is the most all conversations keep together
	// (lobbies have their own cap, MaxLobbyHistory). When it is
	// reached, a message that would grow the store is refused: a Send
	// fails with ErrChatStorageFull, which says what to delete, and an
	// incoming message is not acked (it stays in the sender's outbox)
	// and counted in Stats.Refused.
	ChatStorageBudget = 1 << 30
)

// Distant requests: messages from chat identities the user never wrote
// to nor accepted (distant.go). A request takes only a small quota, and
// all requests together a small budget, whatever number of identities
// the senders make; what does not fit is not acked and waits in the
// sender's outbox until the user accepts (or deletes) the request.
const (
	// DistantRequestMessages and DistantRequestBytes are the quota of one
	// request: enough to say who one is and why one writes.
	DistantRequestMessages = 10
	DistantRequestBytes    = 64<<10 + DistantRequestMessages*MessageOverhead
	// MaxDistantRequests caps the requests kept; a message that would
	// open one more is refused.
	MaxDistantRequests = 100
	// DistantRequestsBytes caps the text of all requests together: a
	// stranger with a new identity per message fills this, not the disk.
	DistantRequestsBytes = 1 << 20
	// DistantRequestSessionRate and DistantRequestSessionBurst bound the
	// distant sessions the node serves for identities that are not
	// accepted, in all (one every 2 s, 10 at once): a new identity per
	// session does not reset it. Accepted identities are not counted.
	DistantRequestSessionRate  = 0.5
	DistantRequestSessionBurst = 10
	// DistantHandshakeRate and DistantHandshakeBurst bound the Noise
	// handshakes of incoming distant sessions, for the CPU they cost
	// before the caller's identity is known.
	DistantHandshakeRate  = 10
	DistantHandshakeBurst = 20
	// MaxDistantSessions caps the distant sessions served at once.
	MaxDistantSessions = 64
)

// Memory: what one chat stream, one friend and the node may buffer
// (courier.go, private.go). A receiver holds a stream's messages from
// when they are read until they are stored and acked; the sender's
// window bounds that, and a sender that writes past it breaks the
// protocol (its stream is reset). Frame buffers are grown as bytes
// arrive and charged to the stream's libp2p resource scope.
const (
	// SendWindowBytes caps the text a courier has written on one stream
	// and not seen acked, besides SendWindow messages; a single message
	// may always be written.
	SendWindowBytes = 256 << 10
	// StreamBufferBytes is the most text a receiver holds for one stream
	// (besides SendWindow messages; one message always fits): the
	// sender's window, so an honest sender never meets it and a stream
	// that goes past it is reset. The frame being read is on top
	// (MaxFrameSize, charged to the stream's scope).
	StreamBufferBytes = SendWindowBytes
	// LobbyStreamsPerFriend caps the /kith/lobby/1 streams one friend may
	// have open with us at once: a lobby link is one stream per pair of
	// friends, two for a moment while both sides open one. The lobby
	// service's handler (friendlink's MaxInbound) and the node's resource
	// manager both hold to it.
	LobbyStreamsPerFriend = 2
	// ChatStreamsPerFriend caps the /kith/chat/1 streams one friend may
	// have open to us at once; more are reset as they come. A courier
	// keeps one, and a resend may overlap it briefly. The node also sets
	// it as libp2p's per-protocol, per-peer stream limit.
	ChatStreamsPerFriend = 4
	// MaxChatStreams caps the chat streams and distant sessions the node
	// serves at once. With StreamBufferBytes and the frame being read,
	// chat buffers at most MaxChatStreams x 320 KiB (80 MiB) in all and
	// ChatStreamsPerFriend x 320 KiB (1.25 MiB) per friend.
	MaxChatStreams = 256
	// StreamIdleTimeout closes a chat stream on which nothing arrived for
	// so long (a courier closes its own after CourierIdle).
	StreamIdleTimeout = 2 * CourierIdle
	// FrameTimeout bounds the time from a frame's first byte to its last:
	// a peer that trickles a frame holds only what it sent, and not for
	// long.
	FrameTimeout = StreamTimeout
)

// Rates and timing of private and distant chat.
const (
	// MessagesPerSecond is the sustained rate at which the messages of
	// one friend (or one distant session) are read and stored; a faster
	// sender is slowed down, not dropped, so nothing is lost.
	MessagesPerSecond = 200
	// MaxRatedPeers caps the peers (friends, distant identities) whose
	// message rates are tracked at once; past it the counts start afresh.
	MaxRatedPeers = 1024
	// MessageBurst is how many messages a friend may send at once before
	// MessagesPerSecond applies.
	MessageBurst = 500
	// SendWindow is the most messages a courier has written but not seen
	// acked; it then waits for acks before writing more.
	SendWindow = 64
	// CourierIdle is how long a courier keeps its stream open with nothing
	// to send before it closes it.
	CourierIdle = 30 * time.Second
	// RetryMin and RetryMax bound the backoff between a courier's failed
	// attempts to deliver; a friend coming online retries at once.
	RetryMin = time.Second
	RetryMax = time.Minute
	// StreamTimeout bounds opening a chat stream, and how long a courier
	// waits for an ack of something it wrote before it gives up on the
	// stream and retries.
	StreamTimeout = 20 * time.Second
	// DistantTunnelTries is how many tunnel requests one attempt to reach
	// a distant identity makes, one after another, before it waits.
	DistantTunnelTries = 3
	// TypingInterval is the least time between two Typing frames sent to
	// one friend; a receiver shows typing for TypingShown after one.
	TypingInterval = 3 * time.Second
	TypingShown    = 6 * time.Second
	// StorageFullWarnEvery is the least time between two warnings in the
	// log that ChatStorageBudget refuses messages, however many it
	// refuses.
	StorageFullWarnEvery = time.Minute
	// TypingEventRate and TypingEventBurst bound the typing notices of one
	// friend that become events (one a second, 2 at once): an honest
	// friend sends one every TypingInterval; more are dropped before they
	// reach the event stream.
	TypingEventRate  = 1
	TypingEventBurst = 2
)

// Lobbies: sizes, rates and timing of chat lobbies (lobby*.go).
const (
	// MaxLobbyName caps a lobby's name, in bytes.
	MaxLobbyName = 64
	// MaxLobbyTopic caps a lobby's topic, in bytes.
	MaxLobbyTopic = 256
	// MaxLobbies caps the lobbies a node joins, the lobbies one friend
	// may subscribe to on a link and the lobbies in one announcement.
	MaxLobbies = 256
	// MaxLobbyInvites caps the pending invites kept; further invites are
	// dropped until the user joins or they expire.
	MaxLobbyInvites = 100
	// LobbyInviteTTL is how long a pending invite is kept.
	LobbyInviteTTL = 7 * 24 * time.Hour
	// LobbyHistoryMax is the most messages a history reply carries (and a
	// joining node asks for).
	LobbyHistoryMax = 100
	// LobbyHistoryBytes caps the encoded messages of one history reply.
	LobbyHistoryBytes = 256 << 10
	// MaxLobbyFrameSize caps one frame on a lobby stream: a full history
	// reply plus its largest message and framing. A larger frame gets
	// the stream reset.
	MaxLobbyFrameSize = LobbyHistoryBytes + MaxTextSize + 4<<10
	// MaxLobbyHistory is the most messages kept per lobby; older ones are
	// deleted as new ones arrive.
	MaxLobbyHistory = 10000
	// MaxLobbyHistoryBytes is the most one lobby's history keeps (records
	// and MessageOverhead each), like HistoryBudget for a conversation:
	// older messages are deleted as new ones arrive, so a lobby's loudest
	// members only churn within it.
	MaxLobbyHistoryBytes = HistoryBudget
	// LobbyMaxAge is how old a relayed message may be (by its author's
	// clock, besides LobbyMaxSkew) to be relayed live; history and sync
	// replies are exempt.
	LobbyMaxAge = 10 * time.Minute
	// LobbyMaxSkew is how far the author's clock may be from this
	// node's, either way, for a message to be relayed live (and how far
	// in the future a message's time may be for any path). An hour: a
	// clock without NTP drifts seconds a day, a machine resumed from
	// suspend or set by hand is minutes off, a VM restored from a
	// snapshot up to hours; an hour keeps all but the last in the
	// conversation (what sync takes later has no age bound), while a
	// replayed message is still refused for its id (LobbySeenTTL) and a
	// clock off by more is told to the user (LobbyClockWarn), not
	// silently dropped.
	LobbyMaxSkew = time.Hour
	// LobbySeenTTL is how long a message id stays in the seen cache:
	// longer than the span of this node's clock over which one message
	// passes the time checks (from LobbyMaxSkew before its time to
	// LobbyMaxAge+LobbyMaxSkew after), so a message leaves the cache only
	// once the age check drops it anyway. The cache holds at most
	// LobbySeenMax ids (a few MiB); the store deduplicates what it keeps.
	LobbySeenTTL = LobbyMaxAge + 2*LobbyMaxSkew + time.Minute
	// LobbyClockWarn is how far a friend's clock may be from this node's
	// (estimated from the time in its announcements) before it is said:
	// in the log at Warn once when this node's clock is off from most
	// friends', at Info for one friend's, and in LobbyStats.Clocks. A
	// minute: far inside LobbyMaxSkew, so the user hears of a wrong
	// clock before any message is dropped for it, and far above what
	// latency adds to the estimate.
	LobbyClockWarn = time.Minute
	// LobbyClockLogEvery is the least time between two Info lines about
	// one friend link's messages dropped for their time.
	LobbyClockLogEvery = time.Minute
	// LobbySeenMax caps the seen cache; when full the oldest ids go first.
	LobbySeenMax = 100000
	// LobbyFriendRate and LobbyFriendBurst bound the lobby messages one
	// friend link may bring (20 a second, 50 at once); more are dropped.
	LobbyFriendRate  = 20
	LobbyFriendBurst = 50
	// LobbyAuthorRate and LobbyAuthorBurst bound the messages of one
	// author (chat identity) this node relays (2 a second, 10 at once).
	LobbyAuthorRate  = 2
	LobbyAuthorBurst = 10
	// LobbyControlRate and LobbyControlBurst bound the invites and history
	// requests of one friend link (1 a second, 10 at once).
	LobbyControlRate  = 1
	LobbyControlBurst = 10
	// MaxLobbyAuthors caps the per-author rate limiters kept; past it the
	// idle ones are forgotten.
	MaxLobbyAuthors = 10000
	// LobbyLinkQueue is the frames waiting to be written to one friend;
	// frames beyond it are dropped and counted.
	LobbyLinkQueue = 512
	// LobbyLinkQueueBytes caps the encoded frames waiting to be written to
	// one friend (a full history reply is 256 KiB), charged to the lobby
	// stream's resource-manager scope until written: frames beyond it are
	// dropped and counted, like those beyond LobbyLinkQueue.
	LobbyLinkQueueBytes = 2 << 20
	// LobbyFrameTimeout bounds the time from a lobby frame's first byte to
	// its last.
	LobbyFrameTimeout = LobbyWriteTimeout
	// MaxLobbyParticipants caps the participants listed per lobby;
	// authors heard beyond it are relayed but not listed. A larger
	// lobby's size is estimated instead (lobbySize), for the keep-alive
	// interval and the count announced.
	MaxLobbyParticipants = 1000
	// LobbyParticipantsPerLink caps the participants one friend link may
	// have brought into a lobby's list: a friend that speaks under a new
	// identity per message fills at most this share of it.
	LobbyParticipantsPerLink = MaxLobbyParticipants / 2
	// LobbyNewParticipantRate and LobbyNewParticipantBurst bound how fast
	// one friend link brings participants not heard before (one a second,
	// 50 at once, over all lobbies): an author heard beyond it is relayed
	// but listed only when heard again with a token to spare. A member
	// behind one friend learns a large lobby's participants within a few
	// keep-alive intervals.
	LobbyNewParticipantRate  = 1
	LobbyNewParticipantBurst = 50
	// LobbyKeepAlive is how often a member of a small lobby says it is
	// still there (LobbyConfig.KeepAlive): the shortest keep-alive
	// interval. A participant is shown for LobbyParticipantIntervals
	// keep-alive intervals after it was last heard.
	LobbyKeepAlive            = time.Minute
	LobbyParticipantIntervals = 3
	// LobbyKeepAliveShare is the most of a link's LobbyFriendRate that
	// presence (keep-alives, joins and leaves of all lobbies) may take on
	// it: LobbyPresenceRate. The rest is for what members say.
	LobbyKeepAliveShare = 0.25
	// LobbyPresenceRate and LobbyPresenceBurst bound the keep-alives,
	// joins and leaves this node writes to one friend link, its own and
	// those it relays, over all lobbies (5 a second, 5 at once): a
	// quarter of the LobbyFriendRate the friend takes. What is over waits
	// in the link's presence queue (LobbyPresenceQueue), so a lobby
	// joined or kept alive faster than this network-wide is slowed down,
	// hop by hop, and never crowds out text.
	LobbyPresenceRate  = LobbyFriendRate * LobbyKeepAliveShare
	LobbyPresenceBurst = 5
	// LobbyPresenceQueue caps the presence frames waiting for a link's
	// LobbyPresenceRate (10 s of it). When full, a waiting keep-alive is
	// dropped for the new frame, or the new frame if none waits; drops
	// are counted (DropPresenceRate), and tell the node's keep-alives to
	// slow down (LobbyKeepAliveBackoff).
	LobbyPresenceQueue = 50
	// LobbyPresenceTick is how often waiting presence frames are let
	// through to their links.
	LobbyPresenceTick = 100 * time.Millisecond
	// LobbyStoreBatch caps the friends' joins and leaves that wait to be
	// stored in one bbolt transaction (about 300 bytes each: 75 KiB at
	// most): a full batch is stored at once, by the link that filled it.
	// Every member stores every JOIN, so a burst of joins cost each
	// member a transaction per JOIN.
	LobbyStoreBatch = 256
	// LobbyStoreDelay is the longest a friend's join or leave waits to be
	// stored (and published as a "lobby.message" event) with others.
	LobbyStoreDelay = time.Second
	// LobbyKeepAliveRate is the keep-alives a second one lobby's members
	// aim at together, whatever its size: each member says one every
	// estimated size / LobbyKeepAliveRate seconds (4 a second: every
	// 250 s with 1,000 members, 2,500 s with 10,000), at least
	// LobbyKeepAlive. Below LobbyPresenceRate, so joins and leaves keep
	// a fifth of the presence share.
	LobbyKeepAliveRate = 4
	// LobbyKeepAliveMax is the longest keep-alive interval: a lobby of
	// more than LobbyKeepAliveMax x LobbyKeepAliveRate (14,400) members,
	// or a friend that makes up members or lies about their intervals,
	// leaves members saying they are there every hour; presence is then
	// as stale as that (shown for three hours), and the traffic only
	// lower.
	LobbyKeepAliveMax = time.Hour
	// LobbyKeepAliveWireMax bounds the interval a keep-alive's wire form
	// may say (keepalive_s). A node takes at most its own longest
	// interval from it (LobbyKeepAliveMax, stretched with a lowered
	// LobbyConfig.PresenceRate); relays pass it on as decoded.
	LobbyKeepAliveWireMax = 24 * time.Hour
	// MaxLobbySize is the most members a lobby's size is estimated at
	// (and announced as, and taken from an announcement): what gives
	// LobbyKeepAliveMax.
	MaxLobbySize = int(LobbyKeepAliveMax/time.Second) * LobbyKeepAliveRate
	// LobbySizeWindow is the time constant of a lobby's size estimate: a
	// keep-alive counts for its author's interval divided by this, and
	// decays by e every window (lobbySize).
	LobbySizeWindow = 10 * time.Minute
	// LobbyKeepAliveBackoff is how much longer than the estimate gives a
	// member waits for its next keep-alive (at most, doubling per
	// keep-alive) while a link drops presence over LobbyPresenceRate:
	// members that started together, before they know the lobby's size,
	// back off within a few intervals instead of after a size window.
	LobbyKeepAliveBackoff = 16
	// LobbyKeepAliveChecks is how many times per LobbyKeepAlive the node
	// looks whether a lobby's keep-alive is due.
	LobbyKeepAliveChecks = 6
	// LobbyAnnounceInterval is how often public lobbies are announced to
	// every friend even when nothing changed.
	LobbyAnnounceInterval = 2 * time.Minute
	// LobbyLinkRetry is how often links to connected friends that have
	// none are (re)opened (LobbyConfig.LinkRetry).
	LobbyLinkRetry = 5 * time.Second
	// LobbyLinkOpenTimeout bounds opening a lobby stream; LobbyWriteTimeout
	// bounds writing one frame to it.
	LobbyLinkOpenTimeout = 10 * time.Second
	LobbyWriteTimeout    = 20 * time.Second
	// LobbyHistoryWait is how long a node that asked for a lobby's
	// history holds friends' history requests for that lobby, so they
	// get what the answer brings; after it they get what there is.
	LobbyHistoryWait = 20 * time.Second
)

// Lobby sync (lobby_sync.go): when a link starts carrying a lobby, and
// every LobbySyncInterval after, each side lists the ids of its newest
// messages of the lobby ("have"); the other asks for those it does not
// hold ("want", one request per lobby and link at a time) and stores
// what comes back, then lists what it newly stored to its other links.
// So what was said across a relay that was down reaches every member.
const (
	// LobbySyncIDs caps the ids of one "have" frame (16 KiB of ids): the
	// newest messages a node lists when a link starts carrying a lobby. A
	// partition in which a lobby gets more messages than this heals only
	// for the newest LobbySyncIDs.
	LobbySyncIDs = 1000
	// LobbySyncPeriodicIDs is how many newest ids the periodic "have"
	// lists (1.6 KiB): enough for what a live relay dropped (a full
	// queue, a skewed clock) since the last round.
	LobbySyncPeriodicIDs = LobbyHistoryMax
	// LobbySyncScan bounds the records a "have" reads, as a multiple of
	// the ids it may list: it lists text only, and skips the joins and
	// leaves among them (a lobby that many joined lately lists fewer).
	LobbySyncScan = 4
	// LobbySyncInterval is how often each link's lobbies are synced
	// again while it stays up.
	LobbySyncInterval = 2 * time.Minute
	// LobbyWantMax caps the ids of one "want" frame; the answer holds
	// at most LobbyHistoryBytes of them, and says so when it left some
	// out (they are asked for again).
	LobbyWantMax = LobbyHistoryMax
	// LobbyWantPending caps the ids one link keeps to ask its friend
	// for, over all lobbies (64 KiB of ids and their map entries);
	// further listed ids are ignored until the next sync.
	LobbyWantPending = 4 * LobbySyncIDs
	// LobbyWantTimeout is how long a node waits for the answer to a
	// "want" before it asks again (a full queue may have dropped it).
	LobbyWantTimeout = 30 * time.Second
	// LobbyHaveRate and LobbyHaveBurst bound the "have" frames of one
	// friend link that are looked up (each costs at most LobbySyncIDs
	// index reads): a link's start lists every shared lobby at once
	// (MaxLobbies), then a few a second; more are dropped (counted as
	// control_rate) and wait for the next sync.
	LobbyHaveRate  = 4
	LobbyHaveBurst = 2 * MaxLobbies
	// LobbyWantRate and LobbyWantBurst bound the "want" frames of one
	// friend link that are answered (each answer reads and sends at most
	// LobbyHistoryBytes, so at most 1 MiB/s to one friend): a faster
	// friend is slowed down (its link's reading waits), not answered
	// less.
	LobbyWantRate  = 4
	LobbyWantBurst = 32
)
