package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// lobbyPath is the API path of a lobby (id as the user typed it; the
// daemon checks it).
func lobbyPath(id string, rest string) string {
	return "/v1/lobbies/" + url.PathEscape(id) + rest
}

// LobbyList lists the joined and announced lobbies and pending invites.
func (c *Client) LobbyList(ctx context.Context) (Lobbies, error) {
	var out Lobbies
	return out, c.do(ctx, http.MethodGet, "/v1/lobbies", nil, &out)
}

// LobbyCreate creates a lobby and joins it as identity as ("" for the
// default one).
func (c *Client) LobbyCreate(ctx context.Context, name, topic string, private bool, as string) (LobbyInfo, error) {
	var out LobbyInfo
	return out, c.do(ctx, http.MethodPost, "/v1/lobbies", CreateLobbyRequest{Name: name, Topic: topic, Private: private, As: as}, &out)
}

// Lobby describes a joined or announced lobby.
func (c *Client) Lobby(ctx context.Context, id string) (LobbyInfo, error) {
	var out LobbyInfo
	return out, c.do(ctx, http.MethodGet, lobbyPath(id, ""), nil, &out)
}

// LobbyJoin joins a lobby as identity as.
func (c *Client) LobbyJoin(ctx context.Context, id, as string) (LobbyInfo, error) {
	var out LobbyInfo
	return out, c.do(ctx, http.MethodPost, lobbyPath(id, "/join"), JoinLobbyRequest{As: as}, &out)
}

// LobbyLeave leaves a lobby.
func (c *Client) LobbyLeave(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, lobbyPath(id, "/leave"), struct{}{}, nil)
}

// LobbyInvite invites a friend (name or peer ID) into a joined lobby.
func (c *Client) LobbyInvite(ctx context.Context, id, friend string) error {
	return c.do(ctx, http.MethodPost, lobbyPath(id, "/invite"), LobbyInviteRequest{Friend: friend}, nil)
}

// LobbySend says text in a joined lobby.
func (c *Client) LobbySend(ctx context.Context, id, text string) (LobbyMessage, error) {
	var out LobbyMessage
	return out, c.do(ctx, http.MethodPost, lobbyPath(id, "/messages"), SendRequest{Text: text}, &out)
}

// LobbyLog returns a joined lobby's history stored after sequence number
// after, at most limit messages (0: the server's page), in the order the
// node stored them.
func (c *Client) LobbyLog(ctx context.Context, id string, after uint64, limit int) ([]LobbyMessage, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []LobbyMessage
	return out, c.do(ctx, http.MethodGet, lobbyPath(id, "/messages?"+q.Encode()), nil, &out)
}

// LobbyParticipants lists the authors heard lately in a joined lobby.
func (c *Client) LobbyParticipants(ctx context.Context, id string) ([]LobbyParticipant, error) {
	var out []LobbyParticipant
	return out, c.do(ctx, http.MethodGet, lobbyPath(id, "/participants"), nil, &out)
}
