package chat

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kith/internal/testkit"
)

// skewedClock is a wall clock off by a settable offset.
type skewedClock struct{ off atomic.Int64 }

func (c *skewedClock) now() time.Time        { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *skewedClock) set(off time.Duration) { c.off.Store(int64(off)) }

// syncBuf is a log sink safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLobbyClockSkew is issue 13 point 3: in a chain a-b-c, a member
// whose clock is 5 minutes ahead (c) is heard by everyone, and a relay
// 15 minutes behind (b) carries everything; b is told that its clock is
// wrong, at Warn, once (before c's estimate, that its clock or a's is
// wrong, once too), and a and c see b's offset.
func TestLobbyClockSkew(t *testing.T) {
	var bClock, cClock skewedClock
	bClock.set(-15 * time.Minute)
	cClock.set(5 * time.Minute)
	bLog := &syncBuf{}
	a, b, c, lobby := lobbyChainWith(t, func(ns []*lobbyNode) {
		ns[1].clock, ns[2].clock = bClock.now, cClock.now
		ns[1].log = slog.New(slog.NewTextHandler(bLog, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	fromC, err := c.lob.Send(lobby, "from a clock 5 minutes ahead")
	if err != nil {
		t.Fatal(err)
	}
	fromA, err := a.lob.Send(lobby, "through a relay 15 minutes behind")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*lobbyNode{a, b, c} {
		testkit.WaitFor(t, 10*time.Second, n.nick+" holds both messages", func() bool {
			return len(countIn(t, n, lobby, []MsgID{fromA.ID, fromC.ID})) == 2
		})
	}
	if st := b.lob.Stats(); st.Dropped[DropFuture]+st.Dropped[DropStale] != 0 {
		t.Fatalf("b dropped messages for their time: %v", st.Dropped)
	}

	testkit.WaitFor(t, 10*time.Second, "b's clock told", func() bool {
		skewed, behind := b.lob.ClockSkewed()
		return skewed && behind > 14*time.Minute && behind < 21*time.Minute // a +15m, c +20m
	})
	if off, ok := a.lob.Clocks()[b.ID]; !ok || off.Offset > -14*time.Minute || off.Offset < -16*time.Minute {
		t.Fatalf("a's estimate of b's clock: %+v (%v), want about -15m", off, ok)
	}
	if skewed, _ := a.lob.ClockSkewed(); skewed {
		t.Fatal("a, whose clock agrees with most friends', was told its clock is wrong")
	}
	b.lob.announceAll() // more estimates: still one warning
	time.Sleep(500 * time.Millisecond)
	logged := bLog.String()
	if n := strings.Count(logged, "clock seems wrong"); n != 1 || strings.Count(logged, "level=WARN") > 2 {
		t.Fatalf("b's log says %d times that its clock is wrong, want once:\n%s", n, logged)
	}
}

// TestLobbyClockHealsAfterFix: a relay whose clock is far off (two
// hours behind, past LobbyMaxSkew) drops what it relays, counted and
// logged at Info; once its clock is right again, the next sync brings
// the members on both sides what they missed, so the lobby is whole
// again.
func TestLobbyClockHealsAfterFix(t *testing.T) {
	var bClock skewedClock
	bClock.set(-2 * time.Hour)
	bLog := &syncBuf{}
	a, b, c, lobby := lobbyChainWith(t, func(ns []*lobbyNode) {
		ns[1].clock = bClock.now
		ns[1].log = slog.New(slog.NewTextHandler(bLog, &slog.HandlerOptions{Level: slog.LevelInfo}))
		for _, n := range ns {
			n.syncInterval = time.Second
		}
	})
	before := b.lob.Stats().Dropped[DropFuture]
	fromA, err := a.lob.Send(lobby, "while b's clock is two hours behind")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b drops it for its time", func() bool {
		return b.lob.Stats().Dropped[DropFuture] > before
	})
	time.Sleep(2 * time.Second) // syncs while the clock is wrong bring nothing
	if n := countIn(t, b, lobby, []MsgID{fromA.ID})[fromA.ID]; n != 0 {
		t.Fatal("b took a message two hours ahead of its clock")
	}
	if !strings.Contains(bLog.String(), "dropped for its time") {
		t.Fatalf("b's log does not say why it drops:\n%s", bLog)
	}
	bClock.set(0)
	for _, n := range []*lobbyNode{b, c} {
		testkit.WaitFor(t, 20*time.Second, n.nick+" gets a's message once b's clock is right", func() bool {
			return countIn(t, n, lobby, []MsgID{fromA.ID})[fromA.ID] == 1
		})
	}
	if st := b.lob.Stats(); st.Synced == 0 {
		t.Fatalf("b's stats do not count what sync brought: %+v", st)
	}
}
