package node

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"kith/chat"
)

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

// lobbyAPIErrors are the lobby errors the API maps to codes.
var lobbyAPIErrors = []apiErrorCode{
	{chat.ErrBadLobbyID, "bad_lobby_id", http.StatusBadRequest},
	{chat.ErrBadLobbyName, "bad_lobby_name", http.StatusBadRequest},
	{chat.ErrBadLobbyTopic, "bad_lobby_topic", http.StatusBadRequest},
	{chat.ErrUnknownLobby, "unknown_lobby", http.StatusNotFound},
	{chat.ErrNotJoined, "lobby_not_joined", http.StatusNotFound},
	{chat.ErrAlreadyJoined, "lobby_joined", http.StatusConflict},
	{chat.ErrTooManyLobbies, "too_many_lobbies", http.StatusConflict},
	{chat.ErrLobbyTooFast, "lobby_too_fast", http.StatusTooManyRequests},
	{chat.ErrLobbyFriendOffline, "lobby_friend_offline", http.StatusConflict},
	{chat.ErrLobbiesClosed, "lobbies_closed", http.StatusServiceUnavailable},
}

func (a *apiServer) lobbyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/lobbies", a.lobbyList)
	mux.HandleFunc("POST /v1/lobbies", a.lobbyCreate)
	mux.HandleFunc("GET /v1/lobbies/{id}", a.lobbyGet)
	mux.HandleFunc("POST /v1/lobbies/{id}/join", a.lobbyJoin)
	mux.HandleFunc("POST /v1/lobbies/{id}/leave", a.lobbyLeave)
	mux.HandleFunc("POST /v1/lobbies/{id}/invite", a.lobbyInvite)
	mux.HandleFunc("GET /v1/lobbies/{id}/messages", a.lobbyLog)
	mux.HandleFunc("POST /v1/lobbies/{id}/messages", a.lobbySend)
	mux.HandleFunc("GET /v1/lobbies/{id}/participants", a.lobbyParticipants)
}

// lobbyID reads the {id} of a lobby path; on error it has answered.
func lobbyID(w http.ResponseWriter, r *http.Request) (chat.LobbyID, bool) {
	id, err := chat.ParseLobbyID(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return id, false
	}
	return id, true
}

func (a *apiServer) lobbyList(w http.ResponseWriter, r *http.Request) {
	out, err := a.n.LobbyList()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) lobbyCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateLobbyRequest
	if !readJSON(w, r, &req) {
		return
	}
	li, err := a.n.Lobbies().Create(req.Name, req.Topic, req.Private, req.As)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.n.lobbyInfoJSON(li))
}

func (a *apiServer) lobbyGet(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	li, err := a.n.Lobbies().Lobby(id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.n.lobbyInfoJSON(li))
}

func (a *apiServer) lobbyJoin(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	var req JoinLobbyRequest
	if !readJSON(w, r, &req) {
		return
	}
	li, err := a.n.Lobbies().Join(id, req.As)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.n.lobbyInfoJSON(li))
}

func (a *apiServer) lobbyLeave(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	if err := a.n.Lobbies().Leave(id); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (a *apiServer) lobbyInvite(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	var req LobbyInviteRequest
	if !readJSON(w, r, &req) {
		return
	}
	f, err := a.n.friends.Resolve(req.Friend)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.n.Lobbies().Invite(id, f.ID); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (a *apiServer) lobbyLog(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	after, _, limit, err := logQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ms, err := a.n.Lobbies().Log(id, after, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]LobbyMessage, 0, len(ms))
	for _, m := range ms {
		out = append(out, lobbyMessageJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) lobbySend(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	var req SendRequest
	if !readJSON(w, r, &req) {
		return
	}
	m, err := a.n.Lobbies().Send(id, req.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, lobbyMessageJSON(m))
}

func (a *apiServer) lobbyParticipants(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	ps, err := a.n.Lobbies().Participants(id)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]LobbyParticipant, 0, len(ps))
	for _, p := range ps {
		out = append(out, LobbyParticipant{ChatID: p.ID.String(), Nick: p.Nick, LastSeen: p.LastSeen})
	}
	writeJSON(w, http.StatusOK, out)
}

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
// after, at most limit messages (0: the server's page).
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
