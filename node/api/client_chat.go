package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Conversations lists the private chat with every friend.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var out []Conversation
	return out, c.do(ctx, http.MethodGet, "/v1/chat", nil, &out)
}

// ChatSend sends text to a friend (by name or peer ID). The message waits
// in the outbox until the friend acknowledges it (Delivered).
func (c *Client) ChatSend(ctx context.Context, friend, text string) (Message, error) {
	return c.ChatSendRequest(ctx, friend, SendRequest{Text: text})
}

// ChatSendRequest is ChatSend with the whole request: with an
// IdempotencyKey, it may be retried after an error that is not an answer
// of the daemon (*Error) without sending the message twice.
func (c *Client) ChatSendRequest(ctx context.Context, friend string, req SendRequest) (Message, error) {
	var m Message
	return m, c.do(ctx, http.MethodPost, "/v1/chat/"+url.PathEscape(friend)+"/messages", req, &m)
}

// ChatLog returns a page of the history with a friend: messages stored
// after sequence number after, stored (by this node's clock) at or after since if not zero, at
// most limit (0: the server's page) and a page's bytes of text. An empty
// page means there are no more.
func (c *Client) ChatLog(ctx context.Context, friend string, after uint64, since time.Time, limit int) ([]Message, error) {
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
	var out []Message
	return out, c.do(ctx, http.MethodGet, "/v1/chat/"+url.PathEscape(friend)+"/messages?"+q.Encode(), nil, &out)
}

// ChatLogBefore returns the page of the history with a friend that ends
// just before sequence number before (0: the newest page), oldest first.
func (c *Client) ChatLogBefore(ctx context.Context, friend string, before uint64, limit int) ([]Message, error) {
	q := url.Values{}
	q.Set("before", strconv.FormatUint(before, 10))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []Message
	return out, c.do(ctx, http.MethodGet, "/v1/chat/"+url.PathEscape(friend)+"/messages?"+q.Encode(), nil, &out)
}

// ChatClear deletes the history with a friend but for the messages still
// waiting for delivery.
func (c *Client) ChatClear(ctx context.Context, friend string) error {
	return c.do(ctx, http.MethodDelete, "/v1/chat/"+url.PathEscape(friend)+"/messages", nil, nil)
}

// ChatStats returns the chat service's counters and storage.
func (c *Client) ChatStats(ctx context.Context) (ChatStats, error) {
	var out ChatStats
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

// DistantSend writes text to a chat identity through tunnels, as the
// identity as ("" for the default).
func (c *Client) DistantSend(ctx context.Context, chatID, as, text string) (Message, error) {
	var m Message
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
func (c *Client) DistantLog(ctx context.Context, chatID, as string, after uint64, limit int) ([]Message, error) {
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
	var out []Message
	return out, c.do(ctx, http.MethodGet, "/v1/distant/"+url.PathEscape(chatID)+"/messages?"+q.Encode(), nil, &out)
}
