package api

import "time"

// CreateLobbyRequest is the body of POST /v1/lobbies.
type CreateLobbyRequest struct {
	Name    string `json:"name"`
	Topic   string `json:"topic,omitempty"`
	Private bool   `json:"private,omitempty"`
	// As names the chat identity to speak as; "" is the default one.
	As string `json:"as,omitempty"`
}

// JoinLobbyRequest is the body of POST /v1/lobbies/{id}/join.
type JoinLobbyRequest struct {
	As string `json:"as,omitempty"`
}

// LobbyInviteRequest is the body of POST /v1/lobbies/{id}/invite.
type LobbyInviteRequest struct {
	Friend string `json:"friend"` // name or peer ID
}

// LobbyFriend is a friend that announces a lobby.
type LobbyFriend struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
}

// LobbyInfo is a lobby: one the node is in, or a public one friends
// announce (GET /v1/lobbies/{id}, and in Lobbies).
type LobbyInfo struct {
	// ID is the lobby's id, 32 hex digits.
	ID      string `json:"id"`
	Name    string `json:"name"`
	Topic   string `json:"topic"`
	Private bool   `json:"private"`
	Joined  bool   `json:"joined"`
	// As is the chat id the node speaks as in a joined lobby; AsNick its
	// nickname.
	As     string `json:"as,omitempty"`
	AsNick string `json:"as_nick,omitempty"`
	// Participants counts, in a joined lobby, this node's identity and
	// the authors heard lately; in one friends announce, the most any of
	// them announced.
	Participants int           `json:"participants"`
	Friends      []LobbyFriend `json:"friends"`
}

// LobbyKind is what a lobby message says.
type LobbyKind string

// Kinds of lobby messages.
const (
	LobbyKindText      LobbyKind = "text"
	LobbyKindJoin      LobbyKind = "join"
	LobbyKindLeave     LobbyKind = "leave"
	LobbyKindKeepAlive LobbyKind = "keepalive"
)

// LobbyMessage is a lobby message (GET /v1/lobbies/{id}/messages, the
// lobby.message event).
type LobbyMessage struct {
	Seq    uint64    `json:"seq,omitempty"`
	Lobby  string    `json:"lobby"`
	ID     string    `json:"id"`
	Kind   LobbyKind `json:"kind"`
	Author string    `json:"author"` // chat id
	Nick   string    `json:"nick"`
	// Time is the author's clock; Stored this node's when the message
	// entered its history.
	Time   time.Time `json:"time"`
	Stored time.Time `json:"stored,omitzero"`
	Text   string    `json:"text,omitempty"`
}

// Received is when the message reached this node's history, or the
// author's time if that is earlier: a message that came in a history
// reply was received by the friend that sent it before this node stored
// it, and an author's clock ahead of the receipt is not believed. Use it
// to order and filter a lobby's history (an author cannot move its
// message past later ones by its clock).
func (m LobbyMessage) Received() time.Time {
	if m.Stored.IsZero() || (!m.Time.IsZero() && m.Time.Before(m.Stored)) {
		return m.Time
	}
	return m.Stored
}

// LobbyInvite is a pending invite into a lobby, with the inviting
// friend's name (in Lobbies, the lobby.invite event).
type LobbyInvite struct {
	Lobby    string    `json:"lobby"`
	Name     string    `json:"name"`
	Topic    string    `json:"topic"`
	Private  bool      `json:"private"`
	From     string    `json:"from"` // the friend's peer ID
	Nick     string    `json:"nick"` // the inviter's chat nickname
	Received time.Time `json:"received"`
	FromName string    `json:"from_name"`
}

// Lobbies is the answer of GET /v1/lobbies.
type Lobbies struct {
	Lobbies []LobbyInfo   `json:"lobbies"`
	Invites []LobbyInvite `json:"invites"`
}

// LobbyParticipant is an author heard in a lobby lately (GET
// /v1/lobbies/{id}/participants).
type LobbyParticipant struct {
	ChatID   string    `json:"chat_id"`
	Nick     string    `json:"nick"`
	LastSeen time.Time `json:"last_seen"`
}
