package node

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"kith/chat"
	"kith/node/api"
)

func (a *apiServer) chatRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/chat", a.conversations)
	mux.HandleFunc("GET /v1/chat/stats", a.chatStats)
	mux.HandleFunc("GET /v1/chat/{friend}/messages", a.chatLog)
	mux.HandleFunc("POST /v1/chat/{friend}/messages", a.chatSend)
	mux.HandleFunc("DELETE /v1/chat/{friend}/messages", a.chatClear)
	mux.HandleFunc("POST /v1/chat/{friend}/read", a.chatRead)
	mux.HandleFunc("POST /v1/chat/{friend}/typing", a.chatTyping)
	mux.HandleFunc("GET /v1/identities", a.listIdentities)
	mux.HandleFunc("POST /v1/identities", a.newIdentity)
	a.distantRoutes(mux)
}

func (a *apiServer) conversations(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Conversations())
}

func (a *apiServer) chatStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, apiChatStats(a.n.chat.Stats()))
}

// logBefore reads before from a history request: set, the page ending
// just before that sequence number (0: the newest page) is asked for.
func logBefore(r *http.Request) (before uint64, set bool, err error) {
	q := r.URL.Query()
	if !q.Has("before") {
		return 0, false, nil
	}
	if before, err = strconv.ParseUint(q.Get("before"), 10, 64); err != nil {
		return 0, false, fmt.Errorf("%w: before must be a sequence number", ErrBadRequest)
	}
	return before, true, nil
}

// logQuery reads after, since (RFC 3339) and limit from a history request.
func logQuery(r *http.Request) (after uint64, since time.Time, limit int, err error) {
	q := r.URL.Query()
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			return 0, since, 0, fmt.Errorf("%w: after must be a sequence number", ErrBadRequest)
		}
	}
	if s := q.Get("since"); s != "" {
		if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return 0, since, 0, fmt.Errorf("%w: since must be an RFC 3339 time", ErrBadRequest)
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
			return 0, since, 0, fmt.Errorf("%w: limit must be a count", ErrBadRequest)
		}
	}
	return after, since, limit, nil
}

func (a *apiServer) chatLog(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.friends.Resolve(r.PathValue("friend"))
	if err != nil {
		writeError(w, err)
		return
	}
	after, since, limit, err := logQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	before, back, err := logBefore(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var ms []chat.Message
	if back {
		ms, err = a.n.chat.HistoryBefore(f.ID, before, limit)
	} else {
		ms, err = a.n.chat.History(f.ID, after, since, limit)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiMessages(ms))
}

func (a *apiServer) chatSend(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.friends.Resolve(r.PathValue("friend"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req api.SendRequest
	if !readJSON(w, r, &req) {
		return
	}
	m, err := a.n.chat.SendKeyed(f.ID, req.Text, req.IdempotencyKey)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiMessage(m))
}

func (a *apiServer) chatClear(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.friends.Resolve(r.PathValue("friend"))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.n.chat.ClearHistory(f.ID); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (a *apiServer) chatRead(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.friends.Resolve(r.PathValue("friend"))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.n.chat.MarkRead(f.ID); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (a *apiServer) chatTyping(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.friends.Resolve(r.PathValue("friend"))
	if err != nil {
		writeError(w, err)
		return
	}
	a.n.chat.Typing(f.ID)
	writeJSON(w, http.StatusOK, struct{}{})
}

func (a *apiServer) listIdentities(w http.ResponseWriter, r *http.Request) {
	out := []api.IdentityInfo{}
	for _, i := range a.n.chat.Identities().List() {
		out = append(out, apiIdentity(i))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) newIdentity(w http.ResponseWriter, r *http.Request) {
	var req api.NewIdentityRequest
	if !readJSON(w, r, &req) {
		return
	}
	i, err := a.n.chat.Identities().New(req.Nick)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiIdentity(i))
}

func (a *apiServer) distantRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/distant", a.distantList)
	mux.HandleFunc("GET /v1/distant/{chatid}/messages", a.distantLog)
	mux.HandleFunc("POST /v1/distant/{chatid}/messages", a.distantSend)
	mux.HandleFunc("POST /v1/distant/{chatid}/accept", a.distantAccept)
	mux.HandleFunc("DELETE /v1/distant/{chatid}", a.distantDelete)
}

func (a *apiServer) distantList(w http.ResponseWriter, r *http.Request) {
	convs, err := a.n.chat.DistantConversations()
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]api.DistantConversation, 0, len(convs))
	for _, c := range convs {
		nick := ""
		if id, ok := a.n.chat.Identities().Get(c.Local); ok {
			nick = id.Nick
		}
		out = append(out, api.DistantConversation{Local: c.Local.String(), LocalNick: nick, Remote: c.Remote.String(),
			Request: c.Request, Unread: c.Unread, Pending: c.Pending, Messages: c.Messages, Stored: c.Stored,
			Trimmed: c.Trimmed, Last: apiMessagePtr(c.Last)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) distantAccept(w http.ResponseWriter, r *http.Request) {
	remote, err := chat.ParseChatID(r.PathValue("chatid"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req api.DistantAsRequest
	if !readJSON(w, r, &req) {
		return
	}
	if err := a.n.chat.AcceptDistant(req.As, remote); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (a *apiServer) distantDelete(w http.ResponseWriter, r *http.Request) {
	remote, err := chat.ParseChatID(r.PathValue("chatid"))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := a.n.chat.DeleteDistant(r.URL.Query().Get("as"), remote); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (a *apiServer) distantSend(w http.ResponseWriter, r *http.Request) {
	to, err := chat.ParseChatID(r.PathValue("chatid"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req api.DistantSendRequest
	if !readJSON(w, r, &req) {
		return
	}
	m, err := a.n.chat.SendDistant(req.As, to, req.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiMessage(m))
}

func (a *apiServer) distantLog(w http.ResponseWriter, r *http.Request) {
	remote, err := chat.ParseChatID(r.PathValue("chatid"))
	if err != nil {
		writeError(w, err)
		return
	}
	after, _, limit, err := logQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ms, err := a.n.chat.DistantHistory(r.URL.Query().Get("as"), remote, after, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiMessages(ms))
}

// chatAPIErrors are the chat errors the API maps to codes.
var chatAPIErrors = []apiErrorCode{
	{chat.ErrEmptyText, "empty_text"},
	{chat.ErrTextTooLong, "text_too_long"},
	{chat.ErrBadText, "bad_text"},
	{chat.ErrOutboxFull, "outbox_full"},
	{chat.ErrNotFriend, "not_friend"},
	{chat.ErrBadChatID, "bad_chat_id"},
	{chat.ErrBadNick, "bad_nick"},
	{chat.ErrUnknownIdentity, "unknown_identity"},
	{chat.ErrNoIdentity, "no_identity"},
	{chat.ErrAmbiguousIdentity, "ambiguous_identity"},
	{chat.ErrNoTunnels, "no_tunnels"},
	{chat.ErrChatStorageFull, "chat_storage_full"},
	{chat.ErrNoConversation, "no_conversation"},
	{chat.ErrBadIdempotencyKey, "bad_idempotency_key"},
	{chat.ErrIdempotencyKeyReused, "idempotency_key_reused"},
}
