package node

import (
	"fmt"
	"time"

	"kith/chat"
)

// lobbyService runs chat lobbies on the node's host and store, speaking
// as the node's chat identities; lobby events go out on the node's bus.
type lobbyService struct {
	l *chat.Lobbies
}

// startLobbies starts the node's lobbies. It needs the chat service (for
// the identities) to be running.
func startLobbies(n *Node) (*lobbyService, error) {
	l, err := chat.NewLobbies(chat.LobbyConfig{
		Host: n.host, DB: n.db, Friends: n.friends, Identities: n.chat.Identities(),
		Log: n.log.With("service", "lobby"), Events: n.publishLobbyEvent,
	})
	if err != nil {
		return nil, fmt.Errorf("starting lobbies: %w", err)
	}
	return &lobbyService{l: l}, nil
}

func (s *lobbyService) close() error { return s.l.Close() }

// Lobbies is the node's chat lobby service.
func (n *Node) Lobbies() *chat.Lobbies { return n.lobbies.l }

// LobbyFriend is a friend that announces a lobby.
type LobbyFriend struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
}

// LobbyInfo is a lobby as the API shows it: one the node is in, or a
// public one friends announce.
type LobbyInfo struct {
	ID      chat.LobbyID `json:"id"`
	Name    string       `json:"name"`
	Topic   string       `json:"topic"`
	Private bool         `json:"private"`
	Joined  bool         `json:"joined"`
	// As is the chat id the node speaks as in a joined lobby; AsNick its
	// nickname.
	As           string        `json:"as,omitempty"`
	AsNick       string        `json:"as_nick,omitempty"`
	Participants int           `json:"participants"`
	Friends      []LobbyFriend `json:"friends"`
}

// LobbyMessage is a lobby message as the API shows it.
type LobbyMessage struct {
	Seq    uint64         `json:"seq,omitempty"`
	Lobby  chat.LobbyID   `json:"lobby"`
	ID     chat.MsgID     `json:"id"`
	Kind   chat.LobbyKind `json:"kind"`
	Author string         `json:"author"` // chat id
	Nick   string         `json:"nick"`
	Time   time.Time      `json:"time"`
	Stored time.Time      `json:"stored,omitzero"`
	Text   string         `json:"text,omitempty"`
}

// LobbyInvite is a pending invite with the inviting friend's name.
type LobbyInvite struct {
	chat.LobbyInvite
	FromName string `json:"from_name"`
}

// Lobbies is the answer of GET /v1/lobbies.
type Lobbies struct {
	Lobbies []LobbyInfo   `json:"lobbies"`
	Invites []LobbyInvite `json:"invites"`
}

// LobbyParticipant is an author heard in a lobby lately.
type LobbyParticipant struct {
	ChatID   string    `json:"chat_id"`
	Nick     string    `json:"nick"`
	LastSeen time.Time `json:"last_seen"`
}

// LobbyMessageEvent is the data of a "lobby.message" event: a message
// stored in a joined lobby (text, join or leave; this node's own too).
// History is set for one that came in a history reply when joining.
type LobbyMessageEvent struct {
	Message LobbyMessage `json:"message"`
	History bool         `json:"history,omitempty"`
}

func lobbyMessageJSON(m chat.LobbyMessage) LobbyMessage {
	return LobbyMessage{Seq: m.Seq, Lobby: m.Lobby, ID: m.ID, Kind: m.Kind, Author: m.Author.String(),
		Nick: m.Nick, Time: m.Time, Stored: m.Stored, Text: m.Text}
}

func (n *Node) friendName(id string) string {
	for _, f := range n.friends.List() {
		if f.ID.String() == id {
			return f.Name
		}
	}
	return ""
}

func (n *Node) lobbyInfoJSON(li chat.LobbyInfo) LobbyInfo {
	out := LobbyInfo{ID: li.ID, Name: li.Name, Topic: li.Topic, Private: li.Private, Joined: li.Joined,
		Participants: li.Participants, Friends: []LobbyFriend{}}
	if li.Joined {
		out.As, out.AsNick = li.As.ID.String(), li.As.Nick
	}
	for _, p := range li.Friends {
		name := ""
		if f, ok := n.friends.Get(p); ok {
			name = f.Name
		}
		out.Friends = append(out.Friends, LobbyFriend{PeerID: p.String(), Name: name})
	}
	return out
}

// publishLobbyEvent puts a lobby event on the bus: "lobby.message"
// (LobbyMessageEvent) and "lobby.invite" (LobbyInvite).
func (n *Node) publishLobbyEvent(typ string, data any) {
	switch d := data.(type) {
	case chat.LobbyEvent:
		n.events.Publish(typ, LobbyMessageEvent{Message: lobbyMessageJSON(d.Message), History: d.History})
	case chat.LobbyInvite:
		n.events.Publish(typ, LobbyInvite{LobbyInvite: d, FromName: n.friendName(d.From)})
	default:
		n.events.Publish(typ, data)
	}
}

// LobbyList returns the joined and announced lobbies and the pending
// invites.
func (n *Node) LobbyList() (Lobbies, error) {
	out := Lobbies{Lobbies: []LobbyInfo{}, Invites: []LobbyInvite{}}
	for _, li := range n.lobbies.l.List() {
		out.Lobbies = append(out.Lobbies, n.lobbyInfoJSON(li))
	}
	invs, err := n.lobbies.l.Invites()
	if err != nil {
		return out, err
	}
	for _, inv := range invs {
		out.Invites = append(out.Invites, LobbyInvite{LobbyInvite: inv, FromName: n.friendName(inv.From)})
	}
	return out, nil
}
