package chat

import (
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"kith/internal/testkit"
)

// TestLobbyVerifyHook: LobbyConfig.Verify is what checks the signature of
// every message taken from a friend (live here): each is asked for, and
// its answer decides, so a hook that says no drops a well-signed message
// as a bad signature.
func TestLobbyVerifyHook(t *testing.T) {
	var asked atomic.Int64
	var refuse atomic.Bool
	a := lobbyNetWith(t, []string{"a"}, nil, time.Minute, func(ns []*lobbyNode) {
		ns[0].verify = func(pub ed25519.PublicKey, msg, sig []byte) bool {
			asked.Add(1)
			return !refuse.Load() && ed25519.Verify(pub, msg, sig)
		}
	})[0]
	lobby, err := a.lob.Create("hook", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	x := newRawFriend(t, a)
	bob := testIdentity(t, "bob")
	first := signed(bob, lobby.ID, LobbyKindText, time.Now(), "checked by the hook")
	x.send(t, first)
	testkit.WaitFor(t, 10*time.Second, "the first text stored", func() bool {
		return countIn(t, a, lobby.ID, []MsgID{first.ID})[first.ID] == 1
	})
	if n := asked.Load(); n != 1 {
		t.Fatalf("the hook was asked %d times for one message, want 1", n)
	}
	refuse.Store(true)
	second := signed(bob, lobby.ID, LobbyKindText, time.Now(), "refused by the hook")
	x.send(t, second)
	testkit.WaitFor(t, 10*time.Second, "the second text dropped", func() bool {
		return a.lob.Stats().Dropped[DropBadSignature] == 1
	})
	if n := countIn(t, a, lobby.ID, []MsgID{second.ID})[second.ID]; n != 0 {
		t.Fatal("a stored a message its verifier refused")
	}
	if n := asked.Load(); n != 2 {
		t.Fatalf("the hook was asked %d times for two messages, want 2", n)
	}
}

// TestLobbyHistoryTextOnly: a history reply carries a lobby's text, not
// its joins and leaves, however many joins came after the text (before,
// it carried the newest 100 records: in a lobby many joined lately, all
// JOINs, each of which the joiner checked and stored).
func TestLobbyHistoryTextOnly(t *testing.T) {
	a := lobbyNet(t, []string{"a"}, nil, time.Minute)[0]
	lobby, err := a.lob.Create("history", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	said, err := a.lob.Send(lobby.ID, "said before the joins")
	if err != nil {
		t.Fatal(err)
	}
	const joins = 30
	x := newRawFriend(t, a)
	for range joins {
		x.send(t, signed(testIdentity(t, "joiner"), lobby.ID, LobbyKindJoin, time.Now(), ""))
	}
	testkit.WaitFor(t, 10*time.Second, "the joins stored", func() bool {
		ms, _ := a.lob.Log(lobby.ID, 0, 0)
		return kindCount(ms, LobbyKindJoin) == joins+1 // a's own too
	})
	y := newReadingFriend(t, a)
	y.write(t, historyRequestFrame(lobby.ID, LobbyHistoryMax))
	reply := y.next(t, lobbyFrameHistoryReply)
	if len(reply.history) != 1 || reply.history[0].ID != said.ID {
		kinds := map[LobbyKind]int{}
		for _, m := range reply.history {
			kinds[m.Kind]++
		}
		t.Fatalf("history reply holds %d messages (%v), want only the text", len(reply.history), kinds)
	}
}

// lastTxID is the id of the last write transaction committed to db.
func lastTxID(t *testing.T, db *bolt.DB) int {
	t.Helper()
	var id int
	if err := db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestLobbyJoinsStoredInBatches: the JOINs a friend relays are stored
// (each once, and published once) in a few bbolt transactions, not one
// each: every member stores every JOIN of a lobby, and a transaction per
// JOIN was the largest cost of a burst of joins after signature checks.
func TestLobbyJoinsStoredInBatches(t *testing.T) {
	a := lobbyNet(t, []string{"a"}, nil, time.Minute)[0]
	lobby, err := a.lob.Create("batches", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	x := newRawFriend(t, a)
	const joins = 40 // under the friend's burst (LobbyFriendBurst)
	ms := make([]*LobbyMessage, joins)
	ids := make([]MsgID, joins)
	for i := range ms {
		ms[i] = signed(testIdentity(t, "joiner"), lobby.ID, LobbyKindJoin, time.Now(), "")
		ids[i] = ms[i].ID
	}
	tx0 := lastTxID(t, a.db)
	x.send(t, ms...)
	testkit.WaitFor(t, 10*time.Second, "the joins stored", func() bool {
		got := countIn(t, a, lobby.ID, ids)
		for _, id := range ids {
			if got[id] != 1 {
				return false
			}
		}
		return true
	})
	if n := lastTxID(t, a.db) - tx0; n > joins/4 {
		t.Fatalf("%d JOINs stored in %d write transactions, want at most %d", joins, n, joins/4)
	} else {
		t.Logf("%d JOINs stored in %d write transactions", joins, n)
	}
	// Each published once, after it is stored (with its sequence number).
	testkit.WaitFor(t, 5*time.Second, "the joins published", func() bool {
		return kindCount(lobbyEvents(a, lobby.ID), LobbyKindJoin) >= joins+1
	})
	seen := map[MsgID]int{}
	for _, m := range lobbyEvents(a, lobby.ID) {
		if m.Kind == LobbyKindJoin {
			seen[m.ID]++
			if m.Seq == 0 {
				t.Fatalf("JOIN %s published before it was stored", m.ID)
			}
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("JOIN %s published %d times", id, seen[id])
		}
	}
	// A JOIN sent again is a duplicate: not stored or published twice.
	x.send(t, ms[0])
	testkit.WaitFor(t, 5*time.Second, "the resent JOIN dropped", func() bool {
		return a.lob.Stats().Dropped[DropDuplicate] >= 1
	})
	time.Sleep(2 * LobbyStoreDelay)
	if n := countIn(t, a, lobby.ID, ids[:1])[ids[0]]; n != 1 {
		t.Fatalf("the resent JOIN is stored %d times", n)
	}
}

// TestStoredHead: storedHead reads the id and kind of a stored message
// of every kind as the full decoder does.
func TestStoredHead(t *testing.T) {
	as := testIdentity(t, "head")
	for _, k := range []LobbyKind{LobbyKindText, LobbyKindJoin, LobbyKindLeave, LobbyKindKeepAlive} {
		text := ""
		if k == LobbyKindText {
			text = "said"
		}
		m := signed(as, NewLobbyID(), k, time.Now(), text)
		b, err := encodeStored(m)
		if err != nil {
			t.Fatal(err)
		}
		id, kind, ok := storedHead(b)
		if !ok || id != m.ID || kind != k {
			t.Fatalf("%v: storedHead reads %s %v %v, want %s %v", k, id, kind, ok, m.ID, k)
		}
	}
	if _, _, ok := storedHead([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff}); ok {
		t.Fatal("storedHead reads a broken record")
	}
}

// TestLobbyPresenceFlushVisitsWaiting: while presence waits for one
// link's budget, that link is the only one the presence flush visits
// (presWaiting), not every link the node has; once the queue drains, none,
// and everything waiting went out.
func TestLobbyPresenceFlushVisitsWaiting(t *testing.T) {
	nodes := lobbyNet(t, []string{"a", "b"}, [][2]int{{0, 1}}, time.Minute)
	a, b := nodes[0], nodes[1]
	li, err := a.lob.Create("flush", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b sees the lobby", func() bool { return announced(b, li.ID) })
	if _, err := b.lob.Join(li.ID, ""); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "a has b subscribed", func() bool { return a.lob.Subscribed(b.h.ID(), li.ID) })
	// Two more friends of a, not in the lobby: links with nothing to wait.
	for range 2 {
		newRawFriend(t, a)
	}
	testkit.WaitFor(t, 10*time.Second, "a's links", func() bool { return len(a.lob.Links()) == 3 })
	const joins = 30 // past b's budget's burst, within its queue
	x := newRawFriend(t, a)
	ids := map[MsgID]bool{}
	for range joins {
		m := signed(testIdentity(t, "joiner"), li.ID, LobbyKindJoin, time.Now(), "")
		ids[m.ID] = true
		x.send(t, m)
	}
	var waiting []string
	testkit.WaitFor(t, 5*time.Second, "presence waiting for b's budget", func() bool {
		a.lob.mu.Lock()
		defer a.lob.mu.Unlock()
		waiting = waiting[:0]
		for l := range a.lob.presWaiting {
			waiting = append(waiting, l.peer.String())
		}
		return len(waiting) > 0
	})
	if len(waiting) != 1 || waiting[0] != b.h.ID().String() {
		t.Fatalf("the flush visits %d links (%v), want only b's of a's %d", len(waiting), waiting, len(a.lob.Links()))
	}
	testkit.WaitFor(t, 15*time.Second, "every JOIN at b", func() bool {
		got := 0
		for _, f := range b.relays.frames(a.h.ID(), false) {
			if ids[f.id] {
				got++
			}
		}
		return got == joins
	})
	testkit.WaitFor(t, 5*time.Second, "nothing waiting", func() bool {
		a.lob.mu.Lock()
		defer a.lob.mu.Unlock()
		return len(a.lob.presWaiting) == 0
	})
}
