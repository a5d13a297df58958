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
	// MaxOutbox caps the messages waiting for one conversation's ack; a
	// Send beyond it fails with ErrOutboxFull.
	MaxOutbox = 10000
	// MaxLogPage caps the messages one History call returns.
	MaxLogPage = 10000
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
	// LobbyMaxAge is how old a relayed message may be (by its author's
	// clock) to be accepted; history replies are exempt.
	LobbyMaxAge = 10 * time.Minute
	// LobbyMaxSkew is how far in the future a message's time may be.
	LobbyMaxSkew = 2 * time.Minute
	// LobbySeenTTL is how long a message id stays in the seen cache: longer
	// than LobbyMaxAge+LobbyMaxSkew, so a message leaves the cache only
	// once the age check drops it anyway.
	LobbySeenTTL = LobbyMaxAge + LobbyMaxSkew + time.Minute
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
	// LobbyKeepAlive is how often a member says it is still in a lobby
	// (LobbyConfig.KeepAlive); a participant is shown for
	// LobbyParticipantIntervals keep-alives after it was last heard.
	LobbyKeepAlive            = time.Minute
	LobbyParticipantIntervals = 3
	// LobbyKeepAliveShare is the most of a link's LobbyFriendRate that a
	// lobby's keep-alives may take: in a large lobby members say they are
	// there less often than LobbyKeepAlive (every participants / (20/s x
	// 0.25) seconds: 200 s with 1,000 members), so presence never crowds
	// out what members say.
	LobbyKeepAliveShare = 0.25
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
	// LobbyBadFriendPause is how long a friend that broke the lobby
	// protocol is refused a new lobby link.
	LobbyBadFriendPause = time.Minute
)
