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
	out := a.n.Conversations()
	if out == nil {
		out = []Conversation{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) chatStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.chat.Stats())
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

// ChatLog returns a page of the history with a friend: messages stored
// after sequence number after and, if since is not zero, stored (by this
// node's clock) at or after since, at most limit (0: the server's page)
// and chat.MaxLogPageBytes of text. An empty page means there are no
// more.
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

// ChatLogBefore returns the page of the history with a friend that ends
// just before sequence number before (0: the newest page), oldest first.
func (c *Client) ChatLogBefore(ctx context.Context, friend string, before uint64, limit int) ([]chat.Message, error) {
	q := url.Values{}
	q.Set("before", strconv.FormatUint(before, 10))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []chat.Message
	return out, c.do(ctx, http.MethodGet, "/v1/chat/"+url.PathEscape(friend)+"/messages?"+q.Encode(), nil, &out)
}

// ChatClear deletes the history with a friend but for the messages still
// waiting for delivery.
func (c *Client) ChatClear(ctx context.Context, friend string) error {
	return c.do(ctx, http.MethodDelete, "/v1/chat/"+url.PathEscape(friend)+"/messages", nil, nil)
}

// ChatStats returns the chat service's counters and storage.
func (c *Client) ChatStats(ctx context.Context) (chat.Stats, error) {
	var out chat.Stats
	return out, c.do(ctx, http.MethodGet, "/v1/chat/stats", nil, &out)
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
	{chat.ErrChatStorageFull, "chat_storage_full", http.StatusInsufficientStorage},
	{chat.ErrNoConversation, "no_conversation", http.StatusNotFound},
}

// DistantSendRequest is the body of POST /v1/distant/{chatid}/messages.
type DistantSendRequest struct {
	Text string `json:"text"`
	// As names the identity to write as (chat id, prefix or nickname);
	// empty is the default identity.
	As string `json:"as,omitempty"`
}

// DistantConversation is a distant conversation as the API shows it.
// Request is set while the remote identity is one the user has not
// answered nor accepted: its messages then wait in a small quota.
type DistantConversation struct {
	Local     string        `json:"local"` // our chat id
	LocalNick string        `json:"local_nick"`
	Remote    string        `json:"remote"` // their chat id
	Request   bool          `json:"request"`
	Unread    int           `json:"unread"`
	Pending   int           `json:"pending"`
	Messages  int           `json:"messages"`
	Stored    int64         `json:"stored"`
	Trimmed   int           `json:"trimmed,omitempty"`
	Last      *chat.Message `json:"last,omitempty"`
}

// DistantAsRequest is the body of POST /v1/distant/{chatid}/accept.
type DistantAsRequest struct {
	As string `json:"as,omitempty"`
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
	out := make([]DistantConversation, 0, len(convs))
	for _, c := range convs {
		nick := ""
		if id, ok := a.n.chat.Identities().Get(c.Local); ok {
			nick = id.Nick
		}
		out = append(out, DistantConversation{Local: c.Local.String(), LocalNick: nick, Remote: c.Remote.String(),
			Request: c.Request, Unread: c.Unread, Pending: c.Pending, Messages: c.Messages, Stored: c.Stored,
			Trimmed: c.Trimmed, Last: c.Last})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) distantAccept(w http.ResponseWriter, r *http.Request) {
	remote, err := chat.ParseChatID(r.PathValue("chatid"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req DistantAsRequest
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

// DistantList lists the distant conversations, requests included.
func (c *Client) DistantList(ctx context.Context) ([]DistantConversation, error) {
	var out []DistantConversation
	return out, c.do(ctx, http.MethodGet, "/v1/distant", nil, &out)
}

// DistantAccept accepts the request of a chat identity to our identity
// as ("" for the default).
func (c *Client) DistantAccept(ctx context.Context, chatID, as string) error {
	return c.do(ctx, http.MethodPost, "/v1/distant/"+url.PathEscape(chatID)+"/accept", DistantAsRequest{As: as}, nil)
}

// DistantDelete deletes the conversation with a chat identity, as our
// identity as.
func (c *Client) DistantDelete(ctx context.Context, chatID, as string) error {
	q := url.Values{}
	if as != "" {
		q.Set("as", as)
	}
	return c.do(ctx, http.MethodDelete, "/v1/distant/"+url.PathEscape(chatID)+"?"+q.Encode(), nil, nil)
}

// DistantLog returns a page of the history with a chat identity, as the
// identity as (see ChatLog).
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
