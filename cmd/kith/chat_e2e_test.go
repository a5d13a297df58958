package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kith/chat"
	"kith/node/api"
)

// chatPair starts two daemons, alice and bob, that are friends and online.
func chatPair(t *testing.T) (homeA, homeB string, da, db *daemon, idA, idB api.InviteInfo) {
	t.Helper()
	dir := t.TempDir()
	homeA, homeB = filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	da, db = startDaemon(t, homeA), startDaemon(t, homeB)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	mustKith(t, "friend", "add", idB.Invite, "--home", homeA)
	mustKith(t, "friend", "add", idA.Invite, "--home", homeB)
	waitFriend(t, homeA, idB.PeerID, true)
	waitFriend(t, homeB, idA.PeerID, true)
	return
}

func TestChatCLI(t *testing.T) {
	homeA, homeB, da, db, _, _ := chatPair(t)
	long := strings.Repeat("x", api.MaxTextSize+1)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown friend", []string{"chat", "send", "carol", "hi"}, 1, "no such friend"},
		{"empty text", []string{"chat", "send", "bob", " "}, 1, "empty message"},
		{"oversize text", []string{"chat", "send", "bob", long}, 1, "longer than 65536 bytes"},
		{"no text", []string{"chat", "send", "bob"}, 2, "requires at least 2 arg"},
		{"log of a stranger", []string{"chat", "log", "carol"}, 1, "no such friend"},
		{"bad since", []string{"chat", "log", "bob", "--since", "yesterday-ish"}, 2, "--since"},
		{"distant bad id", []string{"distant", "send", "kc123", "hi"}, 1, "not a chat id"},
		{"distant without identity", []string{"distant", "send", "kc" + strings.Repeat("a", 55), "hi"}, 1, ""},
		{"bad nick", []string{"identity", "new", strings.Repeat("n", 65)}, 1, "bad nickname"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := kith(t, append(c.args, "--home", homeA)...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, c.code, c.want)
			}
		})
	}

	mustKith(t, "chat", "send", "bob", "hello", "bob", "--home", homeA)
	var got []api.Message
	deadline := time.Now().Add(15 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		json.Unmarshal([]byte(mustKith(t, "chat", "log", "alice", "--json", "--home", homeB)), &got)
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != 1 || got[0].Text != "hello bob" || got[0].Out {
		t.Fatalf("bob's log: %+v", got)
	}
	if out := mustKith(t, "chat", "log", "bob", "--home", homeA); !strings.Contains(out, "me: hello bob") {
		t.Fatalf("alice's log: %q", out)
	}

	// Identities: none, then one; distant send needs one.
	if out := mustKith(t, "identity", "ls", "--home", homeA); !strings.Contains(out, "kith identity new") {
		t.Fatalf("identity ls with none: %q", out)
	}
	line := mustKith(t, "identity", "new", "al-pseudo", "--home", homeA)
	fields := strings.Fields(line)
	if len(fields) != 2 || fields[0] != "al-pseudo" {
		t.Fatalf("identity new printed %q", line)
	}
	if _, err := chat.ParseChatID(fields[1]); err != nil {
		t.Fatalf("identity new printed a bad chat id: %v", err)
	}
	if out := mustKith(t, "identity", "ls", "--home", homeA); !strings.Contains(out, fields[1]) {
		t.Fatalf("identity ls: %q", out)
	}
	da.stop(t)
	db.stop(t)
}

// TestChatSurvivesKill: alice writes 1,000 messages to bob while bob's
// daemon is killed with SIGKILL mid-delivery and restarted: bob ends with
// each message exactly once, in order, and alice's outbox empties.
func TestChatSurvivesKill(t *testing.T) {
	const total = 1000
	homeA, homeB, _, db, idA, idB := chatPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ca, cb := api.NewClient(homeA), api.NewClient(homeB)
	sent := make([]string, total)
	sendErr := make(chan error, 1)
	go func() { // alice writes while bob is killed and restarted
		for i := range total {
			m, err := ca.ChatSend(ctx, idB.PeerID, fmt.Sprintf("message %04d", i))
			if err != nil {
				sendErr <- err
				return
			}
			sent[i] = m.ID
		}
		sendErr <- nil
	}()
	all := func() ([]api.Message, error) {
		var out []api.Message
		for after := uint64(0); ; {
			ms, err := cb.ChatLog(ctx, idA.PeerID, after, time.Time{}, 0)
			if err != nil || len(ms) == 0 {
				return out, err
			}
			out = append(out, ms...)
			after = ms[len(ms)-1].Seq
		}
	}
	received := func() int {
		ms, err := all()
		if err != nil {
			return -1
		}
		return len(ms)
	}
	waitCount := func(what string, cond func(int) bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for n := received(); !cond(n); n = received() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (bob has %d)", what, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCount("some delivered", func(n int) bool { return n >= 50 })
	n := received()
	if n >= total {
		t.Fatalf("all %d delivered before the kill: the test proves nothing", n)
	}
	db.cmd.Process.Signal(syscall.SIGKILL)
	<-db.done
	db.done <- nil
	t.Logf("killed bob with %d of %d stored", n, total)
	db = startDaemon(t, homeB)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	waitCount("all delivered", func(n int) bool { return n >= total })
	ms, err := all()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != total {
		t.Fatalf("bob has %d messages, want %d", len(ms), total)
	}
	for i, m := range ms {
		if m.ID != sent[i] || m.Text != fmt.Sprintf("message %04d", i) {
			t.Fatalf("bob's message %d is %q (%s), want %s", i, m.Text, m.ID, sent[i])
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		convs, err := ca.Conversations(ctx)
		if err == nil && len(convs) == 1 && convs[0].Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's outbox never emptied: %+v %v", convs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	db.stop(t)
}
