package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"kith/chat/pb"
	"kith/internal/testkit"
)

// lobbyChain starts a-b-c, friends along the chain, all in one lobby a
// created, with b carrying it both ways.
func lobbyChain(t *testing.T) (a, b, c *lobbyNode, id LobbyID) {
	t.Helper()
	return lobbyChainWith(t, nil)
}

// lobbyChainWith is lobbyChain with setup run on a, b, c before they
// start.
func lobbyChainWith(t *testing.T, setup func([]*lobbyNode)) (a, b, c *lobbyNode, id LobbyID) {
	t.Helper()
	nodes := lobbyNetWith(t, []string{"a", "b", "c"}, [][2]int{{0, 1}, {1, 2}}, time.Minute, setup)
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

// readingFriend is a raw friend of a lobby node that also reads what the
// node writes to it.
type readingFriend struct {
	*rawFriend
	frames chan lobbyFrame
}

func newReadingFriend(t *testing.T, of *lobbyNode) *readingFriend {
	t.Helper()
	p := testkit.NewPeer(t)
	testkit.Befriend(p, of.Peer)
	h := p.Host(t)
	testkit.Connect(t, h, of.h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, of.h.ID(), protocol.ID(LobbyProtocolID))
	if err != nil {
		t.Fatal(err)
	}
	r := &readingFriend{rawFriend: &rawFriend{h: h, st: st, fw: newLobbyFrameWriter(st)}, frames: make(chan lobbyFrame, 4096)}
	go func() {
		fr := newLobbyFrameReader(st, nil)
		for {
			f, err := fr.read()
			if err != nil {
				close(r.frames)
				return
			}
			select {
			case r.frames <- f:
			default:
			}
		}
	}()
	return r
}

func (r *readingFriend) write(t *testing.T, fs ...*pb.LobbyFrame) {
	t.Helper()
	for _, f := range fs {
		if err := r.fw.write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.fw.flush(); err != nil {
		t.Fatal(err)
	}
}

// next returns the next frame of type typ the node wrote, skipping
// others.
func (r *readingFriend) next(t *testing.T, typ lobbyFrameType) lobbyFrame {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-r.frames:
			if !ok {
				t.Fatal("the node closed the lobby stream")
			}
			if f.typ == typ {
				return f
			}
		case <-timeout:
			t.Fatalf("no frame of type %d from the node", typ)
		}
	}
}

// TestLobbySyncTakesOnlyWhatItAsked: a friend that lists a message the
// node lacks gets asked for it, and its answer is stored although the
// message is a day old (too old for live relay); a sync reply nobody
// asked for, or a message in it that was not asked for, is dropped.
func TestLobbySyncTakesOnlyWhatItAsked(t *testing.T) {
	a := lobbyNet(t, []string{"a"}, nil, time.Minute)[0]
	lobby, err := a.lob.Create("sync", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	// A text to list: "have" lists text, not joins (lobby_store.go).
	if _, err := a.lob.Send(lobby.ID, "first"); err != nil {
		t.Fatal(err)
	}
	x := newReadingFriend(t, a)
	x.write(t, subscribeFrame([]LobbyID{lobby.ID}))
	have := x.next(t, lobbyFrameHave) // a lists its text, not its join
	if len(have.ids) != 1 {
		t.Fatalf("a lists %d messages, want its text", len(have.ids))
	}
	mallory := testIdentity(t, "mallory")
	old := signed(mallory, lobby.ID, LobbyKindText, time.Now().Add(-24*time.Hour), "said yesterday")
	pushed := signed(mallory, lobby.ID, LobbyKindText, time.Now().Add(-24*time.Hour), "not asked for")

	x.write(t, syncReplyFrame(lobby.ID, []LobbyMessage{*pushed}, false))
	x.write(t, haveFrame(lobby.ID, []MsgID{old.ID}))
	want := x.next(t, lobbyFrameWant)
	if len(want.ids) != 1 || want.ids[0] != old.ID {
		t.Fatalf("a asks for %v, want only the message it lacks", want.ids)
	}
	x.write(t, syncReplyFrame(lobby.ID, []LobbyMessage{*old, *pushed}, false))
	testkit.WaitFor(t, 10*time.Second, "the day-old message stored", func() bool {
		return countIn(t, a, lobby.ID, []MsgID{old.ID})[old.ID] == 1
	})
	if n := countIn(t, a, lobby.ID, []MsgID{pushed.ID})[pushed.ID]; n != 0 {
		t.Fatal("a stored a message no one asked for")
	}
	// The message not asked for is dropped after the one stored, maybe
	// just after.
	testkit.WaitFor(t, 5*time.Second, "two unsolicited drops", func() bool { return a.lob.Stats().Dropped[DropUnsolicited] >= 2 })
	if n := a.lob.Stats().Dropped[DropUnsolicited]; n != 2 {
		t.Fatalf("unsolicited drops: %d, want 2 (the reply not asked for, the message not asked for)", n)
	}
}

// TestLobbySyncBounds: have and want frames with more ids than their
// limits break the protocol; a friend that floods "want"s is answered at
// LobbyWantRate, not as fast as it asks.
func TestLobbySyncBounds(t *testing.T) {
	id := NewLobbyID()
	for name, f := range map[string]*pb.LobbyFrame{
		"have": haveFrame(id, make([]MsgID, LobbySyncIDs+1)),
		"want": wantFrame(id, make([]MsgID, LobbyWantMax+1)),
	} {
		if _, err := decodeLobbyFrame(mustMarshal(t, f)); !errors.Is(err, ErrBadLobbyFrame) {
			t.Errorf("%s over its limit: %v, want ErrBadLobbyFrame", name, err)
		}
	}
	for name, f := range map[string]*pb.LobbyFrame{
		"have": haveFrame(id, make([]MsgID, LobbySyncIDs)),
		"want": wantFrame(id, make([]MsgID, LobbyWantMax)),
	} {
		b := mustMarshal(t, f)
		if _, err := decodeLobbyFrame(b); err != nil || len(b) > MaxLobbyFrameSize {
			t.Errorf("%s at its limit: %v, %d bytes", name, err, len(b))
		}
	}

	a := lobbyNet(t, []string{"a"}, nil, time.Minute)[0]
	lobby, err := a.lob.Create("flood", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	// A text to list: "have" lists text, not joins (lobby_store.go).
	if _, err := a.lob.Send(lobby.ID, "first"); err != nil {
		t.Fatal(err)
	}
	x := newReadingFriend(t, a)
	x.write(t, subscribeFrame([]LobbyID{lobby.ID}))
	listed := x.next(t, lobbyFrameHave).ids
	const asked = 200
	start := time.Now()
	var fs []*pb.LobbyFrame
	for range asked {
		fs = append(fs, wantFrame(lobby.ID, listed))
	}
	x.write(t, fs...)
	answered := 0
	deadline := time.After(3 * time.Second)
	for done := false; !done; {
		select {
		case f := <-x.frames:
			if f.typ == lobbyFrameSyncReply {
				answered++
			}
		case <-deadline:
			done = true
		}
	}
	bound := LobbyWantBurst + int(time.Since(start).Seconds()*LobbyWantRate) + 1
	if answered > bound || answered >= asked {
		t.Fatalf("%d of %d wants answered in %v, want at most %d", answered, asked, time.Since(start), bound)
	}
	t.Logf("%d of %d wants answered (bound %d)", answered, asked, bound)
}

// TestLobbySyncLargeBacklog: what a member missed may pass one answer's
// LobbyHistoryBytes (eight messages of 60 KiB); the answers say they
// left some out and the rest is asked for again, so all of it arrives,
// once each.
func TestLobbySyncLargeBacklog(t *testing.T) {
	nodes := lobbyNet(t, []string{"a", "b"}, [][2]int{{0, 1}}, time.Minute)
	a, b := nodes[0], nodes[1]
	lobby, err := a.lob.Create("backlog", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b hears of the lobby", func() bool { return announced(b, lobby.ID) })
	if _, err := b.lob.Join(lobby.ID, ""); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "a carries the lobby to b", func() bool { return a.lob.Subscribed(b.ID, lobby.ID) })
	b.stop()
	testkit.WaitFor(t, 10*time.Second, "a sees b gone", func() bool { return !slices.Contains(a.lob.Links(), b.ID) })
	var ids []MsgID
	big := strings.Repeat("x", 60<<10)
	for i := range 8 {
		m, err := a.lob.Send(lobby.ID, fmt.Sprint(i, big))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if 8*len(big) <= LobbyHistoryBytes {
		t.Fatal("the backlog fits in one answer: the test proves nothing")
	}
	b.start()
	lobbyConnect(t, b, a)
	testkit.WaitFor(t, 20*time.Second, "b holds the whole backlog", func() bool {
		return len(countIn(t, b, lobby.ID, ids)) == len(ids)
	})
	for id, n := range countIn(t, b, lobby.ID, ids) {
		if n != 1 {
			t.Fatalf("b holds %s %d times", id, n)
		}
	}
}

// TestLobbySyncHaveFlood: a friend that lists thousands of ids the node
// lacks gets at most LobbyWantPending of them remembered and one "want"
// per lobby at a time, however many it lists.
func TestLobbySyncHaveFlood(t *testing.T) {
	a := lobbyNet(t, []string{"a"}, nil, time.Minute)[0]
	lobby, err := a.lob.Create("flood", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	// A text to list: "have" lists text, not joins (lobby_store.go).
	if _, err := a.lob.Send(lobby.ID, "first"); err != nil {
		t.Fatal(err)
	}
	x := newReadingFriend(t, a)
	x.write(t, subscribeFrame([]LobbyID{lobby.ID}))
	x.next(t, lobbyFrameHave)
	const haves = 8
	for range haves {
		ids := make([]MsgID, LobbySyncIDs)
		for i := range ids {
			ids[i] = NewMsgID()
		}
		x.write(t, haveFrame(lobby.ID, ids))
	}
	pending := func() (queued, inflight int) {
		a.lob.mu.Lock()
		defer a.lob.mu.Unlock()
		l := a.lob.links[x.h.ID()]
		if l == nil {
			return 0, 0
		}
		for _, q := range l.wantQ {
			queued += len(q)
		}
		for _, r := range l.inflight {
			inflight += len(r.ids)
		}
		return queued, inflight
	}
	testkit.WaitFor(t, 10*time.Second, "the haves looked up", func() bool {
		q, f := pending()
		return q+f >= LobbyWantPending
	})
	time.Sleep(500 * time.Millisecond)
	if q, f := pending(); q+f != LobbyWantPending || f != LobbyWantMax {
		t.Fatalf("after %d haves of %d ids: %d queued, %d asked for; want %d in all, %d asked", haves, LobbySyncIDs, q, f, LobbyWantPending, LobbyWantMax)
	}
	wants := 0
	for done := false; !done; {
		select {
		case f := <-x.frames:
			if f.typ == lobbyFrameWant {
				wants++
			}
		case <-time.After(500 * time.Millisecond):
			done = true
		}
	}
	if wants != 1 {
		t.Fatalf("%d wants before any answer, want 1", wants)
	}
}
