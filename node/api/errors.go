package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is the stable code of an API error, carried in ErrorBody.Code. The
// daemon answers every failed request with one, and the Client maps it
// back to the sentinel error of this package that it stands for, so that
// callers can use errors.Is across the socket. Codes are only ever added.
type Code string

// ErrorBody is the JSON body of every API error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  Code   `json:"code"`
}

// Error codes with no sentinel of their own.
const (
	// CodeInternal is an error the daemon has no code for.
	CodeInternal Code = "internal"
	// CodeUnknown is set by the Client on an error answer it could not
	// read (not the daemon's JSON).
	CodeUnknown Code = "unknown"
)

// ErrNoDaemon means no daemon answers on the home's API socket.
var ErrNoDaemon = errors.New("no daemon is running")

// Sentinel errors of the API, one per code. An error answer from the
// daemon (an *Error) unwraps to the one of its code; the daemon's message
// says more.
var (
	// Invites and friends.
	ErrInviteEmpty      = errors.New("empty invite")
	ErrInviteGarbled    = errors.New("garbled invite")
	ErrInviteTruncated  = errors.New("truncated invite")
	ErrInviteSignature  = errors.New("invite signature does not verify")
	ErrInviteVersion    = errors.New("unknown invite version")
	ErrInviteTooLarge   = errors.New("invite too large")
	ErrInviteOwn        = errors.New("this is your own invite")
	ErrBadName          = errors.New("invalid name")
	ErrAlreadyFriend    = errors.New("already a friend")
	ErrNoSuchFriend     = errors.New("no such friend")
	ErrAmbiguousFriend  = errors.New("more than one friend matches")
	ErrFriendOffline    = errors.New("friend is offline")
	ErrIntroRefused     = errors.New("introduction refused")
	ErrIntroUnreachable = errors.New("the inviter cannot be reached")
	ErrTooManyIntros    = errors.New("too many introductions")
	ErrNoSuchRequest    = errors.New("no such introduction request")

	// Links, shares and downloads.
	ErrLinkTooLong     = errors.New("link too long")
	ErrLinkBadScheme   = errors.New("not a kith:// link")
	ErrLinkBadRoot     = errors.New("bad root in link")
	ErrLinkBadSize     = errors.New("bad size in link")
	ErrLinkBadName     = errors.New("bad name in link")
	ErrLinkMalformed   = errors.New("malformed link")
	ErrDownloadExists  = errors.New("already downloading this file")
	ErrNoSuchDownload  = errors.New("no such download")
	ErrAlreadyHave     = errors.New("you already have this file")
	ErrNotShared       = errors.New("not shared")
	ErrNoSuchPath      = errors.New("no such path")
	ErrNestedShare     = errors.New("share inside another share")
	ErrNotFolder       = errors.New("not a folder")
	ErrBadQuery        = errors.New("bad query")
	ErrShareUnreadable = errors.New("share unreadable")
	ErrNotExist        = errors.New("does not exist")

	// Searches and tunnels.
	ErrBadSearch    = errors.New("bad search")
	ErrRouterClosed = errors.New("router closed")
	ErrNoTunnel     = errors.New("no tunnel")

	// Chat and chat identities.
	ErrEmptyText         = errors.New("empty message")
	ErrTextTooLong       = fmt.Errorf("message longer than %d bytes", MaxTextSize)
	ErrBadText           = errors.New("message is not UTF-8 text")
	ErrOutboxFull        = errors.New("outbox full")
	ErrNotFriend         = errors.New("not a friend")
	ErrBadChatID         = errors.New("not a chat id")
	ErrBadNick           = errors.New("bad nickname")
	ErrUnknownIdentity   = errors.New("no such chat identity")
	ErrNoIdentity        = errors.New("no chat identity")
	ErrAmbiguousIdentity = errors.New("more than one chat identity matches")
	ErrNoTunnels         = errors.New("no tunnel router")
	ErrChatStorageFull   = errors.New("chat storage full")
	ErrNoConversation    = errors.New("no such conversation")
	// ErrBadIdempotencyKey: a send's idempotency key is too long.
	ErrBadIdempotencyKey = errors.New("bad idempotency key")
	// ErrIdempotencyKeyReused: a send's idempotency key was used before
	// for another message.
	ErrIdempotencyKeyReused = errors.New("idempotency key used before for another message")

	// Lobbies.
	ErrBadLobbyID         = errors.New("not a lobby id")
	ErrBadLobbyName       = errors.New("bad lobby name")
	ErrBadLobbyTopic      = errors.New("bad lobby topic")
	ErrUnknownLobby       = errors.New("unknown lobby")
	ErrNotJoined          = errors.New("lobby not joined")
	ErrAlreadyJoined      = errors.New("lobby joined already")
	ErrTooManyLobbies     = errors.New("too many lobbies")
	ErrLobbyTooFast       = errors.New("too many lobby messages")
	ErrLobbyFriendOffline = errors.New("friend is offline")
	ErrLobbiesClosed      = errors.New("lobbies closed")

	// Requests and settings.
	// ErrBadRequest: the request could not be understood.
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: no such API endpoint.
	ErrNotFound = errors.New("no such API endpoint")
	// ErrStopping: the daemon stopped while the request ran, which was cut
	// short (what it finished is kept).
	ErrStopping = errors.New("the daemon is stopping")
	// ErrBadSetting: a `kith config` key is unknown or its value invalid.
	ErrBadSetting = errors.New("bad setting")
)

// codeInfo is what a code stands for.
type codeInfo struct {
	code   Code
	err    error
	status int
}

// codes is every error code of the API with its sentinel and the HTTP
// status it is answered with.
var codes = []codeInfo{
	{"invite_empty", ErrInviteEmpty, http.StatusBadRequest},
	{"invite_garbled", ErrInviteGarbled, http.StatusBadRequest},
	{"invite_truncated", ErrInviteTruncated, http.StatusBadRequest},
	{"invite_signature", ErrInviteSignature, http.StatusBadRequest},
	{"invite_version", ErrInviteVersion, http.StatusBadRequest},
	{"invite_too_large", ErrInviteTooLarge, http.StatusBadRequest},
	{"invite_own", ErrInviteOwn, http.StatusBadRequest},
	{"bad_name", ErrBadName, http.StatusBadRequest},
	{"already_friend", ErrAlreadyFriend, http.StatusConflict},
	{"no_such_friend", ErrNoSuchFriend, http.StatusNotFound},
	{"ambiguous_friend", ErrAmbiguousFriend, http.StatusConflict},
	{"friend_offline", ErrFriendOffline, http.StatusConflict},
	{"intro_refused", ErrIntroRefused, http.StatusConflict},
	{"intro_unreachable", ErrIntroUnreachable, http.StatusBadGateway},
	{"too_many_intros", ErrTooManyIntros, http.StatusConflict},
	{"no_such_request", ErrNoSuchRequest, http.StatusNotFound},

	{"link_too_long", ErrLinkTooLong, http.StatusBadRequest},
	{"link_bad_scheme", ErrLinkBadScheme, http.StatusBadRequest},
	{"link_bad_root", ErrLinkBadRoot, http.StatusBadRequest},
	{"link_bad_size", ErrLinkBadSize, http.StatusBadRequest},
	{"link_bad_name", ErrLinkBadName, http.StatusBadRequest},
	{"link_malformed", ErrLinkMalformed, http.StatusBadRequest},
	{"download_exists", ErrDownloadExists, http.StatusConflict},
	{"no_such_download", ErrNoSuchDownload, http.StatusNotFound},
	{"already_have", ErrAlreadyHave, http.StatusConflict},
	{"not_shared", ErrNotShared, http.StatusNotFound},
	{"no_such_path", ErrNoSuchPath, http.StatusNotFound},
	{"nested_share", ErrNestedShare, http.StatusConflict},
	{"not_folder", ErrNotFolder, http.StatusBadRequest},
	{"bad_query", ErrBadQuery, http.StatusBadRequest},
	{"share_unreadable", ErrShareUnreadable, http.StatusConflict},
	{"not_exist", ErrNotExist, http.StatusBadRequest},

	{"bad_search", ErrBadSearch, http.StatusBadRequest},
	{"router_closed", ErrRouterClosed, http.StatusServiceUnavailable},
	{"no_tunnel", ErrNoTunnel, http.StatusNotFound},

	{"empty_text", ErrEmptyText, http.StatusBadRequest},
	{"text_too_long", ErrTextTooLong, http.StatusBadRequest},
	{"bad_text", ErrBadText, http.StatusBadRequest},
	{"outbox_full", ErrOutboxFull, http.StatusConflict},
	{"not_friend", ErrNotFriend, http.StatusNotFound},
	{"bad_chat_id", ErrBadChatID, http.StatusBadRequest},
	{"bad_nick", ErrBadNick, http.StatusBadRequest},
	{"unknown_identity", ErrUnknownIdentity, http.StatusNotFound},
	{"no_identity", ErrNoIdentity, http.StatusConflict},
	{"ambiguous_identity", ErrAmbiguousIdentity, http.StatusConflict},
	{"no_tunnels", ErrNoTunnels, http.StatusServiceUnavailable},
	{"chat_storage_full", ErrChatStorageFull, http.StatusInsufficientStorage},
	{"no_conversation", ErrNoConversation, http.StatusNotFound},
	{"bad_idempotency_key", ErrBadIdempotencyKey, http.StatusBadRequest},
	{"idempotency_key_reused", ErrIdempotencyKeyReused, http.StatusConflict},

	{"bad_lobby_id", ErrBadLobbyID, http.StatusBadRequest},
	{"bad_lobby_name", ErrBadLobbyName, http.StatusBadRequest},
	{"bad_lobby_topic", ErrBadLobbyTopic, http.StatusBadRequest},
	{"unknown_lobby", ErrUnknownLobby, http.StatusNotFound},
	{"lobby_not_joined", ErrNotJoined, http.StatusNotFound},
	{"lobby_joined", ErrAlreadyJoined, http.StatusConflict},
	{"too_many_lobbies", ErrTooManyLobbies, http.StatusConflict},
	{"lobby_too_fast", ErrLobbyTooFast, http.StatusTooManyRequests},
	{"lobby_friend_offline", ErrLobbyFriendOffline, http.StatusConflict},
	{"lobbies_closed", ErrLobbiesClosed, http.StatusServiceUnavailable},

	{"bad_request", ErrBadRequest, http.StatusBadRequest},
	{"not_found", ErrNotFound, http.StatusNotFound},
	{"stopping", ErrStopping, http.StatusServiceUnavailable},
	{"bad_setting", ErrBadSetting, http.StatusBadRequest},
}

// Codes returns every code that has a sentinel error, in a fixed order.
func Codes() []Code {
	out := make([]Code, len(codes))
	for i, c := range codes {
		out[i] = c.code
	}
	return out
}

// CodeOf returns the code of the first sentinel of this package that err
// wraps, and the HTTP status it is answered with; CodeInternal and 500 if
// none.
func CodeOf(err error) (Code, int) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code, c.status
		}
	}
	return CodeInternal, http.StatusInternalServerError
}

// Sentinel returns the sentinel error of code, nil if it has none.
func Sentinel(code Code) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// HTTPStatus returns the HTTP status an error of code is answered with.
func HTTPStatus(code Code) int {
	for _, c := range codes {
		if c.code == code {
			return c.status
		}
	}
	return http.StatusInternalServerError
}

// Error is an error answer from the daemon. It unwraps to the sentinel
// error its code stands for, so callers can use errors.Is.
type Error struct {
	Status  int
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel error of the code, if known.
func (e *Error) Unwrap() error { return Sentinel(e.Code) }
