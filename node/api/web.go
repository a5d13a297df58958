package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// WebInfo is the answer of GET /v1/web: where the web UI is served.
type WebInfo struct {
	Running bool   `json:"running"`
	URL     string `json:"url,omitempty"`
	// Error says why it is not running, and what to do.
	Error string `json:"error,omitempty"`
}

// WebLogin is the answer of POST /v1/web/login: a link that logs a browser
// in once, until Expires. Only the API socket serves it (the web UI's
// listener does not).
type WebLogin struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// RenameFriendRequest is the body of PATCH /v1/friends/{ref}.
type RenameFriendRequest struct {
	Name string `json:"name"`
}

// Errors of the web UI.
var (
	// ErrWebOff means the web UI is not running: `kith up --no-web`, the
	// setting `web off`, or its address could not be listened on.
	ErrWebOff = errors.New("the web UI is not running")
	// ErrBadWebAddr means a web UI address is not a loopback host:port.
	ErrBadWebAddr = errors.New("the web UI's address must be a loopback host:port")
)

func init() {
	codes = append(codes,
		codeInfo{"web_off", ErrWebOff, http.StatusConflict},
		codeInfo{"bad_web_addr", ErrBadWebAddr, http.StatusBadRequest})
}

// Web says where the web UI is served.
func (c *Client) Web(ctx context.Context) (WebInfo, error) {
	var w WebInfo
	return w, c.do(ctx, http.MethodGet, "/v1/web", nil, &w)
}

// WebLogin makes a one-time login link for the web UI.
func (c *Client) WebLogin(ctx context.Context) (WebLogin, error) {
	var l WebLogin
	return l, c.do(ctx, http.MethodPost, "/v1/web/login", nil, &l)
}

// RenameFriend gives a friend a new name.
func (c *Client) RenameFriend(ctx context.Context, ref, name string) (FriendInfo, error) {
	var f FriendInfo
	return f, c.do(ctx, http.MethodPatch, "/v1/friends/"+url.PathEscape(ref), RenameFriendRequest{Name: name}, &f)
}
