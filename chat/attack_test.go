package chat

// Attacks of the adversarial review (issue 10) on the chat package, each
// run against real hosts and a real bbolt store.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	bolt "go.etcd.io/bbolt"

	"kith/internal/testkit"
	"kith/tunnels"
)

// goroutinesIn counts the goroutines whose stack has fn in it.
func goroutinesIn(fn string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// rawChatStream opens a /kith/chat/1 stream from a to b and returns a
// frame writer on it; nothing is read from it.
func rawChatStream(t *testing.T, from, to *testPeer) (network.Stream, *frameWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := from.h.NewStream(ctx, to.ID, protocol.ID(ProtocolID))
	if err != nil {
		t.Fatal(err)
	}
	return st, newFrameWriter(st)
}

// TestPrivateResetStopsWork: a friend that used up its rate opens many
// chat streams, writes a window of messages on each and resets them all.
// The work for those streams stops at once: no handler is left waiting
// on the friend's rate or on a channel for a stream that is gone.
func TestPrivateResetStopsWork(t *testing.T) {
	const streams, perStream = 32, SendWindow
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	connect(t, a, b)
	// The friend's rate is spent for the next half minute.
	lim := a.svc.limiter(b.ID)
	for range 30 * MessagesPerSecond / MessageBurst {
		lim.ReserveN(time.Now(), MessageBurst)
	}
	var sts []network.Stream
	for range streams {
		st, fw := rawChatStream(t, b, a)
		for range perStream {
			if err := fw.message(Message{ID: NewMsgID(), Time: time.Now(), Text: "x"}); err != nil {
				break // the handler may reset a stream that breaks the protocol
			}
		}
		fw.flush()
		sts = append(sts, st)
	}
	// Let the handlers read what was sent and start waiting.
	testkit.WaitFor(t, 10*time.Second, "handlers waiting on the friend's rate", func() bool {
		return goroutinesIn("(*engine).serveFrames") > 0 && goroutinesIn("rate.(*Limiter).wait") > 0
	})
	// The cap held while the streams were open. (A stream the resource
	// manager refused, or one that ended early, under load, is not in
	// StreamsRefused: the cap is checked as what is served, not as a count
	// of refusals.)
	if st := a.svc.Stats(); st.Streams > ChatStreamsPerFriend || st.StreamsRefused == 0 {
		t.Fatalf("with %d streams open: %+v; want at most %d served and the rest refused", streams, st, ChatStreamsPerFriend)
	}
	for _, st := range sts {
		st.Reset()
	}
	testkit.WaitFor(t, 5*time.Second, "every handler of the reset streams gone", func() bool {
		return goroutinesIn("(*engine).serveFrames") == 0 && goroutinesIn("(*Service).handle") == 0
	})
	if st := a.svc.Stats(); st.Streams != 0 {
		t.Fatalf("after the resets: %+v; want no stream served", st)
	}
}

// TestPrivateTypingFlood: a friend pumps typing notices; they become
// events at most at the typing rate.
func TestPrivateTypingFlood(t *testing.T) {
	const notices = 20000
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	connect(t, a, b)
	st, fw := rawChatStream(t, b, a)
	start := time.Now()
	for range notices {
		if err := fw.typing(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.flush(); err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	// The handler has read everything once the stream ends from its side.
	testkit.WaitFor(t, 20*time.Second, "the flood read", func() bool { return goroutinesIn("(*Service).handle") == 0 })
	elapsed := time.Since(start)
	got := a.events.count("chat.typing")
	bound := 2 + int(elapsed.Seconds()*1)
	t.Logf("%d typing notices in %v became %d events", notices, elapsed.Round(time.Millisecond), got)
	if got > bound {
		t.Fatalf("%d typing events from %d notices in %v, want at most %d", got, notices, elapsed, bound)
	}
	st.Reset()
}

// historyBytes sums the stored records of tp's conversation with friend
// other, and counts them.
func historyBytes(t *testing.T, tp *testPeer, other *testPeer) (bytes, n int) {
	t.Helper()
	tp.db.View(func(tx *bolt.Tx) error {
		h := tx.Bucket(bucketHistory).Bucket([]byte(friendConv(other.ID)))
		if h == nil {
			return nil
		}
		return h.ForEach(func(k, v []byte) error {
			bytes += len(k) + len(v)
			n++
			return nil
		})
	})
	return bytes, n
}

// TestPrivateHistoryBudget: a friend writes, within the chat rate, more
// than a conversation's history budget in text that JSON would blow up
// sixfold ('<' is \u003c). The receiver stores it compactly, keeps the
// conversation within its budget (the oldest messages go), and says so;
// a page of the history is bounded in bytes.
func TestPrivateHistoryBudget(t *testing.T) {
	const budget = HistoryBudget
	const textSize = 8 << 10
	total := int(budget/MessageCost(strings.Repeat("x", textSize))) + 300 // past the budget
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	connect(t, a, b)
	text := strings.Repeat("<", textSize)
	sent := 0
	for i := range total {
		if _, err := b.svc.Send(a.ID, fmt.Sprintf("%d%s", i, text[:textSize-8])); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent++
		if i%100 == 99 { // keep the sender's outbox within its cap
			testkit.WaitFor(t, 60*time.Second, "delivery", func() bool { return b.svc.Summary(a.ID).Pending < 200 })
		}
	}
	testkit.WaitFor(t, 2*time.Minute, "all delivered", func() bool { return b.svc.Summary(a.ID).Pending == 0 })
	stored, n := historyBytes(t, a, b)
	t.Logf("%d messages of %d B sent; receiver keeps %d messages in %d B", sent, textSize, n, stored)
	if stored > budget+budget/8 {
		t.Fatalf("receiver stores %d B of one friend's history, over the budget of %d B", stored, budget)
	}
	if perMsg := stored / max(n, 1); perMsg > textSize+64 {
		t.Fatalf("a message of %d B of text takes %d B of store", textSize, perMsg)
	}
	sum := a.svc.Summary(b.ID)
	if sum.Trimmed == 0 || sum.Stored > budget || sum.Messages != n {
		t.Fatalf("summary %+v: want messages trimmed, at most %d B and %d messages", sum, budget, n)
	}
	ms, err := a.svc.History(b.ID, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	pageBytes := 0
	for _, m := range ms {
		pageBytes += len(m.Text)
	}
	if pageBytes > MaxLogPageBytes || len(ms) == 0 {
		t.Fatalf("one page of history is %d messages, %d B of text", len(ms), pageBytes)
	}
	// Paging through it all, forwards and backwards, gives every message once.
	var fwd, back []uint64
	for after := uint64(0); ; {
		page, err := a.svc.History(b.ID, after, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			fwd = append(fwd, m.Seq)
		}
		after = page[len(page)-1].Seq
	}
	for before := uint64(0); ; {
		page, err := a.svc.HistoryBefore(b.ID, before, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for i := len(page) - 1; i >= 0; i-- {
			back = append(back, page[i].Seq)
		}
		before = page[0].Seq
	}
	if len(fwd) != n || len(back) != n || fwd[0] != back[n-1] || fwd[n-1] != back[0] {
		t.Fatalf("paging: %d forwards, %d backwards, want %d", len(fwd), len(back), n)
	}
}

// TestChatCloseWaitsForHandlers: Close does not return while a chat
// stream handler still writes to the store.
func TestChatCloseWaitsForHandlers(t *testing.T) {
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	connect(t, a, b)
	// Hold the store's write lock, so that a's handler blocks storing.
	release, holding := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- a.db.Update(func(*bolt.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before the cleanups, which close the store
	if _, err := b.svc.Send(a.ID, "arrives while the store is busy"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "a's handler storing", func() bool { return goroutinesIn("(*history).appendIncoming") > 0 })
	closed := make(chan struct{})
	go func() {
		a.svc.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a stream handler was writing to the store")
	case <-time.After(300 * time.Millisecond):
	}
	unblock()
	<-closed
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	a.svc = nil
}

// TestLobbySockPuppets: a friend speaks in a lobby under a new identity
// per message, each keep-alive claiming the longest interval. The
// puppets do not fill the participant list beyond what one friend link
// may bring, do not stretch the keep-alive interval past
// LobbyKeepAliveMax, and a relays them on within its presence budget.
func TestLobbySockPuppets(t *testing.T) {
	const puppets = 200
	nodes := lobbyNet(t, []string{"a", "b"}, [][2]int{{0, 1}}, time.Minute)
	a, b := nodes[0], nodes[1]
	id := createLobby(t, a, "den")
	joinAnnounced(t, b, id)
	evil := newRawFriend(t, a)
	evil.fw.write(subscribeFrame([]LobbyID{id}))
	evil.fw.flush()
	start := time.Now()
	for i := range puppets {
		// Paced at the friend rate, so that every puppet gets in.
		m := signed(testIdentity(t, fmt.Sprintf("puppet%d", i)), id, LobbyKindKeepAlive, time.Now(), "")
		m.every = LobbyKeepAliveMax
		evil.send(t, m)
		time.Sleep(time.Second / LobbyFriendRate)
	}
	testkit.WaitFor(t, 10*time.Second, "a took the puppets", func() bool {
		return a.lob.Stats().Links[evil.h.ID()].In >= puppets
	})
	elapsed := time.Since(start)
	ps, err := a.lob.Participants(id)
	if err != nil {
		t.Fatal(err)
	}
	a.lob.mu.Lock()
	iv := a.lob.keepAliveIntervalLocked(a.lob.joined[id])
	a.lob.mu.Unlock()
	out := a.lob.Stats().Links[b.h.ID()].Out
	t.Logf("%d puppets in %v: %d participants, keep-alive every %v, %d relayed to b", puppets, elapsed.Round(time.Millisecond), len(ps), iv, out)
	if bound := 2 + 50 + int(elapsed.Seconds()); len(ps) > bound {
		t.Fatalf("%d participants after %d puppets of one friend in %v, want at most %d", len(ps), puppets, elapsed, bound)
	}
	if iv > LobbyKeepAliveMax {
		t.Fatalf("keep-alive every %v, over LobbyKeepAliveMax", iv)
	}
	if most := uint64(LobbyPresenceBurst + LobbyPresenceRate*elapsed.Seconds() + 2); out > most {
		t.Fatalf("a relayed %d frames to b in %v, over its presence budget (%d)", out, elapsed, most)
	}
}

// pipeTunnels makes "tunnels" of net.Pipe whose far end runs the
// responder's handshake as identity as and then hangs up.
type pipeTunnels struct {
	as     Identity
	closed chan struct{} // closed once the near end was closed or reset
}

type pipeEnd struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (p *pipeEnd) Close() error {
	p.once.Do(func() { close(p.closed) })
	return p.Conn.Close()
}

func (pt *pipeTunnels) RequestTunnels(ctx context.Context, target [32]byte, n int) ([]io.ReadWriteCloser, error) {
	near, far := net.Pipe()
	go func() {
		tunnels.AcceptChatSession(context.Background(), far, pt.as.DHKey())
		far.Close() // before the caller's Hello
	}()
	return []io.ReadWriteCloser{&pipeEnd{Conn: near, closed: pt.closed}}, nil
}

// TestDistantDialFailedHello: when the Hello after a distant handshake
// cannot be written, dialling fails and the session is closed, instead
// of a session that is not reset being handed to the courier.
func TestDistantDialFailedHello(t *testing.T) {
	a := newTestPeer(t)
	a.start()
	me, err := a.svc.Identities().New("me")
	if err != nil {
		t.Fatal(err)
	}
	eve := testIdentity(t, "eve")
	pt := &pipeTunnels{as: eve, closed: make(chan struct{})}
	a.svc.cfg.Tunnels = pt
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rw, err := a.svc.distantRoute(me, eve.ID).dial(ctx)
	if err == nil {
		rw.Close()
		t.Fatal("dial succeeded though the Hello could not be written")
	}
	select {
	case <-pt.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the session of a failed Hello was left open")
	}
}

// TestLobbyQueueBoundedInBytes: a friend that reads nothing of its lobby
// link while large frames are relayed to it costs at most
// LobbyLinkQueueBytes of queued frames; the rest are dropped and counted.
func TestLobbyQueueBoundedInBytes(t *testing.T) {
	nodes := lobbyNet(t, []string{"a"}, nil, time.Minute)
	a := nodes[0]
	li, err := a.lob.Create("den", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	slow := newRawFriend(t, a) // newRawFriend drains the stream: take it over
	slow.st.SetReadDeadline(time.Now().Add(-time.Second))
	slow.fw.write(subscribeFrame([]LobbyID{li.ID}))
	slow.fw.flush()
	testkit.WaitFor(t, 10*time.Second, "the slow friend subscribed", func() bool { return a.lob.Subscribed(slow.h.ID(), li.ID) })
	a.lob.mu.Lock()
	l := a.lob.links[slow.h.ID()]
	a.lob.mu.Unlock()
	author := testIdentity(t, "loud")
	text := strings.Repeat("x", MaxTextSize)
	var most int64
	for range 2 * LobbyLinkQueue {
		m := signed(author, li.ID, LobbyKindText, time.Now(), text)
		l.sendMsg(msgFrame(m), m.ID, m.Kind)
		most = max(most, l.QueuedBytes())
	}
	drops := a.lob.Stats().Links[slow.h.ID()].QueueDrops
	t.Logf("%d frames of %d KiB queued to a friend that reads nothing: at most %d KiB waited, %d dropped",
		2*LobbyLinkQueue, MaxTextSize>>10, most>>10, drops)
	if most > LobbyLinkQueueBytes || drops == 0 {
		t.Fatalf("queued up to %d B (bound %d), %d drops", most, LobbyLinkQueueBytes, drops)
	}
}

// TestChatStorageFull: once all conversations hold ChatStorageBudget, the
// user's Send fails with an error that says what to do, and a friend's
// messages are refused without being acked: they stay in its outbox,
// counted, and come in once there is room.
func TestChatStorageFull(t *testing.T) {
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	// A small budget for the test: 40 messages of 1 KiB.
	text := strings.Repeat("y", 1<<10)
	a.svc.e.hist.total = 40 * MessageCost(text)
	connect(t, a, b)
	for i := range 60 {
		if _, err := b.svc.Send(a.ID, fmt.Sprintf("%02d %s", i, text[3:])); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, "a refusing", func() bool { return a.svc.Stats().RefusedStorage > 0 })
	// A message stored whose acknowledgement is still on its way counts
	// on both sides for a moment: wait for the two to add up.
	var got, pending int
	settled := testkit.Eventually(20*time.Second, func() bool {
		got, pending = len(a.history(b)), b.svc.Summary(a.ID).Pending
		return got+pending == 60
	})
	t.Logf("60 sent: %d stored, %d wait in the sender's outbox", got, pending)
	if !settled || got > 40 {
		t.Fatalf("%d stored and %d waiting of 60: want at most 40 stored and none lost", got, pending)
	}
	if _, err := a.svc.Send(b.ID, "my own"); !errors.Is(err, ErrChatStorageFull) || !strings.Contains(err.Error(), "kith chat clear") {
		t.Fatalf("Send with the store full: %v", err)
	}
	// Room again: what waited comes in, in order.
	if err := a.svc.ClearHistory(b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Send(a.ID, "wake up"); err != nil { // wakes the courier from its backoff
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the rest delivered", func() bool { return b.svc.Summary(a.ID).Pending == 0 })
	hist := a.history(b)
	if len(hist) != 60-got+1 || hist[len(hist)-1].Text != "wake up" {
		t.Fatalf("after clearing: %d messages, want %d", len(hist), 60-got+1)
	}
}

// TestLobbyHistoryBudget: a friend that fills a lobby with the largest
// messages, within the rates, churns within MaxLobbyHistoryBytes of the
// lobby's history; a page of the lobby's log is bounded in bytes.
func TestLobbyHistoryBudget(t *testing.T) {
	nodes := lobbyNet(t, []string{"a"}, nil, time.Minute)
	a := nodes[0]
	li, err := a.lob.Create("den", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	evil := newRawFriend(t, a)
	text := strings.Repeat("z", MaxTextSize)
	total := int(MaxLobbyHistoryBytes/(MaxTextSize+MessageOverhead)) + 40
	var authors []Identity
	for i := range total/LobbyAuthorBurst + 1 {
		authors = append(authors, testIdentity(t, fmt.Sprintf("loud%d", i)))
	}
	for i := range total {
		evil.send(t, signed(authors[i/LobbyAuthorBurst], li.ID, LobbyKindText, time.Now(), text))
		if i >= LobbyFriendBurst {
			time.Sleep(time.Second / LobbyFriendRate)
		}
	}
	testkit.WaitFor(t, 20*time.Second, "the flood stored", func() bool {
		return a.lob.Stats().Links[evil.h.ID()].In >= uint64(total)
	})
	var stored int64
	var msgs int
	for after := uint64(0); ; {
		page, err := a.lob.Log(li.ID, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		bytes := 0
		for _, m := range page {
			bytes += len(m.Text)
			stored += int64(len(m.Text)) + MessageOverhead
		}
		if bytes > MaxLogPageBytes {
			t.Fatalf("a page of the lobby log holds %d B of text", bytes)
		}
		msgs += len(page)
		after = page[len(page)-1].Seq
	}
	t.Logf("%d messages of %d KiB sent; the lobby keeps %d (%d KiB)", total, MaxTextSize>>10, msgs, stored>>10)
	if stored > MaxLobbyHistoryBytes || msgs >= total {
		t.Fatalf("the lobby keeps %d messages, %d B: over its budget of %d B", msgs, stored, MaxLobbyHistoryBytes)
	}
}
