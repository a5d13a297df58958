package chat

// Buckets owned by package chat in kith.db, all in one place.
var (
	// bucketIdentities maps a ChatID to a JSON identityRecord.
	bucketIdentities = []byte("chat.identities")
	// bucketHistory holds one nested bucket per conversation (the key of
	// a friend's or a distant peer's conversation, see convKey), mapping
	// an 8-byte big-endian sequence number to a record: 0x01 and a
	// pb.StoredMessage (JSON of a Message before; migrated at open).
	bucketHistory = []byte("chat.history")
	// bucketSeen holds one nested bucket per conversation mapping a
	// message id to its sequence number in the history: what makes a
	// resent message a duplicate.
	bucketSeen = []byte("chat.seen")
	// bucketOutbox holds one nested bucket per conversation mapping the
	// sequence number of a message waiting for its ack to nothing.
	bucketOutbox = []byte("chat.outbox")
	// bucketRead maps a conversation to the 8-byte sequence number of the
	// last message read in it.
	bucketRead = []byte("chat.read")
	// bucketUsage maps a conversation to what it holds (usage: bytes,
	// messages, messages trimmed, outbox bytes, unread), and holds the
	// totals of all conversations and of the distant requests, and the
	// history's layout version (history.go: usage*Key).
	bucketUsage = []byte("chat.usage")
	// bucketDistant maps a distant conversation to its state (a request,
	// or accepted) and the 8-byte time (Unix ms) it got it.
	bucketDistant = []byte("chat.distant")
)

// Buckets of chat lobbies (lobby*.go).
var (
	// bucketLobbies maps a joined lobby's 16-byte id to a JSON
	// lobbyRecord: its name, topic, flag and the identity it is joined as.
	bucketLobbies = []byte("chat.lobby.lobbies")
	// bucketLobbyHistory holds one nested bucket per joined lobby, mapping
	// an 8-byte big-endian sequence number to a stored message: the
	// 8-byte time it was stored (Unix ms) and its wire form, signature
	// included, so it can be served to a friend that joins.
	bucketLobbyHistory = []byte("chat.lobby.history")
	// bucketLobbySeen holds one nested bucket per joined lobby mapping a
	// message id to its sequence number: what makes a resent message a
	// duplicate after a restart.
	bucketLobbySeen = []byte("chat.lobby.seen")
	// bucketLobbyInvites maps a lobby id to a JSON LobbyInvite waiting
	// for the user to join.
	bucketLobbyInvites = []byte("chat.lobby.invites")
	// bucketLobbyUsage maps a joined lobby's id to the 8-byte count of
	// what its history holds (storedCost), against MaxLobbyHistoryBytes.
	bucketLobbyUsage = []byte("chat.lobby.usage")
)
