package chat

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-varint"
	bolt "go.etcd.io/bbolt"

	"kith/chat/pb"
	"kith/internal/seen"
	"kith/internal/store"
	"kith/internal/testkit"
)

// relayLog records which message ids crossed which link in which
// direction, from LobbyConfig.OnRelay.
type relayLog struct {
	mu sync.Mutex
	n  map[string]map[MsgID]int // peer + "in"/"out"
	// at lists when each frame crossed, by the same key, in order.
	at map[string][]relayed
}

// relayed is one message frame that crossed a link.
type relayed struct {
	at   time.Time
	id   MsgID
	kind LobbyKind
}

func (r *relayLog) add(p peer.ID, out bool, id MsgID, kind LobbyKind) {
	k := string(p) + "in"
	if out {
		k = string(p) + "out"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n[k] == nil {
		r.n[k] = map[MsgID]int{}
	}
	r.n[k][id]++
	if r.at == nil {
		r.at = map[string][]relayed{}
	}
	r.at[k] = append(r.at[k], relayed{time.Now(), id, kind})
}

// frames returns the frames that crossed from or to p, oldest first.
func (r *relayLog) frames(p peer.ID, out bool) []relayed {
	k := string(p) + "in"
	if out {
		k = string(p) + "out"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.at[k])
}

// maxCrossings returns the most times one id crossed one link one way,
// and how many crossings there were.
func (r *relayLog) maxCrossings() (most, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ids := range r.n {
		for _, c := range ids {
			most = max(most, c)
			total += c
		}
	}
	return most, total
}

// lobbyNode is a host with a store, a chat identity and a lobby service
// that can be stopped and started again on the same key and store.
type lobbyNode struct {
	*testkit.Peer
	t         testing.TB
	nick      string
	h         host.Host
	dbPath    string
	db        *bolt.DB
	lob       *Lobbies
	events    *eventLog
	relays    *relayLog
	keepAlive time.Duration
	// clock, log and syncInterval go to LobbyConfig when set before start.
	clock        func() time.Time
	log          *slog.Logger
	syncInterval time.Duration
	verify       Verifier
}

func newLobbyNode(t testing.TB, nick string, keepAlive time.Duration) *lobbyNode {
	t.Helper()
	n := &lobbyNode{Peer: testkit.NewPeer(t), t: t, nick: nick, dbPath: filepath.Join(t.TempDir(), "kith.db"),
		events: &eventLog{}, relays: &relayLog{n: map[string]map[MsgID]int{}}, keepAlive: keepAlive}
	t.Cleanup(n.stop)
	return n
}

func (n *lobbyNode) start() {
	t := n.t
	t.Helper()
	h := n.Host(t)
	n.h = h
	var err error
	if n.db, err = store.Open(n.dbPath, store.Options{}); err != nil {
		t.Fatal(err)
	}
	ids, err := OpenIdentities(n.db)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids.List()) == 0 {
		if _, err := ids.New(n.nick); err != nil {
			t.Fatal(err)
		}
	}
	n.lob, err = NewLobbies(LobbyConfig{Host: h, DB: n.db, Friends: n.Friends, Identities: ids,
		Events: n.events.add, KeepAlive: n.keepAlive, LinkRetry: 100 * time.Millisecond,
		OnRelay: n.relays.add, Clock: n.clock, Log: n.log, SyncInterval: n.syncInterval, Verify: n.verify})
	if err != nil {
		t.Fatal(err)
	}
}

func (n *lobbyNode) stop() {
	if n.lob != nil {
		n.lob.Close()
		n.lob = nil
	}
	if n.h != nil {
		n.h.Close()
		n.h = nil
	}
	if n.db != nil {
		n.db.Close()
		n.db = nil
	}
}

func lobbyConnect(t testing.TB, a, b *lobbyNode) { testkit.Connect(t, a.h, b.h) }

func waitLobbyLink(t testing.TB, a, b *lobbyNode) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, "lobby link "+a.nick+"-"+b.nick, func() bool {
		return slices.Contains(a.lob.Links(), b.h.ID()) && slices.Contains(b.lob.Links(), a.h.ID())
	})
}

// lobbyNet starts len(nicks) nodes, friends along edges, connected, with
// every lobby link up.
func lobbyNet(t testing.TB, nicks []string, edges [][2]int, keepAlive time.Duration) []*lobbyNode {
	t.Helper()
	return lobbyNetWith(t, nicks, edges, keepAlive, nil)
}

// lobbyNetWith is lobbyNet with setup run on the nodes before they start.
func lobbyNetWith(t testing.TB, nicks []string, edges [][2]int, keepAlive time.Duration, setup func([]*lobbyNode)) []*lobbyNode {
	t.Helper()
	nodes := make([]*lobbyNode, len(nicks))
	for i, nick := range nicks {
		nodes[i] = newLobbyNode(t, nick, keepAlive)
	}
	if setup != nil {
		setup(nodes)
	}
	for _, e := range edges {
		testkit.Befriend(nodes[e[0]].Peer, nodes[e[1]].Peer)
	}
	for _, n := range nodes {
		n.start()
	}
	for _, e := range edges {
		lobbyConnect(t, nodes[e[0]], nodes[e[1]])
	}
	for _, e := range edges {
		waitLobbyLink(t, nodes[e[0]], nodes[e[1]])
	}
	return nodes
}

// lobbyEvents returns the ids of the "lobby.message" events of one lobby
// a node published, in order.
func lobbyEvents(n *lobbyNode, id LobbyID) []LobbyMessage {
	n.events.mu.Lock()
	defer n.events.mu.Unlock()
	var out []LobbyMessage
	for _, e := range n.events.evs {
		if ev, ok := e.data.(LobbyEvent); ok && e.typ == "lobby.message" && ev.Message.Lobby == id {
			out = append(out, ev.Message)
		}
	}
	return out
}

func announced(n *lobbyNode, id LobbyID) bool {
	for _, li := range n.lob.List() {
		if li.ID == id && len(li.Friends) > 0 {
			return true
		}
	}
	return false
}

// createLobby has n make a public lobby named name and returns its id.
func createLobby(t testing.TB, n *lobbyNode, name string) LobbyID {
	t.Helper()
	li, err := n.lob.Create(name, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	return li.ID
}

// joinAnnounced has n join lobby id once a friend announces it.
func joinAnnounced(t testing.TB, n *lobbyNode, id LobbyID) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, n.nick+" sees the lobby", func() bool { return announced(n, id) })
	if _, err := n.lob.Join(id, ""); err != nil {
		t.Fatal(err)
	}
}

func kindCount(ms []LobbyMessage, k LobbyKind) int {
	c := 0
	for _, m := range ms {
		if m.Kind == k {
			c++
		}
	}
	return c
}

func TestLobbyChainAndRing(t *testing.T) {
	nicks := []string{"n0", "n1", "n2", "n3", "n4", "n5"}
	chain := [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}}
	ring := append(slices.Clone(chain), [2]int{5, 0})
	for _, tc := range []struct {
		name  string
		edges [][2]int
	}{{"chain", chain}, {"ring", ring}} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := lobbyNet(t, nicks, tc.edges, time.Second)
			li, err := nodes[0].lob.Create("lounge", "all of us", false, "")
			if err != nil {
				t.Fatal(err)
			}
			id := li.ID
			// Said before anyone else joined: later joiners get these
			// through history only.
			var early []MsgID
			for i := range 3 {
				m, err := nodes[0].lob.Send(id, fmt.Sprintf("early %d", i))
				if err != nil {
					t.Fatal(err)
				}
				early = append(early, m.ID)
			}
			for _, n := range nodes[1:] {
				testkit.WaitFor(t, 10*time.Second, n.nick+" sees the lobby announced", func() bool { return announced(n, id) })
				if _, err := n.lob.Join(id, ""); err != nil {
					t.Fatalf("%s join: %v", n.nick, err)
				}
				// The joiner got the early messages from a friend's history.
				testkit.WaitFor(t, 10*time.Second, n.nick+" history", func() bool {
					ms, _ := n.lob.Log(id, 0, 0)
					got := 0
					for _, m := range ms {
						if slices.Contains(early, m.ID) {
							got++
						}
					}
					return got == len(early)
				})
			}
			for _, e := range tc.edges {
				a, b := nodes[e[0]], nodes[e[1]]
				testkit.WaitFor(t, 10*time.Second, "subscriptions", func() bool {
					return a.lob.Subscribed(b.h.ID(), id) && b.lob.Subscribed(a.h.ID(), id)
				})
			}
			// Authors at both ends and in the middle speak at once.
			authors := []int{0, 2, 3, 5}
			const per = 5
			var wg sync.WaitGroup
			for _, a := range authors {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						if _, err := nodes[a].lob.Send(id, fmt.Sprintf("from %s #%d", nicks[a], i)); err != nil {
							t.Errorf("%s send: %v", nicks[a], err)
						}
					}
				}()
			}
			wg.Wait()
			wantText := len(early) + per*len(authors)
			for k, n := range nodes {
				// The JOINs of those that joined after it, and its own: a
				// history reply carries text only.
				testkit.WaitFor(t, 15*time.Second, n.nick+" gets every message", func() bool {
					ms, _ := n.lob.Log(id, 0, 0)
					return kindCount(ms, LobbyKindText) == wantText && kindCount(ms, LobbyKindJoin) == len(nodes)-k
				})
			}
			time.Sleep(300 * time.Millisecond) // let any duplicate arrive
			for _, n := range nodes {
				ms, err := n.lob.Log(id, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[MsgID]bool{}
				for _, m := range ms {
					if seen[m.ID] {
						t.Fatalf("%s stored %s twice", n.nick, m.ID)
					}
					seen[m.ID] = true
					if !m.verify() {
						t.Fatalf("%s stored a message that does not verify", n.nick)
					}
				}
				if got := kindCount(ms, LobbyKindText); got != wantText {
					t.Fatalf("%s: %d text messages, want %d", n.nick, got, wantText)
				}
				evs := lobbyEvents(n, id)
				evSeen := map[MsgID]bool{}
				for _, m := range evs {
					if evSeen[m.ID] {
						t.Fatalf("%s: message %s published twice", n.nick, m.ID)
					}
					evSeen[m.ID] = true
				}
				if len(evs) != len(ms) {
					t.Fatalf("%s: %d events, %d stored", n.nick, len(evs), len(ms))
				}
				most, total := n.relays.maxCrossings()
				if most > 1 {
					t.Fatalf("%s: a message crossed one link one way %d times", n.nick, most)
				}
				t.Logf("%s: %d message crossings, drops %v", n.nick, total, n.lob.Stats().Dropped)
			}
			// Keep-alives make everyone a participant everywhere.
			for _, n := range nodes {
				testkit.WaitFor(t, 10*time.Second, n.nick+" participants", func() bool {
					ps, _ := n.lob.Participants(id)
					return len(ps) == len(nodes)
				})
			}
			// One leaves: the others see LEAVE, it is unsubscribed and forgets the lobby.
			if err := nodes[5].lob.Leave(id); err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes[:5] {
				testkit.WaitFor(t, 10*time.Second, n.nick+" sees the leave", func() bool {
					ms, _ := n.lob.Log(id, 0, 0)
					return kindCount(ms, LobbyKindLeave) == 1
				})
			}
			testkit.WaitFor(t, 10*time.Second, "unsubscribed", func() bool { return !nodes[4].lob.Subscribed(nodes[5].h.ID(), id) })
			if _, err := nodes[5].lob.Log(id, 0, 0); !errors.Is(err, ErrNotJoined) {
				t.Fatalf("log after leave: %v", err)
			}
		})
	}
}

// rawFriend is a bare libp2p host, a friend of a lobby node, that writes
// lobby frames of its own making on /kith/lobby/1.
type rawFriend struct {
	h    host.Host
	st   network.Stream
	fw   *lobbyFrameWriter
	sent int // messages written
}

// lobbyFrameWriter writes lobby frames as a raw friend does: encoded
// into a buffer that flush writes.
type lobbyFrameWriter struct {
	w   io.Writer
	buf []byte
}

func newLobbyFrameWriter(w io.Writer) *lobbyFrameWriter { return &lobbyFrameWriter{w: w} }

func (fw *lobbyFrameWriter) write(f *pb.LobbyFrame) (err error) {
	fw.buf, err = appendLobbyFrame(fw.buf, f)
	return err
}

func (fw *lobbyFrameWriter) flush() error {
	_, err := fw.w.Write(fw.buf)
	fw.buf = fw.buf[:0]
	return err
}

func newRawFriend(t *testing.T, of *lobbyNode) *rawFriend {
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
	go io.Copy(io.Discard, st) // what the node says to us
	return &rawFriend{h: h, st: st, fw: newLobbyFrameWriter(st)}
}

func (r *rawFriend) send(t *testing.T, ms ...*LobbyMessage) {
	t.Helper()
	for _, m := range ms {
		if err := r.fw.write(msgFrame(m)); err != nil {
			t.Fatal(err)
		}
		r.sent++
	}
	if err := r.fw.flush(); err != nil {
		t.Fatal(err)
	}
}

// testIdentity is a chat identity that lives only in the test.
func testIdentity(t testing.TB, nick string) Identity {
	pub, key, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{ID: ChatID(pub), Nick: nick, key: key}
}

func signed(as Identity, lobby LobbyID, kind LobbyKind, at time.Time, text string) *LobbyMessage {
	m := &LobbyMessage{Lobby: lobby, ID: NewMsgID(), Kind: kind, Time: at, Text: text}
	signLobbyMessage(as, m)
	return m
}

func TestLobbyDropsBadMessages(t *testing.T) {
	// a - b - c in the lobby; evil is a friend of b only and writes frames
	// of its own making.
	nodes := lobbyNet(t, []string{"a", "b", "c"}, [][2]int{{0, 1}, {1, 2}}, time.Minute)
	a, b, c := nodes[0], nodes[1], nodes[2]
	id := createLobby(t, a, "den")
	joinAnnounced(t, b, id)
	joinAnnounced(t, c, id)
	testkit.WaitFor(t, 10*time.Second, "b subscribed to c", func() bool { return b.lob.Subscribed(c.h.ID(), id) })

	evil := newRawFriend(t, b)
	mallory, trudy := testIdentity(t, "mallory"), testIdentity(t, "trudy")
	now := time.Now()
	got := func(m *LobbyMessage) bool {
		for _, e := range lobbyEvents(c, id) {
			if e.ID == m.ID {
				return true
			}
		}
		return false
	}
	dropped := func(reason string) uint64 { return b.lob.Stats().Dropped[reason] }
	waitDrops := func(reason string, n uint64) {
		t.Helper()
		testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("%d %s drops", n, reason), func() bool { return dropped(reason) >= n })
	}

	// A good message from a friend's raw host is relayed: the control.
	good := signed(mallory, id, LobbyKindText, now, "hello from the raw host")
	evil.send(t, good)
	testkit.WaitFor(t, 10*time.Second, "good message at c", func() bool { return got(good) })

	// Forged: text changed after signing; author key swapped.
	tampered := signed(mallory, id, LobbyKindText, now, "pay alice")
	tampered.Text = "pay mallory"
	swapped := signed(mallory, id, LobbyKindText, now, "i am trudy")
	swapped.Author, swapped.Nick = trudy.ID, trudy.Nick
	evil.send(t, tampered, swapped)
	waitDrops(DropBadSignature, 2)

	// Replayed at once: a duplicate.
	evil.send(t, good)
	waitDrops(DropDuplicate, 1)

	// Stale and future.
	evil.send(t, signed(mallory, id, LobbyKindText, now.Add(-LobbyMaxAge-LobbyMaxSkew-time.Minute), "old news"),
		signed(mallory, id, LobbyKindText, now.Add(LobbyMaxSkew+time.Minute), "from tomorrow"))
	waitDrops(DropStale, 1)
	waitDrops(DropFuture, 1)

	// Replayed after the seen cache forgot it: a keep-alive (never stored)
	// accepted just inside the age window is refused by the age check.
	almostOld := signed(trudy, id, LobbyKindKeepAlive, time.Now().Add(-LobbyMaxAge-LobbyMaxSkew+1500*time.Millisecond), "")
	evil.send(t, almostOld)
	testkit.WaitFor(t, 10*time.Second, "keep-alive relayed to c", func() bool {
		c.relays.mu.Lock()
		defer c.relays.mu.Unlock()
		return c.relays.n[string(b.h.ID())+"in"][almostOld.ID] == 1
	})
	time.Sleep(2 * time.Second)
	b.lob.expire(time.Now().Add(LobbySeenTTL + time.Second)) // the cache window passes
	stale := dropped(DropStale)
	evil.send(t, almostOld)
	waitDrops(DropStale, stale+1)

	// Bad text, oversize, not joined, unknown kind.
	badUTF8 := signed(mallory, id, LobbyKindText, now, "x\xff\xfe")
	empty := signed(mallory, id, LobbyKindText, now, " ")
	big := signed(mallory, id, LobbyKindText, now, strings.Repeat("a", MaxTextSize+1))
	other := signed(mallory, NewLobbyID(), LobbyKindText, now, "elsewhere")
	odd := signed(mallory, id, LobbyKind(99), now, "")
	evil.send(t, badUTF8, empty, big, other, odd)
	waitDrops(DropBadText, 2)
	waitDrops(DropOversize, 1)
	waitDrops(DropNotJoined, 1)
	waitDrops(DropBadKind, 1)
	for _, m := range []*LobbyMessage{tampered, swapped, badUTF8, empty, big, other, odd} {
		if got(m) {
			t.Fatalf("c got a message b should have dropped: %q", m.Text)
		}
	}

	// Flood: 1,000 well-signed messages from 100 authors as fast as the
	// stream takes them; the friend's rate lets through a burst and then
	// LobbyFriendRate a second.
	time.Sleep(LobbyFriendBurst * time.Second / LobbyFriendRate) // a full bucket
	before := len(lobbyEvents(c, id))
	flooders := make([]Identity, 100)
	for i := range flooders {
		flooders[i] = testIdentity(t, fmt.Sprintf("bot%d", i))
	}
	var flood []*LobbyMessage
	for i := range 1000 {
		flood = append(flood, signed(flooders[i%len(flooders)], id, LobbyKindText, time.Now(), fmt.Sprintf("spam %d", i)))
	}
	start := time.Now()
	evil.send(t, flood...)
	testkit.WaitFor(t, 20*time.Second, "flood read", func() bool {
		st := b.lob.Stats()
		return st.Links[evil.h.ID()].In >= uint64(evil.sent)
	})
	elapsed := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	passed := len(lobbyEvents(c, id)) - before
	allowed := LobbyFriendBurst + int(elapsed.Seconds()*LobbyFriendRate) + 2
	t.Logf("flood: 1000 sent in %v, %d reached c (allowed %d), friend_rate drops %d", elapsed, passed, allowed, dropped(DropFriendRate))
	if passed > allowed {
		t.Fatalf("%d flood messages reached c, more than the %d the friend rate allows", passed, allowed)
	}
	if dropped(DropFriendRate) < uint64(1000-allowed) {
		t.Fatalf("friend_rate drops %d", dropped(DropFriendRate))
	}

	// One author flooding: its rate applies whatever the friend's.
	time.Sleep(LobbyFriendBurst * time.Second / LobbyFriendRate)
	bot := testIdentity(t, "bot")
	var burst []*LobbyMessage
	for i := range 40 {
		burst = append(burst, signed(bot, id, LobbyKindText, time.Now(), fmt.Sprintf("me again %d", i)))
	}
	start = time.Now()
	evil.send(t, burst...)
	waitDrops(DropAuthorRate, 20)
	time.Sleep(300 * time.Millisecond)
	fromBot := 0
	for _, e := range lobbyEvents(c, id) {
		if e.Author == bot.ID {
			fromBot++
		}
	}
	if limit := LobbyAuthorBurst + int(time.Since(start).Seconds()*LobbyAuthorRate) + 1; fromBot > limit {
		t.Fatalf("%d messages of one author reached c, want at most %d", fromBot, limit)
	}

	// Garbage: the stream is reset, the friend's link is gone, and the
	// lobby goes on between a, b and c.
	garbage := append(varint.ToUvarint(6), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	evil.st.Write(garbage)
	testkit.WaitFor(t, 10*time.Second, "evil cut off", func() bool {
		return b.lob.Stats().Disconnected == 1 && !slices.Contains(b.lob.Links(), evil.h.ID())
	})
	testkit.WaitFor(t, 10*time.Second, "evil's stream reset", func() bool {
		_, err := evil.st.Write([]byte{1, 2, 3})
		return err != nil
	})
	// A new stream from it is refused for a while.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := evil.h.NewStream(ctx, b.h.ID(), protocol.ID(LobbyProtocolID)); err == nil {
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := st.Read(make([]byte, 1)); err == nil {
			t.Fatal("paused friend got a working lobby stream")
		}
	}
	after, err := a.lob.Send(id, "still here?")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "a's message at c after the reset", func() bool { return got(&after) })
	t.Logf("b's drops: %v", b.lob.Stats().Dropped)
}

func TestLobbyRestartAndInvite(t *testing.T) {
	nodes := lobbyNet(t, []string{"a", "b"}, [][2]int{{0, 1}}, time.Minute)
	a, b := nodes[0], nodes[1]
	pub, err := a.lob.Create("pub", "open to all", false, "")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := a.lob.Create("priv", "invite only", true, "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b sees pub", func() bool { return announced(b, pub.ID) })
	if announced(b, priv.ID) {
		t.Fatal("a private lobby was announced")
	}
	if _, err := b.lob.Join(priv.ID, ""); !errors.Is(err, ErrUnknownLobby) {
		t.Fatalf("join private without invite: %v", err)
	}
	if _, err := b.lob.Join(pub.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.lob.Join(pub.ID, ""); !errors.Is(err, ErrAlreadyJoined) {
		t.Fatalf("second join: %v", err)
	}
	m1, err := a.lob.Send(pub.ID, "before restart")
	if err != nil {
		t.Fatal(err)
	}
	// b learns the private lobby's id somehow and subscribes: a sends it
	// nothing, as b is not a member.
	b.lob.mu.Lock()
	b.lob.links[a.ID].send(subscribeFrame([]LobbyID{priv.ID}))
	b.lob.mu.Unlock()
	testkit.WaitFor(t, 10*time.Second, "b's subscription at a", func() bool { return a.lob.Subscribed(b.ID, priv.ID) })
	secret, err := a.lob.Send(priv.ID, "secret before the invite")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b has m1", func() bool {
		ms, _ := b.lob.Log(pub.ID, 0, 0)
		return slices.ContainsFunc(ms, func(m LobbyMessage) bool { return m.ID == m1.ID })
	})
	b.relays.mu.Lock()
	leaked := b.relays.n[string(a.ID)+"in"][secret.ID]
	b.relays.mu.Unlock()
	if leaked != 0 {
		t.Fatal("a private lobby's message went to a friend that only subscribed")
	}
	if err := a.lob.Invite(priv.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "invite stored", func() bool {
		invs, _ := b.lob.Invites()
		return len(invs) == 1 && invs[0].Lobby == priv.ID && invs[0].Private && invs[0].Nick == "a"
	})

	// b restarts: its lobby, history and invite are still there, and its
	// link subscribes again.
	b.stop()
	testkit.WaitFor(t, 10*time.Second, "a sees b gone", func() bool { return !slices.Contains(a.lob.Links(), b.ID) })
	b.start()
	lobbyConnect(t, b, a)
	waitLobbyLink(t, a, b)
	ls := b.lob.List()
	if len(ls) < 1 || ls[0].ID != pub.ID || !ls[0].Joined {
		t.Fatalf("after restart b lists %+v", ls)
	}
	ms, err := b.lob.Log(pub.ID, 0, 0)
	if err != nil || !slices.ContainsFunc(ms, func(m LobbyMessage) bool { return m.ID == m1.ID && m.Text == "before restart" }) {
		t.Fatalf("history after restart: %v %+v", err, ms)
	}
	testkit.WaitFor(t, 10*time.Second, "b subscribed again", func() bool { return a.lob.Subscribed(b.ID, pub.ID) })
	m2, err := a.lob.Send(pub.ID, "after restart")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "b gets m2", func() bool {
		ms, _ := b.lob.Log(pub.ID, 0, 0)
		return slices.ContainsFunc(ms, func(m LobbyMessage) bool { return m.ID == m2.ID })
	})
	// A resent old message is a duplicate of the stored history even
	// though the seen cache started empty.
	dupBefore := b.lob.Stats().Dropped[DropDuplicate]
	b.lob.mu.Lock()
	b.lob.seen = seen.New[MsgID](LobbySeenMax, LobbySeenTTL)
	b.lob.mu.Unlock()
	a.lob.mu.Lock()
	a.lob.links[b.ID].sendMsg(msgFrame(&m1), m1.ID, m1.Kind)
	a.lob.mu.Unlock()
	testkit.WaitFor(t, 10*time.Second, "stored duplicate dropped", func() bool { return b.lob.Stats().Dropped[DropDuplicate] > dupBefore })

	// The invite survived: b joins the private lobby and gets its history.
	invs, _ := b.lob.Invites()
	if len(invs) != 1 {
		t.Fatalf("invites after restart: %+v", invs)
	}
	testkit.WaitFor(t, 10*time.Second, "a subscribed to priv", func() bool { return b.lob.Subscribed(a.ID, priv.ID) })
	if _, err := b.lob.Join(priv.ID, ""); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "private history", func() bool {
		ms, _ := b.lob.Log(priv.ID, 0, 0)
		return slices.ContainsFunc(ms, func(m LobbyMessage) bool { return m.Text == "secret before the invite" })
	})
	if invs, _ := b.lob.Invites(); len(invs) != 0 {
		t.Fatalf("invite left after joining: %+v", invs)
	}
	testkit.WaitFor(t, 10*time.Second, "b's join at a", func() bool {
		ms, _ := a.lob.Log(priv.ID, 0, 0)
		return kindCount(ms, LobbyKindJoin) == 2
	})
}

func TestLobbyUserErrors(t *testing.T) {
	n := newLobbyNode(t, "solo", time.Minute)
	n.start()
	for _, tc := range []struct {
		name, lobby, topic string
		want               error
	}{
		{"empty", "", "", ErrBadLobbyName},
		{"long name", strings.Repeat("n", MaxLobbyName+1), "", ErrBadLobbyName},
		{"control", "a\nb", "", ErrBadLobbyName},
		{"long topic", "ok", strings.Repeat("t", MaxLobbyTopic+1), ErrBadLobbyTopic},
	} {
		if _, err := n.lob.Create(tc.lobby, tc.topic, false, ""); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := n.lob.Create("x", "", false, "nobody"); !errors.Is(err, ErrUnknownIdentity) {
		t.Errorf("unknown identity: %v", err)
	}
	li, err := n.lob.Create("mine", "", false, "solo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.lob.Send(li.ID, ""); !errors.Is(err, ErrEmptyText) {
		t.Errorf("empty text: %v", err)
	}
	if _, err := n.lob.Send(NewLobbyID(), "hi"); !errors.Is(err, ErrNotJoined) {
		t.Errorf("send to unknown lobby: %v", err)
	}
	if _, err := n.lob.Join(NewLobbyID(), ""); !errors.Is(err, ErrUnknownLobby) {
		t.Errorf("join unknown lobby: %v", err)
	}
	if err := n.lob.Invite(li.ID, n.ID); !errors.Is(err, ErrNotFriend) {
		t.Errorf("invite a non-friend: %v", err)
	}
	sent := 0
	for range 2 * LobbyAuthorBurst {
		if _, err := n.lob.Send(li.ID, "quick"); errors.Is(err, ErrLobbyTooFast) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if sent >= 2*LobbyAuthorBurst {
		t.Error("sending faster than the author rate was not refused")
	}
	for _, s := range []string{"", "abc", strings.Repeat("z", 32), strings.Repeat("0", 31)} {
		if _, err := ParseLobbyID(s); !errors.Is(err, ErrBadLobbyID) {
			t.Errorf("ParseLobbyID(%q): %v", s, err)
		}
	}
	if got, err := ParseLobbyID(li.ID.String()); err != nil || got != li.ID {
		t.Errorf("round trip: %v", err)
	}
}

func TestLobbySignatureCoversEveryField(t *testing.T) {
	as := testIdentity(t, "sig")
	other := testIdentity(t, "other")
	base := signed(as, NewLobbyID(), LobbyKindText, time.Now(), "hello")
	if !base.verify() {
		t.Fatal("a fresh signature does not verify")
	}
	for name, change := range map[string]func(m *LobbyMessage){
		"lobby":  func(m *LobbyMessage) { m.Lobby[0] ^= 1 },
		"id":     func(m *LobbyMessage) { m.ID[0] ^= 1 },
		"kind":   func(m *LobbyMessage) { m.Kind = LobbyKindJoin },
		"author": func(m *LobbyMessage) { m.Author = other.ID },
		"nick":   func(m *LobbyMessage) { m.Nick = "sig2" },
		"time":   func(m *LobbyMessage) { m.Time = m.Time.Add(time.Millisecond) },
		"text":   func(m *LobbyMessage) { m.Text = "hellO" },
		// Moving bytes between nick and text must not keep the signature.
		"boundary": func(m *LobbyMessage) { m.Nick, m.Text = "si", "g"+m.Text },
	} {
		m := *base
		m.Sig = slices.Clone(base.Sig)
		change(&m)
		if m.verify() {
			t.Errorf("changing %s kept the signature valid", name)
		}
	}
}

// lobbySeedFrames are valid frames of every type, encoded.
func lobbySeedFrames(t testing.TB) [][]byte {
	as := testIdentity(t, "seed")
	id := NewLobbyID()
	m := signed(as, id, LobbyKindText, time.Now(), "seed text")
	ann := lobbyAnnounced{ID: id, Name: "seed", Topic: "topic", Participants: 3}
	// A keep-alive that says its interval, and one that says more than
	// LobbyKeepAliveWireMax; an announcement of a lobby larger than the list.
	ka := signed(as, id, LobbyKindKeepAlive, time.Now(), "")
	ka.every = 2500 * time.Second
	kaLong := &pb.LobbyFrame{Body: &pb.LobbyFrame_Message{Message: lobbyMessageToWire(ka)}}
	kaLong.GetMessage().KeepaliveS = 1 << 31
	big := lobbyAnnounced{ID: NewLobbyID(), Name: "big", Participants: 10000}
	var out [][]byte
	for _, f := range []*pb.LobbyFrame{
		msgFrame(ka), kaLong, announceFrame([]lobbyAnnounced{big}, time.Now()),
		msgFrame(m), subscribeFrame([]LobbyID{id}), unsubscribeFrame([]LobbyID{id}), announceFrame([]lobbyAnnounced{ann}, time.Now()),
		inviteFrame(ann, true, "seed"), historyRequestFrame(id, 10), historyReplyFrame(id, []LobbyMessage{*m}),
		haveFrame(id, []MsgID{m.ID, NewMsgID()}), wantFrame(id, []MsgID{m.ID}), syncReplyFrame(id, []LobbyMessage{*m}, true),
	} {
		var buf bytes.Buffer
		fw := newLobbyFrameWriter(&buf)
		if err := fw.write(f); err != nil {
			t.Fatal(err)
		}
		fw.flush()
		out = append(out, buf.Bytes())
	}
	return out
}

func TestLobbyFrameRoundTrip(t *testing.T) {
	for _, b := range lobbySeedFrames(t) {
		f, err := newLobbyFrameReader(bytes.NewReader(b), nil).read()
		if err != nil || f.typ == 0 {
			t.Fatalf("seed frame: %v %+v", err, f)
		}
		if f.msg != nil && !f.msg.verify() {
			t.Fatal("seed message does not verify after decoding")
		}
		if (f.typ == lobbyFrameHistoryReply || f.typ == lobbyFrameSyncReply) && (len(f.history) != 1 || !f.history[0].verify()) {
			t.Fatal("history or sync reply lost its message")
		}
		if f.typ == lobbyFrameSyncReply && !f.truncated {
			t.Fatal("sync reply lost its truncated flag")
		}
		if (f.typ == lobbyFrameHave || f.typ == lobbyFrameWant) && len(f.ids) == 0 {
			t.Fatal("have or want lost its ids")
		}
		if f.typ == lobbyFrameAnnounce && f.clock.IsZero() {
			t.Fatal("announcement lost its clock")
		}
		if f.msg != nil && f.msg.Kind == LobbyKindKeepAlive && f.msg.every != 2500*time.Second && f.msg.every != LobbyKeepAliveWireMax {
			t.Fatalf("keep-alive interval decoded as %v", f.msg.every)
		}
		if f.typ == lobbyFrameAnnounce && f.announce[0].Name == "big" && f.announce[0].Participants != 10000 {
			t.Fatalf("announced size decoded as %d", f.announce[0].Participants)
		}
	}
	// Too large, a bad length, a truncated frame and a clean end.
	for name, tc := range map[string]struct {
		b   []byte
		bad bool
	}{
		"oversize":  {varint.ToUvarint(MaxLobbyFrameSize + 1), true},
		"overflow":  {bytes.Repeat([]byte{0xff}, 11), true},
		"garbage":   {append(varint.ToUvarint(3), 0xff, 0xff, 0xff), true},
		"truncated": {append(varint.ToUvarint(10), 1, 2), false},
		"empty":     {nil, false},
	} {
		_, err := newLobbyFrameReader(bytes.NewReader(tc.b), nil).read()
		if err == nil || errors.Is(err, ErrBadLobbyFrame) != tc.bad {
			t.Errorf("%s: %v", name, err)
		}
	}
}
