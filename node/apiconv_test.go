package node

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/chat"
	"kith/f2f"
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
		api.MaxIdempotencyKeySize != chat.MaxIdempotencyKeySize || api.LobbyClockWarn != chat.LobbyClockWarn || api.LobbyMaxSkew != chat.LobbyMaxSkew {
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

// jsonOf is v's JSON.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The API's JSON is what it was when the daemon sent the components'
// own types: the web UI and scripts read these keys.
func TestAPIJSONUnchanged(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := chat.Message{Seq: 3, ID: chat.NewMsgID(), Time: at, Stored: at, Out: true, Text: "a & b", Delivered: true}
	if got, want := jsonOf(t, apiMessage(m)), jsonOf(t, m); got != want {
		t.Errorf("message: %s, was %s", got, want)
	}
	st := chat.Stats{Streams: 1, StreamsRefused: 2, StreamsBroken: 3, RefusedStorage: 4, RefusedRequests: 5, SessionsLimited: 6,
		TypingDropped: 7, StoredBytes: 8, StoredMessages: 9, Requests: 10, RequestBytes: 11}
	if got, want := jsonOf(t, apiChatStats(st)), jsonOf(t, st); got != want {
		t.Errorf("chat stats: %s, was %s", got, want)
	}
	sh := share.ShareInfo{Dir: "/d", Name: "d", Browsable: true, Files: 2, Bytes: 3, LastScan: at}
	if got, want := jsonOf(t, apiShare(sh)), jsonOf(t, sh); got != want {
		t.Errorf("share: %s, was %s", got, want)
	}
	sc := share.ScanStats{Files: 1, Hashed: 2, SkippedReasons: map[string]int{"x": 1}, Duration: time.Second}
	if got, want := jsonOf(t, apiScan(sc)), jsonOf(t, sc); got != want {
		t.Errorf("scan: %s, was %s", got, want)
	}
	d := share.DownloadInfo{Root: "ab", Name: "n", Size: 5, Dir: "/t", State: share.StateActive, Groups: 1,
		Sources: []share.SourceInfo{{Name: "bob", Bytes: 1, Rate: 2, Dropped: "lied"}}, Added: at, Anonymous: true}
	if got, want := jsonOf(t, apiDownload(d)), jsonOf(t, d); got != want {
		t.Errorf("download: %s, was %s", got, want)
	}
	id, _ := peer.Decode("12D3KooWLKsKyDFEoifxozsaJ3Y8HqmafRcagyg4JgnfBWet6vUe")
	rs := f2f.ReachState{State: f2f.ReachPublic, How: "h", Reachable: []string{"/ip4/1.2.3.4/tcp/1"}, Checked: at, CheckedBy: []peer.ID{id}}
	if got, want := jsonOf(t, apiReachState(rs)), jsonOf(t, rs); got != want {
		t.Errorf("reach state: %s, was %s", got, want)
	}
	// A lobby invite was chat's, embedded, with the friend's name.
	inv := chat.LobbyInvite{Lobby: chat.NewLobbyID(), Name: "hall", Topic: "t", Private: true, From: id.String(), Nick: "ann", Received: at}
	was := struct {
		chat.LobbyInvite
		FromName string `json:"from_name"`
	}{inv, ""}
	if got, want := jsonOf(t, api.LobbyInvite{Lobby: inv.Lobby.String(), Name: inv.Name, Topic: inv.Topic, Private: inv.Private,
		From: inv.From, Nick: inv.Nick, Received: inv.Received}), jsonOf(t, was); got != want {
		t.Errorf("lobby invite: %s, was %s", got, want)
	}
	lm := chat.LobbyMessage{Seq: 1, Lobby: chat.NewLobbyID(), ID: chat.NewMsgID(), Kind: chat.LobbyKindText, Nick: "ann", Time: at, Text: "hi"}
	wasLM := struct {
		Seq    uint64         `json:"seq,omitempty"`
		Lobby  chat.LobbyID   `json:"lobby"`
		ID     chat.MsgID     `json:"id"`
		Kind   chat.LobbyKind `json:"kind"`
		Author string         `json:"author"`
		Nick   string         `json:"nick"`
		Time   time.Time      `json:"time"`
		Stored time.Time      `json:"stored,omitzero"`
		Text   string         `json:"text,omitempty"`
	}{lm.Seq, lm.Lobby, lm.ID, lm.Kind, lm.Author.String(), lm.Nick, lm.Time, lm.Stored, lm.Text}
	if got, want := jsonOf(t, apiLobbyMessage(lm)), jsonOf(t, wasLM); got != want {
		t.Errorf("lobby message: %s, was %s", got, want)
	}
}
