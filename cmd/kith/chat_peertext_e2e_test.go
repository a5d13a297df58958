package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// assertShown fails if out holds any hostile character raw.
func assertShown(t *testing.T, what, out string) {
	t.Helper()
	for _, h := range hostile {
		if strings.Contains(out, h) {
			t.Fatalf("%s prints %q raw:\n%q", what, h, out)
		}
	}
}

// TestChatCLIHostileText: peer strings with terminal controls and bidi
// overrides (lobby names and topics, nicknames, lobby and chat text) are
// printed as visible escapes by every command that shows them.
func TestChatCLIHostileText(t *testing.T) {
	homeA, homeB, da, db, idA, _ := chatPair(t)
	nick := "eve\u202elive\u009b2J"
	mustKith(t, "identity", "new", nick, "--home", homeA)
	mustKith(t, "identity", "new", "bob", "--home", homeB)
	name, topic := "hall\u009b31m\u202e", "topic\u202e\u009b"
	id := strings.TrimSpace(mustKith(t, "lobby", "create", name, "--topic", topic, "--home", homeA))
	text := "hi \x1b]0;pwned\a \u009b31mred\u202e\r over"
	mustKith(t, "lobby", "send", id, text, "--home", homeA)
	for _, args := range [][]string{{"lobby", "ls"}, {"lobby", "log", id}, {"lobby", "who", id}, {"identity", "ls"}} {
		out := mustKith(t, append(args, "--home", homeA)...)
		assertShown(t, "kith "+strings.Join(args, " "), out)
		if !strings.Contains(out, `\u009b`) && !strings.Contains(out, `\u202e`) {
			t.Fatalf("kith %s shows no escape: %q", strings.Join(args, " "), out)
		}
	}
	// Bob sees the lobby announced, with its hostile name and topic.
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := mustKith(t, "lobby", "ls", "--home", homeB)
		assertShown(t, "bob's kith lobby ls", out)
		if strings.Contains(out, id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob never saw the lobby: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustKith(t, "lobby", "join", id, "--home", homeB)
	mustKith(t, "lobby", "send", id, text, "--home", homeB)
	out := mustKith(t, "lobby", "log", id, "--home", homeB)
	assertShown(t, "bob's kith lobby log", out)

	// Private chat text.
	mustKith(t, "chat", "send", "bob", text, "--home", homeA)
	deadline = time.Now().Add(15 * time.Second)
	for {
		var ms []api.Message
		json.Unmarshal([]byte(mustKith(t, "chat", "log", "alice", "--json", "--home", homeB)), &ms)
		if len(ms) == 1 && ms[0].Text == text {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob never got the message: %+v", ms)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out = mustKith(t, "chat", "log", idA.PeerID, "--home", homeB)
	assertShown(t, "kith chat log", out)
	if !strings.Contains(out, `\x1b]0;pwned\x07`) {
		t.Fatalf("chat log does not show the escapes: %q", out)
	}
	da.stop(t)
	db.stop(t)
}
