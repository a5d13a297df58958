package node

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/chat"
	"kith/node/api"
	"kith/tunnels"
)

// mustFreePort returns a port free for TCP and UDP a moment ago.
func mustFreePort(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// chatHistory returns n's whole history with other, page by page.
func chatHistory(t *testing.T, n, other *Node) []chat.Message {
	t.Helper()
	var all []chat.Message
	for after := uint64(0); ; {
		ms, err := n.Chat().History(other.ID(), after, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			return all
		}
		all = append(all, ms...)
		after = ms[len(ms)-1].Seq
	}
}

// TestChatOfflineFriendThenSoak: a message to a friend whose daemon is
// down is delivered once after it starts; then 1,000 messages both ways
// with daemons restarted at random moments end with both histories
// holding every message exactly once, each author's in the order written.
func TestChatOfflineFriendThenSoak(t *testing.T) {
	// Like `kith up`, each node keeps its port across restarts: two
	// friends that both came back on new ports while apart would have no
	// address of each other left (and here no common friend to ask).
	homeA, homeB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ports := map[string]int{homeA: mustFreePort(t), homeB: mustFreePort(t)}
	start := func(home string) *Node {
		t.Helper()
		cfg := testConfig(home)
		p := ports[home]
		cfg.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p)}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	for _, h := range []string{homeA, homeB} {
		if _, err := Init(h, filepath.Base(h)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := start(homeA), start(homeB)
	befriend(t, a, b)
	waitFor(t, 20*time.Second, "friends online", func() bool { return isOnline(a, b) && isOnline(b, a) })

	b.Close()
	first, err := a.Chat().Send(b.ID(), "sent while you were away")
	if err != nil {
		t.Fatal(err)
	}
	if s := a.Chat().Summary(b.ID()); s.Pending != 1 {
		t.Fatalf("pending while the friend is down: %+v", s)
	}
	b = start(homeB)
	waitFor(t, 30*time.Second, "delivery after the friend started", func() bool {
		return a.Chat().Summary(b.ID()).Pending == 0
	})
	if got := chatHistory(t, b, a); len(got) != 1 || got[0].ID != first.ID || got[0].Text != first.Text {
		t.Fatalf("friend's history after it started: %+v", got)
	}

	const total = 1000
	rng := rand.New(rand.NewPCG(7, 11))
	homes := map[*Node]string{a: homeA, b: homeB}
	sent := map[string][]chat.MsgID{"a": {first.ID}, "b": nil}
	restarts := 0
	for i := range total {
		from, to, who := a, b, "a"
		if rng.IntN(2) == 1 {
			from, to, who = b, a, "b"
		}
		m, err := from.Chat().Send(to.ID(), fmt.Sprintf("soak %d from %s", i, who))
		if err != nil {
			t.Fatal(err)
		}
		sent[who] = append(sent[who], m.ID)
		if rng.IntN(50) == 0 {
			victim := []*Node{a, b}[rng.IntN(2)]
			home := homes[victim]
			victim.Close()
			restarted := start(home)
			homes[restarted] = home
			if victim == a {
				a = restarted
			} else {
				b = restarted
			}
			restarts++
		}
	}
	waitFor(t, 2*time.Minute, "both outboxes empty", func() bool {
		return a.Chat().Summary(b.ID()).Pending == 0 && b.Chat().Summary(a.ID()).Pending == 0
	})
	t.Logf("%d messages, %d daemon restarts", total+1, restarts)
	for _, side := range []struct {
		n, other *Node
		me, them string
	}{{a, b, "a", "b"}, {b, a, "b", "a"}} {
		hist := chatHistory(t, side.n, side.other)
		if len(hist) != total+1 {
			t.Fatalf("%s's history has %d messages, want %d", side.me, len(hist), total+1)
		}
		seen := map[chat.MsgID]bool{}
		by := map[string][]chat.MsgID{}
		for _, m := range hist {
			if seen[m.ID] {
				t.Fatalf("%s's history holds %s twice", side.me, m.ID)
			}
			seen[m.ID] = true
			author := side.them
			if m.Out {
				author = side.me
				if !m.Delivered {
					t.Fatalf("%s's message %s not marked delivered", side.me, m.ID)
				}
			}
			by[author] = append(by[author], m.ID)
		}
		for author, want := range sent {
			got := by[author]
			if len(got) != len(want) {
				t.Fatalf("%s's history: %d messages by %s, want %d", side.me, len(got), author, len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s's history: %s's message %d out of order", side.me, author, i)
				}
			}
		}
	}
}

// chatRelayTap records every byte a relay's router moved.
type chatRelayTap struct {
	mu  sync.Mutex
	all []byte
}

func (c *chatRelayTap) tap() *tunnels.Tap {
	rec := func(b []byte) {
		c.mu.Lock()
		c.all = append(c.all, b...)
		c.mu.Unlock()
	}
	return &tunnels.Tap{
		Control: func(_ peer.ID, _ bool, b []byte) { rec(b) },
		Data:    func(_ int, b []byte) { rec(b) },
	}
}

func (c *chatRelayTap) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.all)
}

// TestDistantChatThroughRelays: on a chain A-B-C-D-E, A writes to E's
// chat identity before E has started it: the messages wait, then arrive
// through a tunnel across B, C and D once they can; E answers. The relays
// forwarded the traffic but saw no text, no chat id and no nickname.
func TestDistantChatThroughRelays(t *testing.T) {
	taps := map[int]*chatRelayTap{1: {}, 2: {}, 3: {}}
	nodes := tunnelNet(t, []string{"a", "b", "c", "d", "e"}, chainEdges(5), func(i int, c *Config) {
		if tp := taps[i]; tp != nil {
			c.TunnelTap = tp.tap()
		}
	})
	a, e := nodes[0], nodes[4]
	alice, err := a.Chat().Identities().New("alice-the-sender")
	if err != nil {
		t.Fatal(err)
	}
	eveID, err := e.Chat().Identities().New("eve-the-receiver")
	if err != nil {
		t.Fatal(err)
	}
	eve := eveID.ID
	// E is down when A writes: the first attempts reach no one and the
	// message waits in the outbox.
	homeE := e.cfg.Home
	e.Close()
	if _, err := a.Chat().SendDistant("", eve, "secret-plaintext-one: meet at the old mill"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // at least one failed attempt
	if s, _ := a.Chat().DistantSummary("", eve); s.Pending != 1 {
		t.Fatalf("pending while the recipient is down: %+v", s)
	}
	cfg := testConfig(homeE)
	cfg.NoAPI = true
	cfg.TunnelRand = maxDepth{}
	e, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	d := nodes[3]
	waitFor(t, 20*time.Second, "router link d-e", func() bool {
		return slices.Contains(d.Router().Links(), e.ID()) && slices.Contains(e.Router().Links(), d.ID())
	})
	if _, err := a.Chat().SendDistant("alice-the-sender", eve, "secret-plaintext-two: bring the map"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "distant delivery", func() bool {
		s, _ := a.Chat().DistantSummary("", eve)
		return s.Pending == 0
	})
	got, err := e.Chat().DistantHistory("", alice.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Text != "secret-plaintext-one: meet at the old mill" || got[1].Text != "secret-plaintext-two: bring the map" || got[0].Out {
		t.Fatalf("recipient's history: %+v", got)
	}
	if _, err := e.Chat().SendDistant("", alice.ID, "secret-plaintext-three: agreed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the answer", func() bool {
		ms, _ := a.Chat().DistantHistory("", eve, 0, 0)
		return len(ms) == 3 && ms[2].Text == "secret-plaintext-three: agreed" && !ms[2].Out
	})
	for i, tp := range taps {
		seen := tp.bytes()
		if len(seen) < 1000 {
			t.Fatalf("relay %d moved only %d bytes: the test proves nothing", i, len(seen))
		}
		for _, secret := range [][]byte{
			[]byte("secret-plaintext"), []byte("alice-the-sender"), []byte("eve-the-receiver"),
			alice.ID[:], eve[:], []byte(alice.ID.String()), []byte(eve.String()),
		} {
			if bytes.Contains(seen, secret) {
				t.Fatalf("relay %d saw %q", i, secret)
			}
		}
	}
}

func chainEdges(n int) [][2]int {
	var e [][2]int
	for i := 0; i+1 < n; i++ {
		e = append(e, [2]int{i, i + 1})
	}
	return e
}

// TestChatSendRetrySameKey: a client that sends through the API and,
// having lost the answer, sends again with the same idempotency key gets
// the same message back; one message is stored at each end and the
// friend gets it once.
func TestChatSendRetrySameKey(t *testing.T) {
	a, homeA := testNode(t, "alice")
	b, _ := testNode(t, "bob")
	befriend(t, a, b)
	waitFor(t, 10*time.Second, "alice and bob online", func() bool { return isOnline(a, b) && isOnline(b, a) })
	c := api.NewClient(homeA)
	req := api.SendRequest{Text: "once, please", IdempotencyKey: api.NewIdempotencyKey()}
	first, err := c.ChatSendRequest(t.Context(), "bob", req)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := c.ChatSendRequest(t.Context(), "bob", req)
	if err != nil {
		t.Fatal(err)
	}
	if retry.ID != first.ID || retry.Seq != first.Seq {
		t.Fatalf("the retry made %+v, the first send %+v", retry, first)
	}
	waitFor(t, 10*time.Second, "delivery", func() bool { return a.Chat().Summary(b.ID()).Pending == 0 })
	if got := chatHistory(t, a, b); len(got) != 1 || !got[0].Delivered {
		t.Fatalf("alice stored %+v", got)
	}
	if got := chatHistory(t, b, a); len(got) != 1 || got[0].ID.String() != first.ID {
		t.Fatalf("bob stored %+v", got)
	}
	// Without a key, a second send is a second message.
	if _, err := c.ChatSend(t.Context(), "bob", "once, please"); err != nil {
		t.Fatal(err)
	}
	if got := chatHistory(t, a, b); len(got) != 2 {
		t.Fatalf("a send without a key was taken for a retry: %+v", got)
	}
	_, err = c.ChatSendRequest(t.Context(), "bob", api.SendRequest{Text: "other text", IdempotencyKey: req.IdempotencyKey})
	if !errors.Is(err, api.ErrIdempotencyKeyReused) {
		t.Fatalf("key reused for another text: %v", err)
	}
}
