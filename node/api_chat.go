package node

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"kith/chat"
)

// SendRequest is the body of POST /v1/chat/{friend}/messages.
type SendRequest struct {
	Text string `json:"text"`
}

// IdentityInfo is one chat identity in the API.
type IdentityInfo struct {
	ChatID  string    `json:"chat_id"`
	Nick    string    `json:"nick"`
	Created time.Time `json:"created"`
}

// NewIdentityRequest is the body of POST /v1/identities.
type NewIdentityRequest struct {
	Nick string `json:"nick"`
}

func identityJSON(i chat.Identity) IdentityInfo {
	return IdentityInfo{ChatID: i.ID.String(), Nick: i.Nick, Created: i.Created}
}

func (a *apiServer) chatRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/chat", a.conversations)
	mux.HandleFunc("GET /v1/chat/{friend}/messages", a.chatLog)
	mux.HandleFunc("POST /v1/chat/{friend}/messages", a.chatSend)
	mux.HandleFunc("POST /v1/chat/{friend}/read", a.chatRead)
	mux.HandleFunc("POST /v1/chat/{friend}/typing", a.chatTyping)
	mux.HandleFunc("GET /v1/identities", a.listIdentities)
	mux.HandleFunc("POST /v1/identities", a.newIdentity)
	a.distantRoutes(mux)
}

func (a *apiServer) conversations(w http.ResponseWriter, r *http.Request) {
	out := a.n.Conversations()
	if out == nil {
		out = []Conversation{}
	}
	writeJSON(w, http.StatusOK, out)
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
	ms, err := a.n.chat.History(f.ID, after, since, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	if ms == nil {
		ms = []chat.Message{}
	}
	writeJSON(w, http.StatusOK, ms)
}

func (a *apiServer) chatSend(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.friends.Resolve(r.PathValue("friend"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req SendRequest
	if !readJSON(w, r, &req) {
		return
	}
	m, err := a.n.chat.Send(f.ID, req.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
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
	out := []IdentityInfo{}
	for _, i := range a.n.chat.Identities().List() {
		out = append(out, identityJSON(i))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) newIdentity(w http.ResponseWriter, r *http.Request) {
	var req NewIdentityRequest
	if !readJSON(w, r, &req) {
		return
	}
	i, err := a.n.chat.Identities().New(req.Nick)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, identityJSON(i))
}

// Conversations lists the private chat with every friend.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var out []Conversation
	return out, c.do(ctx, http.MethodGet, "/v1/chat", nil, &out)
}

// ChatSend sends text to a friend (by name or peer ID).
func (c *Client) ChatSend(ctx context.Context, friend, text string) (chat.Message, error) {
	var m chat.Message
	return m, c.do(ctx, http.MethodPost, "/v1/chat/"+url.PathEscape(friend)+"/messages", SendRequest{Text: text}, &m)
}

// ChatLog returns the history with a friend: messages stored after
// sequence number after, written at or after since if not zero, at most
// limit (0: the server's page).
func (c *Client) ChatLog(ctx context.Context, friend string, after uint64, since time.Time, limit int) ([]chat.Message, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if !since.IsZero() {
		q.Set("since", since.Format(time.RFC3339Nano))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []chat.Message
	return out, c.do(ctx, http.MethodGet, "/v1/chat/"+url.PathEscape(friend)+"/messages?"+q.Encode(), nil, &out)
}

// ChatRead marks the conversation with a friend read.
func (c *Client) ChatRead(ctx context.Context, friend string) error {
	return c.do(ctx, http.MethodPost, "/v1/chat/"+url.PathEscape(friend)+"/read", struct{}{}, nil)
}

// ChatTyping tells a friend the user is typing.
func (c *Client) ChatTyping(ctx context.Context, friend string) error {
	return c.do(ctx, http.MethodPost, "/v1/chat/"+url.PathEscape(friend)+"/typing", struct{}{}, nil)
}

// Identities lists the node's chat identities.
func (c *Client) Identities(ctx context.Context) ([]IdentityInfo, error) {
	var out []IdentityInfo
	return out, c.do(ctx, http.MethodGet, "/v1/identities", nil, &out)
}

// NewIdentity makes a chat identity.
func (c *Client) NewIdentity(ctx context.Context, nick string) (IdentityInfo, error) {
	var out IdentityInfo
	return out, c.do(ctx, http.MethodPost, "/v1/identities", NewIdentityRequest{Nick: nick}, &out)
}

// chatAPIErrors are the chat errors the API maps to codes.
var chatAPIErrors = []apiErrorCode{
	{chat.ErrEmptyText, "empty_text", http.StatusBadRequest},
	{chat.ErrTextTooLong, "text_too_long", http.StatusBadRequest},
	{chat.ErrBadText, "bad_text", http.StatusBadRequest},
	{chat.ErrOutboxFull, "outbox_full", http.StatusConflict},
	{chat.ErrNotFriend, "not_friend", http.StatusNotFound},
	{chat.ErrBadChatID, "bad_chat_id", http.StatusBadRequest},
	{chat.ErrBadNick, "bad_nick", http.StatusBadRequest},
	{chat.ErrUnknownIdentity, "unknown_identity", http.StatusNotFound},
	{chat.ErrNoIdentity, "no_identity", http.StatusConflict},
	{chat.ErrAmbiguousIdentity, "ambiguous_identity", http.StatusConflict},
	{chat.ErrNoTunnels, "no_tunnels", http.StatusServiceUnavailable},
}

// DistantSendRequest is the body of POST /v1/distant/{chatid}/messages.
type DistantSendRequest struct {
	Text string `json:"text"`
	// As names the identity to write as (chat id, prefix or nickname);
	// empty is the default identity.
	As string `json:"as,omitempty"`
}

func (a *apiServer) distantRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/distant/{chatid}/messages", a.distantLog)
	mux.HandleFunc("POST /v1/distant/{chatid}/messages", a.distantSend)
}

func (a *apiServer) distantSend(w http.ResponseWriter, r *http.Request) {
	to, err := chat.ParseChatID(r.PathValue("chatid"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req DistantSendRequest
	if !readJSON(w, r, &req) {
		return
	}
	m, err := a.n.chat.SendDistant(req.As, to, req.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
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
	if ms == nil {
		ms = []chat.Message{}
	}
	writeJSON(w, http.StatusOK, ms)
}

// DistantSend writes text to a chat identity through tunnels, as the
// identity as ("" for the default).
func (c *Client) DistantSend(ctx context.Context, chatID, as, text string) (chat.Message, error) {
	var m chat.Message
	return m, c.do(ctx, http.MethodPost, "/v1/distant/"+url.PathEscape(chatID)+"/messages", DistantSendRequest{Text: text, As: as}, &m)
}

// DistantLog returns the history with a chat identity, as the identity as.
func (c *Client) DistantLog(ctx context.Context, chatID, as string, after uint64, limit int) ([]chat.Message, error) {
	q := url.Values{}
	if as != "" {
		q.Set("as", as)
	}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []chat.Message
	return out, c.do(ctx, http.MethodGet, "/v1/distant/"+url.PathEscape(chatID)+"/messages?"+q.Encode(), nil, &out)
}
