package chat

import (
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"kith/internal/testkit"
)

// TestLobbyKeepAliveScales: the keep-alive interval follows the lobby's
// estimated size, not the capped participant list, so that a lobby's
// keep-alives take at most LobbyKeepAliveRate a second on each link up
// to MaxLobbySize members (10,000 included); small lobbies keep
// LobbyKeepAlive; and no size, however inflated, stretches the interval
// past LobbyKeepAliveMax.
func TestLobbyKeepAliveScales(t *testing.T) {
	s := &Lobbies{cfg: LobbyConfig{KeepAlive: LobbyKeepAlive}}
	for _, n := range []int{1, 10, 100, 240, 1000, 10000, MaxLobbySize, 10 * MaxLobbySize} {
		jl := &joinedLobby{parts: map[ChatID]Participant{}, size: lobbySize{v: float64(n - 1), at: time.Now()}}
		iv := s.keepAliveIntervalLocked(jl)
		if iv > LobbyKeepAliveMax {
			t.Fatalf("%d members: interval %v, over LobbyKeepAliveMax", n, iv)
		}
		if iv < LobbyKeepAlive {
			t.Fatalf("%d members: interval %v below LobbyKeepAlive", n, iv)
		}
		t.Logf("%6d members: keep-alive every %v", n, iv.Round(time.Second))
		if n > MaxLobbySize {
			continue
		}
		if perLink := float64(n) / iv.Seconds(); perLink > LobbyKeepAliveRate*1.001 {
			t.Fatalf("%d members: %.2f keep-alives/s on each link, above %d", n, perLink, LobbyKeepAliveRate)
		}
		if n <= 240 && iv != LobbyKeepAlive {
			t.Fatalf("%d members: interval %v, want %v", n, iv, LobbyKeepAlive)
		}
	}
}

// TestLobbySizeEstimate: members that say keep-alives at their own
// intervals (from LobbyKeepAlive to 40 minutes), at random phases, are
// counted within 10% by the keep-alives heard over three size windows,
// whatever mix of intervals they use.
func TestLobbySizeEstimate(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, tc := range []struct {
		n     int
		every []time.Duration
	}{
		{300, []time.Duration{LobbyKeepAlive}},
		{1000, []time.Duration{250 * time.Second}},
		{10000, []time.Duration{2500 * time.Second}},
		{10000, []time.Duration{LobbyKeepAlive, 2500 * time.Second, 40 * time.Minute}},
	} {
		type ev struct {
			at    time.Duration
			every time.Duration
		}
		span := 3 * LobbySizeWindow
		var evs []ev
		for i := range tc.n {
			every := tc.every[i%len(tc.every)]
			for at := time.Duration(rng.Int64N(int64(every))); at < span; at += every*3/4 + time.Duration(rng.Int64N(int64(every/2))) {
				evs = append(evs, ev{at, every})
			}
		}
		slices.SortFunc(evs, func(a, b ev) int { return int(a.at - b.at) })
		t0 := time.Now()
		// The estimate starts where friends' announcements put it.
		z := lobbySize{}
		z.seed(t0, tc.n)
		for _, e := range evs {
			z.add(t0.Add(e.at), keepAliveEvery(e.every, LobbyKeepAliveMax))
		}
		got := z.value(t0.Add(span))
		t.Logf("%5d members, intervals %v: estimated %.0f from %d keep-alives", tc.n, tc.every, got, len(evs))
		if math.Abs(got-float64(tc.n)) > 0.1*float64(tc.n) {
			t.Fatalf("%d members estimated at %.0f", tc.n, got)
		}
	}
}

// TestLobbyPresenceBudget performs a presence flood through a real relay:
// a friend of a (real hosts on 127.0.0.1) writes joins and keep-alives of
// 300 made-up members at the friend rate (20 a second), and a text every
// tenth frame. a relays presence to b within LobbyPresenceRate (a
// quarter of the friend rate) in every window of time, drops what its
// presence queue cannot hold, and still relays every text to b at once
// and once. Before the presence budget, a relayed all 300 at 20 a
// second.
func TestLobbyPresenceBudget(t *testing.T) {
	const puppets = 300
	nodes := lobbyNet(t, []string{"a", "b"}, [][2]int{{0, 1}}, time.Minute)
	a, b := nodes[0], nodes[1]
	id := createLobby(t, a, "den")
	joinAnnounced(t, b, id)
	testkit.WaitFor(t, 10*time.Second, "a has b subscribed", func() bool { return a.lob.Subscribed(b.h.ID(), id) })
	evil := newRawFriend(t, a)
	evil.fw.write(subscribeFrame([]LobbyID{id}))
	evil.fw.flush()
	testkit.WaitFor(t, 10*time.Second, "a has evil subscribed", func() bool { return a.lob.Subscribed(evil.h.ID(), id) })
	presence := map[MsgID]bool{}
	var texts []MsgID
	for i := range puppets {
		kind := LobbyKindKeepAlive
		if i%2 == 0 {
			kind = LobbyKindJoin
		}
		m := signed(testIdentity(t, fmt.Sprintf("puppet%d", i)), id, kind, time.Now(), "")
		presence[m.ID] = true
		evil.send(t, m)
		if i%10 == 9 {
			m := signed(testIdentity(t, fmt.Sprintf("talker%d", i)), id, LobbyKindText, time.Now(), "hello")
			texts = append(texts, m.ID)
			evil.send(t, m)
		}
		time.Sleep(time.Second / LobbyFriendRate)
	}
	// Whatever a's presence queue holds drains within its length.
	time.Sleep(time.Duration(LobbyPresenceQueue/LobbyPresenceRate*float64(time.Second)) + time.Second)
	in := b.relays.frames(a.h.ID(), false)
	var at []time.Time
	gotText := map[MsgID]int{}
	for _, f := range in {
		if presence[f.id] {
			at = append(at, f.at)
		}
		if f.kind == LobbyKindText {
			gotText[f.id]++
		}
	}
	// A token bucket lets through at most burst + rate x t in any t; the
	// frames are stamped as b reads them, so allow a little bunching.
	worst := 0.0
	for i := range at {
		for j := i; j < len(at); j++ {
			span := at[j].Sub(at[i]).Seconds()
			over := float64(j-i+1) - (LobbyPresenceBurst + LobbyPresenceRate*span)
			worst = max(worst, over)
		}
	}
	drops := a.lob.Stats().Dropped[DropPresenceRate]
	t.Logf("%d presence frames offered to a at %d/s: %d relayed to b over %v, %d dropped at a; worst window %.1f frames over the budget; %d of %d texts",
		puppets, LobbyFriendRate, len(at), at[len(at)-1].Sub(at[0]).Round(time.Millisecond), drops, worst, len(gotText), len(texts))
	if worst > 3 {
		t.Fatalf("a relayed presence to b at more than %v/s (burst %d): %.1f frames over in one window", LobbyPresenceRate, LobbyPresenceBurst, worst)
	}
	if drops == 0 || len(at) >= puppets {
		t.Fatalf("a relayed %d of %d presence frames and dropped %d: the queue should have overflowed", len(at), puppets, drops)
	}
	for _, m := range texts {
		if gotText[m] != 1 {
			t.Fatalf("text %s reached b %d times, want once", m, gotText[m])
		}
	}
}

// TestLobbyKeepAliveStretches: with the presence budget lowered to a
// tenth (as the simulator runs a large lobby), keep-alive intervals
// stretch tenfold, their longest included, so a lobby of 10,000 still
// keeps its keep-alives at LobbyKeepAliveRate/LobbyPresenceRate of the
// budget on every link instead of being held at LobbyKeepAliveMax; and a
// friend's stretched interval counts for what it says. At chat's own
// budget nothing changes.
func TestLobbyKeepAliveStretches(t *testing.T) {
	const n = 10000
	size := func() lobbySize { return lobbySize{v: n - 1, at: time.Now()} }
	own := &Lobbies{cfg: LobbyConfig{KeepAlive: LobbyKeepAlive, PresenceRate: LobbyPresenceRate}}
	slow := &Lobbies{cfg: LobbyConfig{KeepAlive: LobbyKeepAlive, PresenceRate: LobbyPresenceRate / 10}}
	if got := own.longestKeepAlive(); got != LobbyKeepAliveMax {
		t.Fatalf("longest keep-alive at chat's budget %v, want %v", got, LobbyKeepAliveMax)
	}
	if got := slow.longestKeepAlive(); got != 10*LobbyKeepAliveMax {
		t.Fatalf("longest keep-alive at a tenth of the budget %v, want %v", got, 10*LobbyKeepAliveMax)
	}
	for _, tc := range []struct {
		s      *Lobbies
		budget float64
	}{{own, LobbyPresenceRate}, {slow, LobbyPresenceRate / 10}} {
		jl := &joinedLobby{parts: map[ChatID]Participant{}, size: size()}
		iv := tc.s.keepAliveIntervalLocked(jl)
		share := float64(n) / iv.Seconds() / tc.budget
		t.Logf("budget %.2f/s: keep-alive every %v, %.2f of the budget on each link", tc.budget, iv.Round(time.Second), share)
		if want := float64(LobbyKeepAliveRate) / LobbyPresenceRate; math.Abs(share-want) > 0.01 {
			t.Fatalf("budget %v/s: keep-alives take %.3f of it on each link, want %.3f", tc.budget, share, want)
		}
	}
	// A friend at a tenth of the budget says 25,000 s; a node there
	// counts it whole, one at chat's budget at most its own hour.
	m := &LobbyMessage{Kind: LobbyKindKeepAlive, every: 25000 * time.Second}
	now := time.Now()
	var z, zc lobbySize
	z.heard(now, m, slow.longestKeepAlive())
	zc.heard(now, m, own.longestKeepAlive())
	if got, want := z.value(now), 25000/LobbySizeWindow.Seconds(); math.Abs(got-want) > 1e-9 {
		t.Fatalf("stretched node counts a 25,000 s keep-alive as %.3f, want %.3f", got, want)
	}
	if got, want := zc.value(now), LobbyKeepAliveMax.Seconds()/LobbySizeWindow.Seconds(); math.Abs(got-want) > 1e-9 {
		t.Fatalf("node at chat's budget counts a 25,000 s keep-alive as %.3f, want at most %.3f", got, want)
	}
}

// TestLobbyRestartKeepsSize: a member of a large lobby that joined
// lately takes the size a friend announces after it joined, stores it
// once it drifted from the stored one, and keeps it across a restart: started again with no friend online, it still
// spaces its keep-alives for that size instead of saying one a minute
// into a lobby of 5,000.
func TestLobbyRestartKeepsSize(t *testing.T) {
	const size = 5000
	nodes := lobbyNet(t, []string{"a", "b"}, [][2]int{{0, 1}}, time.Minute)
	a, b := nodes[0], nodes[1]
	id := createLobby(t, a, "crowd")
	joinAnnounced(t, b, id)
	// Another friend of b, in the lobby, knows it at 5,000.
	f := newRawFriend(t, b)
	if err := f.fw.write(announceFrame([]lobbyAnnounced{{ID: id, Name: "crowd", Participants: size}}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := f.fw.flush(); err != nil {
		t.Fatal(err)
	}
	wantIv := time.Duration(float64(size) / LobbyKeepAliveRate * float64(time.Second))
	near := func(got, want int) bool { return math.Abs(float64(got-want)) <= 0.01*float64(want) }
	testkit.WaitFor(t, 10*time.Second, "b takes the announced size", func() bool {
		info, err := b.lob.Lobby(id)
		return err == nil && near(info.Size, size)
	})
	// Drifted that far, the size is stored by the janitor already, so a
	// node killed rather than stopped keeps it too.
	b.lob.expire(time.Now())
	testkit.WaitFor(t, 10*time.Second, "b stores the size", func() bool {
		recs, err := b.lob.store.lobbies()
		return err == nil && near(recs[id].Size, size)
	})
	b.stop()
	a.stop() // no friend online when b starts again
	b.start()
	info, err := b.lob.Lobby(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the restart: size %d, keep-alive every %v", info.Size, info.KeepAlive)
	if !info.Joined || !near(info.Size, size) {
		t.Fatalf("restarted b: joined %v, size %d, want about %d", info.Joined, info.Size, size)
	}
	if info.KeepAlive < wantIv*99/100 {
		t.Fatalf("restarted b says a keep-alive every %v, want about %v", info.KeepAlive, wantIv)
	}
}
