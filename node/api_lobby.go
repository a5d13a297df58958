package node

import (
	"net/http"

	"kith/chat"
	"kith/node/api"
)

// lobbyAPIErrors are the lobby errors the API maps to codes.
var lobbyAPIErrors = []apiErrorCode{
	{chat.ErrBadLobbyID, "bad_lobby_id"},
	{chat.ErrBadLobbyName, "bad_lobby_name"},
	{chat.ErrBadLobbyTopic, "bad_lobby_topic"},
	{chat.ErrUnknownLobby, "unknown_lobby"},
	{chat.ErrNotJoined, "lobby_not_joined"},
	{chat.ErrAlreadyJoined, "lobby_joined"},
	{chat.ErrTooManyLobbies, "too_many_lobbies"},
	{chat.ErrLobbyTooFast, "lobby_too_fast"},
	{chat.ErrLobbyFriendOffline, "lobby_friend_offline"},
	{chat.ErrLobbiesClosed, "lobbies_closed"},
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
	var req api.CreateLobbyRequest
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
	var req api.JoinLobbyRequest
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
	var req api.LobbyInviteRequest
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
	out := make([]api.LobbyMessage, 0, len(ms))
	for _, m := range ms {
		out = append(out, apiLobbyMessage(m))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) lobbySend(w http.ResponseWriter, r *http.Request) {
	id, ok := lobbyID(w, r)
	if !ok {
		return
	}
	var req api.SendRequest
	if !readJSON(w, r, &req) {
		return
	}
	m, err := a.n.Lobbies().Send(id, req.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiLobbyMessage(m))
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
	out := make([]api.LobbyParticipant, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.LobbyParticipant{ChatID: p.ID.String(), Nick: p.Nick, LastSeen: p.LastSeen})
	}
	writeJSON(w, http.StatusOK, out)
}
