package api

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Limits of chat that clients need before they ask the daemon. The daemon
// enforces them (its tests check they are chat's own).
const (
	// MaxTextSize is the longest message text, in bytes.
	MaxTextSize = 64 << 10
	// HistoryBudget is what one conversation's history keeps, in bytes;
	// older messages are deleted past it (Conversation.Trimmed).
	HistoryBudget = 16 << 20
	// TypingInterval is how often a client says the user is typing, at
	// most; TypingShown is how long a friend's typing notice is shown.
	TypingInterval = 3 * time.Second
	TypingShown    = 6 * time.Second
)

// Message is one message of a conversation's history (private or
// distant).
type Message struct {
	// Seq is the message's place in this node's history of the
	// conversation, from 1.
	Seq uint64 `json:"seq"`
	// ID is the message's random id, in hex.
	ID string `json:"id"`
	// Time is the author's clock when it was written.
	Time time.Time `json:"time"`
	// Stored is this node's clock when it entered the history.
	Stored time.Time `json:"stored"`
	// Out is set for messages this node wrote.
	Out  bool   `json:"out"`
	Text string `json:"text"`
	// Delivered is set on an outgoing message once the peer acked it.
	Delivered bool `json:"delivered,omitempty"`
}

// SendRequest is the body of POST /v1/chat/{friend}/messages and POST
// /v1/lobbies/{id}/messages.
type SendRequest struct {
	Text string `json:"text"`
	// IdempotencyKey, if set, makes a chat send safe to retry: the daemon
	// keeps it with the message (folded into its id), and a send with a
	// key it has seen for that friend returns the message stored then
	// instead of a second one. A client makes one per message
	// (NewIdempotencyKey) and gives the same on every retry of it; at
	// most MaxIdempotencyKeySize bytes. Lobby sends ignore it.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// MaxIdempotencyKeySize bounds SendRequest.IdempotencyKey, in bytes.
const MaxIdempotencyKeySize = 64

// LobbyClockWarn is how far a friend's clock may be from this node's
// before it is shown as wrong (FriendInfo.ClockOffsetMs, Status).
const LobbyClockWarn = time.Minute

// LobbyMaxSkew is how far ahead or behind a lobby message's time may be
// for a relay to take it live; beyond, it arrives only by sync.
const LobbyMaxSkew = time.Hour

// NewIdempotencyKey returns a fresh random key for one send.
func NewIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Conversation is the state of the private chat with one friend (GET
// /v1/chat).
type Conversation struct {
	PeerID  string `json:"peer_id"`
	Name    string `json:"name"`
	Online  bool   `json:"online"`
	Unread  int    `json:"unread"`
	Pending int    `json:"pending"`
	// Messages and Stored are what the history holds (Stored against
	// HistoryBudget); Trimmed counts older messages deleted to keep the
	// budget.
	Messages int      `json:"messages"`
	Stored   int64    `json:"stored"`
	Trimmed  int      `json:"trimmed,omitempty"`
	Last     *Message `json:"last,omitempty"`
}

// ChatStats are the chat service's counters and storage (GET
// /v1/chat/stats).
type ChatStats struct {
	// Streams is the chat streams and distant sessions served now.
	Streams int `json:"streams"`
	// Queued counts messages the user wrote (private and distant) that
	// entered an outbox; Delivered counts those the other side acked;
	// Received counts messages from others stored.
	Queued    uint64 `json:"queued"`
	Delivered uint64 `json:"delivered"`
	Received  uint64 `json:"received"`
	// StreamsRefused counts chat streams and distant sessions refused at
	// once for a cap.
	StreamsRefused uint64 `json:"streams_refused"`
	// StreamsBroken counts streams reset because the peer broke the
	// protocol.
	StreamsBroken uint64 `json:"streams_broken"`
	// RefusedStorage counts incoming messages refused because the chat
	// storage budget was reached.
	RefusedStorage uint64 `json:"refused_storage"`
	// RefusedRequests counts incoming distant messages refused for the
	// requests' quotas.
	RefusedRequests uint64 `json:"refused_requests"`
	// SessionsLimited counts distant sessions refused for the session
	// rates.
	SessionsLimited uint64 `json:"sessions_limited"`
	// TypingDropped counts typing notices over the typing rate.
	TypingDropped uint64 `json:"typing_dropped"`
	// StoredBytes and StoredMessages are what all conversations hold.
	StoredBytes    int64 `json:"stored_bytes"`
	StoredMessages int64 `json:"stored_messages"`
	// Requests and RequestBytes are the distant requests and what they
	// hold.
	Requests     int64 `json:"requests"`
	RequestBytes int64 `json:"request_bytes"`
}

// IdentityInfo is one chat identity (GET and POST /v1/identities).
type IdentityInfo struct {
	ChatID  string    `json:"chat_id"`
	Nick    string    `json:"nick"`
	Created time.Time `json:"created"`
}

// NewIdentityRequest is the body of POST /v1/identities.
type NewIdentityRequest struct {
	Nick string `json:"nick"`
}

// DistantSendRequest is the body of POST /v1/distant/{chatid}/messages.
type DistantSendRequest struct {
	Text string `json:"text"`
	// As names the identity to write as (chat id, prefix or nickname);
	// empty is the default identity.
	As string `json:"as,omitempty"`
}

// DistantConversation is a distant conversation (GET /v1/distant).
// Request is set while the remote identity is one the user has not
// answered nor accepted: its messages then wait in a small quota.
type DistantConversation struct {
	Local     string   `json:"local"` // our chat id
	LocalNick string   `json:"local_nick"`
	Remote    string   `json:"remote"` // their chat id
	Request   bool     `json:"request"`
	Unread    int      `json:"unread"`
	Pending   int      `json:"pending"`
	Messages  int      `json:"messages"`
	Stored    int64    `json:"stored"`
	Trimmed   int      `json:"trimmed,omitempty"`
	Last      *Message `json:"last,omitempty"`
}

// DistantAsRequest is the body of POST /v1/distant/{chatid}/accept.
type DistantAsRequest struct {
	As string `json:"as,omitempty"`
}
