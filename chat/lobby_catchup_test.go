package chat

import (
	"slices"
	"testing"
	"time"

	"kith/internal/testkit"
)

// TestLobbyCatchUp: a member that was cut off from a lobby (its daemon
// stopped, or its only link to the lobby dropped) gets what was said
// meanwhile once a friend carries the lobby again (by sync), and no
// message twice.
func TestLobbyCatchUp(t *testing.T) {
	nodes := lobbyNet(t, []string{"a", "b", "c"}, [][2]int{{0, 1}, {1, 2}}, time.Minute)
	a, b, c := nodes[0], nodes[1], nodes[2]
	lobby, err := a.lob.Create("catch-up", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b hears of the lobby", func() bool { return announced(b, lobby.ID) })
	if _, err := b.lob.Join(lobby.ID, ""); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "c hears of the lobby", func() bool { return announced(c, lobby.ID) })
	if _, err := c.lob.Join(lobby.ID, ""); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b carries the lobby to c", func() bool { return b.lob.Subscribed(c.ID, lobby.ID) })

	has := func(n *lobbyNode, ids []MsgID) bool {
		ms, _ := n.lob.Log(lobby.ID, 0, 0)
		for _, id := range ids {
			if !slices.ContainsFunc(ms, func(m LobbyMessage) bool { return m.ID == id }) {
				return false
			}
		}
		return true
	}
	say := func(text string) MsgID {
		m, err := a.lob.Send(lobby.ID, text)
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}

	// c's daemon stops; a speaks; c starts again.
	c.stop()
	testkit.WaitFor(t, 10*time.Second, "b sees c gone", func() bool { return !slices.Contains(b.lob.Links(), c.ID) })
	missed := []MsgID{say("while c was away 1"), say("while c was away 2")}
	c.start()
	lobbyConnect(t, c, b)
	testkit.WaitFor(t, 10*time.Second, "c catches up after a restart", func() bool { return has(c, missed) })

	// c's link to b drops without a restart; a speaks; the link comes back.
	c.h.Network().ClosePeer(b.ID)
	testkit.WaitFor(t, 10*time.Second, "the link to drop", func() bool { return !slices.Contains(c.lob.Links(), b.ID) })
	missed2 := []MsgID{say("while the link was down")}
	lobbyConnect(t, c, b)
	testkit.WaitFor(t, 10*time.Second, "c catches up after a lost link", func() bool { return has(c, missed2) })

	ms, err := c.lob.Log(lobby.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[MsgID]bool{}
	for _, m := range ms {
		if seen[m.ID] {
			t.Fatalf("message %s twice in c's history", m.ID)
		}
		seen[m.ID] = true
	}
}

// TestPrivateLobbyOnlyFromMembers: a friend that is neither the inviter
// nor an invitee cannot put messages into a private lobby, even signed
// ones; into a public lobby it can.
func TestPrivateLobbyOnlyFromMembers(t *testing.T) {
	a := lobbyNet(t, []string{"a"}, nil, time.Minute)[0]
	priv, err := a.lob.Create("members only", "", true, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := a.lob.Create("open", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	x := newRawFriend(t, a)
	testkit.WaitFor(t, 10*time.Second, "x's lobby link", func() bool { return len(a.lob.Links()) == 1 })
	mallory := testIdentity(t, "mallory")
	now := time.Now()
	x.send(t, signed(mallory, priv.ID, LobbyKindText, now, "let me in"), signed(mallory, pub.ID, LobbyKindText, now, "hello all"))
	testkit.WaitFor(t, 10*time.Second, "the public message stored", func() bool {
		ms, _ := a.lob.Log(pub.ID, 0, 0)
		return slices.ContainsFunc(ms, func(m LobbyMessage) bool { return m.Text == "hello all" })
	})
	if n := a.lob.Stats().Dropped[DropUnsolicited]; n != 1 {
		t.Fatalf("unsolicited drops: %d, want 1", n)
	}
	ms, _ := a.lob.Log(priv.ID, 0, 0)
	if slices.ContainsFunc(ms, func(m LobbyMessage) bool { return m.Text == "let me in" }) {
		t.Fatal("a non-member's message entered a private lobby")
	}
}

// TestLobbyLinkStatsNeverDecrease: a friend's LinkStats count the lobby
// messages of all its links since the service started, so they keep
// what a link carried after it goes down and add what the next one
// carries (a metrics scraper reads them as counters).
func TestLobbyLinkStatsNeverDecrease(t *testing.T) {
	nodes := lobbyNet(t, []string{"a", "b"}, [][2]int{{0, 1}}, time.Minute)
	a, b := nodes[0], nodes[1]
	lobby, err := a.lob.Create("counters", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b hears of the lobby", func() bool { return announced(b, lobby.ID) })
	if _, err := b.lob.Join(lobby.ID, ""); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "a carries the lobby to b", func() bool { return a.lob.Subscribed(b.ID, lobby.ID) })
	in := func() uint64 { return b.lob.Stats().Links[a.ID].In }
	out := func() uint64 { return a.lob.Stats().Links[b.ID].Out }
	if _, err := a.lob.Send(lobby.ID, "on the first link"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b reads it", func() bool { return in() >= 1 && out() >= 1 })
	in1, out1 := in(), out()

	b.h.Network().ClosePeer(a.ID)
	testkit.WaitFor(t, 10*time.Second, "the links to drop", func() bool {
		return !slices.Contains(b.lob.Links(), a.ID) && !slices.Contains(a.lob.Links(), b.ID)
	})
	if got, gotOut := in(), out(); got < in1 || gotOut < out1 {
		t.Fatalf("with the link down: b counts %d in (was %d), a %d out (was %d)", got, in1, gotOut, out1)
	}

	lobbyConnect(t, b, a)
	waitLobbyLink(t, a, b)
	testkit.WaitFor(t, 10*time.Second, "a carries the lobby to b again", func() bool { return a.lob.Subscribed(b.ID, lobby.ID) })
	if _, err := a.lob.Send(lobby.ID, "on the second link"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the second link's message counted on top", func() bool {
		return in() >= in1+1 && out() >= out1+1
	})
}
