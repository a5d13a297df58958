package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// debugPair is chatPair with both daemons logging at debug level.
func debugPair(t *testing.T) (homeA, homeB string, da, db *daemon, idA, idB api.InviteInfo) {
	t.Helper()
	dir := t.TempDir()
	homeA, homeB = filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	da, db = startDaemon(t, homeA, "--log-level", "debug"), startDaemon(t, homeB, "--log-level", "debug")
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	// friend add --json prints the friend made.
	var added api.FriendInfo
	if err := json.Unmarshal([]byte(mustKith(t, "friend", "add", idB.Invite, "--json", "--home", homeA)), &added); err != nil ||
		added.PeerID != idB.PeerID || added.Name != "bob" {
		t.Fatalf("friend add --json: %+v %v", added, err)
	}
	mustKith(t, "friend", "add", idA.Invite, "--home", homeB)
	waitFriend(t, homeA, idB.PeerID, true)
	waitFriend(t, homeB, idA.PeerID, true)
	return
}

// TestChatSendSaysDelivered (issue 17): `kith chat send` to a friend that
// is online says the message was delivered once the friend acked it,
// instead of saying it waits in the outbox; to a friend that is offline
// it says it waits. The daemons' log lines name the friend, not
// <peer.ID 12*...>.
func TestChatSendSaysDelivered(t *testing.T) {
	homeA, _, da, db, _, idB := debugPair(t)
	out := mustKith(t, "chat", "send", "bob", "are you there?", "--home", homeA)
	if !strings.Contains(out, "delivered") || !strings.Contains(out, "to bob") || strings.Contains(out, "outbox") {
		t.Fatalf("chat send to an online friend printed %q", out)
	}
	var ms []api.Message
	json.Unmarshal([]byte(mustKith(t, "chat", "log", "bob", "--json", "--home", homeA)), &ms)
	if len(ms) != 1 || !ms[0].Delivered || !strings.Contains(out, ms[0].ID) {
		t.Fatalf("alice's log after the send: %+v", ms)
	}

	// Log lines of kith's components name the friend.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(da.log.String(), "router link up") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	found := false
	for _, l := range strings.Split(da.log.String(), "\n") {
		if !strings.Contains(l, "link up") {
			continue
		}
		found = true
		if !strings.Contains(l, `peer="bob (`) || strings.Contains(l, "<peer.ID") {
			t.Errorf("a log line does not name bob: %s", l)
		}
	}
	if !found {
		t.Fatalf("no link-up line in alice's debug log:\n%s", da.log.String())
	}

	db.stop(t)
	waitFriend(t, homeA, idB.PeerID, false)
	out = mustKith(t, "chat", "send", "bob", "later then", "--home", homeA)
	if !strings.Contains(out, "waits in the outbox until bob is online") || strings.Contains(out, "delivered") {
		t.Fatalf("chat send to an offline friend printed %q", out)
	}
	da.stop(t)
}

// TestLobbyTripUps (issue 17): `identity new --json` and `lobby create
// --json` print what they made; a joiner's `lobby log` is in time order
// (the history it was sent comes before its own join, which it stored
// first); `lobby ls` counts everyone in the lobby, oneself included.
func TestLobbyTripUps(t *testing.T) {
	homeA, homeB, da, db, _, _ := chatPair(t)
	var ida, idb api.IdentityInfo
	if err := json.Unmarshal([]byte(mustKith(t, "identity", "new", "ann", "--json", "--home", homeA)), &ida); err != nil ||
		ida.Nick != "ann" || !strings.HasPrefix(ida.ChatID, "kc") {
		t.Fatalf("identity new --json: %+v %v", ida, err)
	}
	json.Unmarshal([]byte(mustKith(t, "identity", "new", "ben", "--json", "--home", homeB)), &idb)
	var li api.LobbyInfo
	if err := json.Unmarshal([]byte(mustKith(t, "lobby", "create", "hall", "--topic", "t", "--json", "--home", homeA)), &li); err != nil ||
		len(li.ID) != 32 || li.Name != "hall" || !li.Joined || li.As != ida.ChatID {
		t.Fatalf("lobby create --json: %+v %v", li, err)
	}
	mustKith(t, "lobby", "send", li.ID, "one", "--home", homeA)
	mustKith(t, "lobby", "send", li.ID, "two", "--home", homeA)

	lobbies := func(home string) api.Lobbies {
		var ls api.Lobbies
		json.Unmarshal([]byte(mustKith(t, "lobby", "ls", "--json", "--home", home)), &ls)
		return ls
	}
	deadline := time.Now().Add(15 * time.Second)
	for ls := lobbies(homeB); len(ls.Lobbies) == 0; ls = lobbies(homeB) {
		if time.Now().After(deadline) {
			t.Fatal("bob never saw alice's lobby")
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustKith(t, "lobby", "join", li.ID, "--home", homeB)

	// Bob's log: alice's messages (a history reply carries text only, not
	// the joins of those who joined before him), then his own join.
	var log []api.LobbyMessage
	for deadline = time.Now().Add(15 * time.Second); ; {
		log = nil
		json.Unmarshal([]byte(mustKith(t, "lobby", "log", li.ID, "--json", "--home", homeB)), &log)
		if len(log) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's log never got alice's history: %+v", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.IsSortedFunc(log, func(a, b api.LobbyMessage) int { return a.Received().Compare(b.Received()) }) {
		t.Fatalf("bob's log is not in time order: %+v", log)
	}
	texts := []string{}
	for _, m := range log {
		texts = append(texts, string(m.Kind)+":"+m.Nick+":"+m.Text)
	}
	if want := []string{"text:ann:one", "text:ann:two", "join:ben:"}; !slices.Equal(texts[:3], want) {
		t.Fatalf("bob's log reads %q, want %q first", texts, want)
	}
	text := mustKith(t, "lobby", "log", li.ID, "--home", homeB)
	if i, j := strings.Index(text, ": two"), strings.Index(text, "ben"); i < 0 || j < 0 || i > j {
		t.Fatalf("bob's text log is not in time order:\n%s", text)
	}

	// Both count two people: themselves and the other, bob as soon as he
	// has alice's history (she spoke lately), before he hears her live.
	for _, home := range []string{homeB, homeA} {
		for deadline = time.Now().Add(20 * time.Second); ; {
			ls := lobbies(home)
			if len(ls.Lobbies) == 1 && ls.Lobbies[0].Participants == 2 {
				break
			}
			if time.Now().After(deadline) {
				who := kith(t, "lobby", "who", li.ID, "--json", "--home", home).stdout
				t.Fatalf("lobby ls of %s: %+v\nlobby who: %s", filepath.Base(home), ls, who)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	da.stop(t)
	db.stop(t)
}
