package node

import (
	"errors"
	"slices"
	"testing"

	"kith/chat"
	"kith/node/api"
	"kith/share"
)

// Every component error the daemon answers with a code has that code in
// package api, so the client turns it back into an api sentinel.
func TestAPIErrorCodesKnown(t *testing.T) {
	for _, e := range apiErrors {
		if api.Sentinel(e.code) == nil {
			t.Errorf("%v answers with code %q, which package api does not know", e.err, e.code)
		}
		// The node's own errors are api's sentinels: the first match must
		// not be shadowed by a different code in api.
		if code, _ := api.CodeOf(e.err); code != api.CodeInternal && code != e.code {
			t.Errorf("%v: node answers %q, api says %q", e.err, e.code, code)
		}
	}
	for _, err := range []error{ErrBadRequest, ErrNotFound, ErrStopping, ErrBadSetting, ErrAlreadyHave, ErrFriendOffline} {
		if errorCode(err) == api.CodeInternal {
			t.Errorf("%v has no code", err)
		}
	}
	if !errors.Is(&api.Error{Code: "no_such_friend"}, api.ErrNoSuchFriend) {
		t.Fatal("an error answer does not unwrap to its sentinel")
	}
}

// The limits package api gives clients are chat's own.
func TestAPIChatLimits(t *testing.T) {
	if api.MaxTextSize != chat.MaxTextSize || api.HistoryBudget != chat.HistoryBudget ||
		api.TypingInterval != chat.TypingInterval || api.TypingShown != chat.TypingShown ||
		api.MaxIdempotencyKeySize != chat.MaxIdempotencyKeySize {
		t.Fatal("package api's chat limits differ from chat's")
	}
}

// The download states and events share publishes are package api's.
func TestAPIDownloadNames(t *testing.T) {
	for _, st := range []share.DownloadState{share.StateQueued, share.StateSearching, share.StateActive, share.StateVerifying,
		share.StateDone, share.StateFailed, share.StatePaused, share.StateNoSource} {
		if !slices.Contains([]api.DownloadState{api.StateQueued, api.StateSearching, api.StateActive, api.StateVerifying,
			api.StateDone, api.StateFailed, api.StatePaused, api.StateNoSource}, api.DownloadState(st)) {
			t.Errorf("share's state %q is not in package api", st)
		}
	}
	for _, typ := range []string{"download.progress", "download.done", "download.failed", "download.source_dropped"} {
		if !slices.Contains(api.EventTypes(), api.EventType(typ)) {
			t.Errorf("share's event %q is not in package api", typ)
		}
	}
	for _, k := range []chat.LobbyKind{chat.LobbyKindText, chat.LobbyKindJoin, chat.LobbyKindLeave, chat.LobbyKindKeepAlive} {
		if !slices.Contains([]api.LobbyKind{api.LobbyKindText, api.LobbyKindJoin, api.LobbyKindLeave, api.LobbyKindKeepAlive}, api.LobbyKind(k.String())) {
			t.Errorf("lobby kind %v is not in package api", k)
		}
	}
}
