package node

import (
	"fmt"
	"log/slog"

	"kith/chat"
	"kith/node/api"
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

func (n *Node) friendName(id string) string {
	for _, f := range n.friends.List() {
		if f.ID.String() == id {
			return f.Name
		}
	}
	return ""
}

func (n *Node) lobbyInfoJSON(li chat.LobbyInfo) api.LobbyInfo {
	out := api.LobbyInfo{ID: li.ID.String(), Name: li.Name, Topic: li.Topic, Private: li.Private, Joined: li.Joined,
		Participants: li.Participants, Friends: []api.LobbyFriend{}}
	if li.Joined {
		out.As, out.AsNick = li.As.ID.String(), li.As.Nick
	}
	for _, p := range li.Friends {
		name := ""
		if f, ok := n.friends.Get(p); ok {
			name = f.Name
		}
		out.Friends = append(out.Friends, api.LobbyFriend{PeerID: p.String(), Name: name})
	}
	return out
}

// publishLobbyEvent puts a lobby event on the bus as the API shows it:
// api.EventLobbyMessage and api.EventLobbyInvite.
func (n *Node) publishLobbyEvent(_ string, data any) {
	switch d := data.(type) {
	case chat.LobbyEvent:
		n.events.Publish(api.EventLobbyMessage, api.LobbyMessageEvent{Message: apiLobbyMessage(d.Message), History: d.History})
	case chat.LobbyInvite:
		n.events.Publish(api.EventLobbyInvite, n.apiLobbyInvite(d))
	default:
		n.log.Debug("lobby event of an unknown kind dropped", slog.String("type", fmt.Sprintf("%T", data)))
	}
}

// LobbyList returns the joined and announced lobbies and the pending
// invites.
func (n *Node) LobbyList() (api.Lobbies, error) {
	out := api.Lobbies{Lobbies: []api.LobbyInfo{}, Invites: []api.LobbyInvite{}}
	for _, li := range n.lobbies.l.List() {
		out.Lobbies = append(out.Lobbies, n.lobbyInfoJSON(li))
	}
	invs, err := n.lobbies.l.Invites()
	if err != nil {
		return out, err
	}
	for _, inv := range invs {
		out.Invites = append(out.Invites, n.apiLobbyInvite(inv))
	}
	return out, nil
}
