package chat

import (
	"slices"
	"testing"
	"time"

	"kith/internal/testkit"
)

// lobbyChain starts a-b-c, friends along the chain, all in one lobby a
// created, with b carrying it both ways.
func lobbyChain(t *testing.T) (a, b, c *lobbyNode, id LobbyID) {
	t.Helper()
	nodes := lobbyNet(t, []string{"a", "b", "c"}, [][2]int{{0, 1}, {1, 2}}, time.Minute)
	a, b, c = nodes[0], nodes[1], nodes[2]
	lobby, err := a.lob.Create("chain", "", false, "")
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
	testkit.WaitFor(t, 10*time.Second, "b carries the lobby", func() bool {
		return b.lob.Subscribed(c.ID, lobby.ID) && b.lob.Subscribed(a.ID, lobby.ID) &&
			a.lob.Subscribed(b.ID, lobby.ID) && c.lob.Subscribed(b.ID, lobby.ID)
	})
	return a, b, c, lobby.ID
}

// countIn returns how many times each of ids is in n's history of lobby.
func countIn(t *testing.T, n *lobbyNode, lobby LobbyID, ids []MsgID) map[MsgID]int {
	t.Helper()
	got := map[MsgID]int{}
	var after uint64
	for {
		ms, err := n.lob.Log(lobby, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			if slices.Contains(ids, m.ID) {
				got[m.ID]++
			}
		}
		after = ms[len(ms)-1].Seq
	}
	return got
}

// TestLobbyRelayDownHeals is issue 13 point 2: in a chain a-b-c, the
// relay b stops; a and c each speak while it is away (their sends
// succeed: the messages are stored at their authors). Once b is back on
// the same key, every member holds every message exactly once: c's
// message crossed b to a and a's to c, although neither was fresh news
// for b's live relay when it came back.
func TestLobbyRelayDownHeals(t *testing.T) {
	a, b, c, lobby := lobbyChain(t)
	b.stop()
	testkit.WaitFor(t, 10*time.Second, "a and c see b gone", func() bool {
		return !slices.Contains(a.lob.Links(), b.ID) && !slices.Contains(c.lob.Links(), b.ID)
	})
	var ids []MsgID
	for i, n := range []*lobbyNode{a, c, a, c} {
		m, err := n.lob.Send(lobby, "said while b was away "+string(rune('1'+i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	b.start()
	lobbyConnect(t, b, a)
	lobbyConnect(t, b, c)
	for _, n := range []*lobbyNode{a, b, c} {
		testkit.WaitFor(t, 20*time.Second, n.nick+" holds every message", func() bool {
			return len(countIn(t, n, lobby, ids)) == len(ids)
		})
	}
	// Whatever is still under way settles; then nothing is there twice.
	time.Sleep(time.Second)
	for _, n := range []*lobbyNode{a, b, c} {
		for id, k := range countIn(t, n, lobby, ids) {
			if k != 1 {
				t.Fatalf("%s holds message %s %d times", n.nick, id, k)
			}
		}
	}
}
