package friendlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/goleak"

	"kith/internal/frame"
	"kith/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testProto  = protocol.ID("/kith/test-link/1")
	otherProto = protocol.ID("/kith/test-other/1")
	maxFrame   = 64 << 10
	// waitLimit bounds the waits of a failing test.
	waitLimit = 15 * time.Second
)

// errBad is the test owner's own protocol error: a frame that says "bad".
var errBad = errors.New("bad test frame")

// encode is the test protocol's framing: a uvarint length, then the text.
func encode(dst []byte, s string) ([]byte, error) {
	if len(s) > maxFrame {
		return dst, fmt.Errorf("%w: %d bytes", frame.ErrTooLarge, len(s))
	}
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...), nil
}

func size(s string) int { return len(s) + binary.MaxVarintLen64 }

// side is the owner's Handler of one link in these tests.
type side struct {
	n     *node
	l     *Link[string]
	got   chan string
	wrote atomic.Int64
	down  chan struct{}
}

func (s *side) Serve(r *frame.Reader) error {
	for {
		b, err := r.Next()
		if err != nil {
			return err
		}
		if string(b) == "bad" {
			return errBad
		}
		select {
		case s.got <- string(b):
		default: // the test reads only what it needs
		}
	}
}

func (s *side) Written(string) { s.wrote.Add(1) }

func (s *side) Down() {
	s.n.mu.Lock()
	if s.n.links[s.l.Peer()] == s {
		delete(s.n.links, s.l.Peer())
	}
	s.n.mu.Unlock()
	close(s.down)
}

// node is a host with a friend list and a Manager of the test protocol.
type node struct {
	h       host.Host
	friends *testkit.Friends
	m       *Manager[string]
	writes  atomic.Int64 // writes to links, seen by the tap
	up      func(l *Link[string])

	mu    sync.Mutex
	links map[peer.ID]*side
}

// testLog logs to stderr at Debug when LINKLOG is set.
func testLog() *slog.Logger {
	if os.Getenv("LINKLOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// twoHosts returns two hosts, the one with the lower peer ID first.
func twoHosts(t testing.TB) (lo, hi host.Host) {
	a, b := testkit.PlainHost(t), testkit.PlainHost(t)
	if Opener(a.ID(), b.ID()) {
		return a, b
	}
	return b, a
}

// startNode runs a Manager of testProto on h; adjust may change its
// Config and set the node's up hook before it starts.
func startNode(t testing.TB, h host.Host, adjust func(n *node, c *Config[string])) *node {
	t.Helper()
	n := &node{h: h, friends: &testkit.Friends{}, links: map[peer.ID]*side{}}
	cfg := Config[string]{
		Host: h, Friends: n.friends, Protocol: testProto,
		Encode: encode, Size: size,
		PeerFault:  func(err error) bool { return errors.Is(err, errBad) },
		MaxFrame:   maxFrame,
		Queue:      1000,
		QueueBytes: 256 << 10,
		Retry:      100 * time.Millisecond,
		Log:        testLog(),
		Tap: func(_ peer.ID, in bool, _ []byte) {
			if !in {
				n.writes.Add(1)
			}
		},
		Up: func(l *Link[string]) Handler[string] {
			s := &side{n: n, l: l, got: make(chan string, 1024), down: make(chan struct{})}
			n.mu.Lock()
			n.links[l.Peer()] = s
			n.mu.Unlock()
			if n.up != nil {
				n.up(l)
			}
			return s
		},
	}
	if adjust != nil {
		adjust(n, &cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
	t.Cleanup(func() { m.Close() })
	return n
}

func (n *node) link(p peer.ID) *side {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[p]
}

func recv(t testing.TB, s *side, want string) {
	t.Helper()
	select {
	case got := <-s.got:
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%q did not arrive", want)
	}
}

// friends makes two nodes friends, connects them and waits for the link
// on both sides.
func friends(t testing.TB, a, b *node) {
	t.Helper()
	a.friends.Add(b.h.ID())
	b.friends.Add(a.h.ID())
	testkit.Connect(t, a.h, b.h)
	testkit.WaitFor(t, waitLimit, "the link on both sides", func() bool { return a.link(b.h.ID()) != nil && b.link(a.h.ID()) != nil })
}

// rawFriend is a friend's host that runs no Manager: the test drives its
// streams. It keeps the streams opened to it in held.
type rawFriend struct {
	h    host.Host
	held chan network.Stream
}

func newRawFriend(t testing.TB, h host.Host, of *node) *rawFriend {
	t.Helper()
	r := &rawFriend{h: h, held: make(chan network.Stream, 16)}
	h.SetStreamHandler(testProto, func(s network.Stream) { r.held <- s })
	t.Cleanup(func() {
		for len(r.held) > 0 {
			(<-r.held).Reset()
		}
	})
	of.friends.Add(h.ID())
	testkit.Connect(t, h, of.h)
	return r
}

// open opens a stream of the test protocol to n and writes first, which
// makes the protocol negotiation happen.
func (r *rawFriend) open(t testing.TB, n *node, first string) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.h.NewStream(ctx, n.h.ID(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	b, _ := encode(nil, first)
	if _, err := s.Write(b); err != nil {
		t.Fatal(err)
	}
	return s
}

// isReset reports whether reading s fails at once (within a second)
// rather than waiting for data.
func isReset(s network.Stream) bool {
	s.SetReadDeadline(time.Now().Add(time.Second))
	_, err := s.Read(make([]byte, 1))
	var te interface{ Timeout() bool }
	return err != nil && !(errors.As(err, &te) && te.Timeout())
}

// TestLinkOpenedByLowerID: two friends get one link, opened by the lower
// peer ID without a dial, and messages go both ways in order, messages
// and pre-encoded bytes alike.
func TestLinkOpenedByLowerID(t *testing.T) {
	lo, hi := twoHosts(t)
	a, b := startNode(t, lo, nil), startNode(t, hi, nil)
	friends(t, a, b)
	la, lb := a.link(hi.ID()), b.link(lo.ID())
	if d := la.l.s.Stat().Direction; d != network.DirOutbound {
		t.Fatalf("the lower peer ID's link is %v, want outbound", d)
	}
	if d := lb.l.s.Stat().Direction; d != network.DirInbound {
		t.Fatalf("the higher peer ID's link is %v, want inbound", d)
	}
	pre, _ := encode(nil, "pre-encoded")
	for i := range 100 {
		la.l.Send(fmt.Sprint("a", i))
		if i == 50 {
			la.l.SendEncoded(pre)
		}
		lb.l.Send(fmt.Sprint("b", i))
	}
	for i := range 100 {
		recv(t, lb, fmt.Sprint("a", i))
		if i == 50 {
			recv(t, lb, "pre-encoded")
		}
		recv(t, la, fmt.Sprint("b", i))
	}
	testkit.WaitFor(t, waitLimit, "Written for every message", func() bool { return la.wrote.Load() == 100 && lb.wrote.Load() == 100 })
	if conns := len(lo.Network().ConnsToPeer(hi.ID())); conns != 1 {
		t.Fatalf("%d connections between the friends, want 1", conns)
	}
	var streams int
	for _, c := range lo.Network().ConnsToPeer(hi.ID()) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == testProto {
				streams++
			}
		}
	}
	if streams != 1 {
		t.Fatalf("%d streams of the protocol, want 1", streams)
	}
}

// TestLinkNoDial: a link is never the reason for a dial: a friend that is
// not connected gets none, even when the Manager knows its address.
func TestLinkNoDial(t *testing.T) {
	lo, hi := twoHosts(t)
	a, b := startNode(t, lo, nil), startNode(t, hi, nil)
	a.friends.Add(hi.ID())
	b.friends.Add(lo.ID())
	lo.Peerstore().AddAddrs(hi.ID(), hi.Addrs(), time.Hour)
	a.m.maybeOpen(hi.ID()) // what the retry would do, were hi connected
	time.Sleep(500 * time.Millisecond)
	if lo.Network().Connectedness(hi.ID()) == network.Connected || a.link(hi.ID()) != nil {
		t.Fatal("the Manager dialed a friend that was not connected")
	}
}

// TestLinkOnlyFriends: a stranger's stream is reset, and a Manager opens
// no link to a connected stranger.
func TestLinkOnlyFriends(t *testing.T) {
	lo, hi := twoHosts(t)
	a := startNode(t, lo, nil)
	x := &rawFriend{h: hi, held: make(chan network.Stream, 4)}
	hi.SetStreamHandler(testProto, func(s network.Stream) { x.held <- s })
	testkit.Connect(t, hi, lo)
	s := x.open(t, a, "hello")
	if !isReset(s) {
		t.Fatal("a stranger's stream was not reset")
	}
	time.Sleep(300 * time.Millisecond) // several retries
	if len(x.held) != 0 || a.link(hi.ID()) != nil {
		t.Fatal("the Manager linked to a stranger")
	}
	if st := a.m.Stats(); st.Refused != 1 {
		t.Fatalf("refused %d streams, want 1", st.Refused)
	}
}

// TestLinkBothOpen: when the higher peer ID opens a stream while the
// lower one's link is up, the lower one's stays; when the lower peer ID
// opens a new one (it reconnected, say), the new one replaces the old.
func TestLinkBothOpen(t *testing.T) {
	lo, hi := twoHosts(t)

	// The Manager is the lower ID: it opens, the raw friend's own stream
	// loses.
	a := startNode(t, lo, nil)
	x := newRawFriend(t, hi, a)
	var mine network.Stream
	select {
	case mine = <-x.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the lower peer ID opened no link")
	}
	theirs := x.open(t, a, "from the higher ID")
	if !isReset(theirs) {
		t.Fatal("the higher peer ID's stream was kept beside the lower one's")
	}
	b, _ := encode(nil, "still up")
	if _, err := mine.Write(b); err != nil {
		t.Fatal(err)
	}
	recv(t, a.link(hi.ID()), "still up")

	// The Manager is the higher ID: the raw friend's new stream replaces
	// its old one.
	lo2, hi2 := twoHosts(t)
	c := startNode(t, hi2, nil)
	y := newRawFriend(t, lo2, c)
	first := y.open(t, c, "first")
	testkit.WaitFor(t, waitLimit, "the first link", func() bool { return c.link(lo2.ID()) != nil })
	old := c.link(lo2.ID())
	recv(t, old, "first")
	y.open(t, c, "second")
	testkit.WaitFor(t, waitLimit, "the old link down", func() bool {
		select {
		case <-old.down:
			return true
		default:
			return false
		}
	})
	if !isReset(first) {
		t.Fatal("the replaced stream was not reset")
	}
	testkit.WaitFor(t, waitLimit, "the new link", func() bool { return c.link(lo2.ID()) != nil })
	recv(t, c.link(lo2.ID()), "second")
}

// TestLinkRetry: a friend that does not speak the protocol yet has no
// link; once it does, the link comes up within a few retries, on the
// same connection.
func TestLinkRetry(t *testing.T) {
	lo, hi := twoHosts(t)
	a := startNode(t, lo, nil)
	a.friends.Add(hi.ID())
	testkit.Connect(t, lo, hi)
	time.Sleep(300 * time.Millisecond) // opens fail: no handler
	if a.link(hi.ID()) != nil {
		t.Fatal("a link to a friend without the protocol")
	}
	b := startNode(t, hi, nil)
	b.friends.Add(lo.ID())
	testkit.WaitFor(t, waitLimit, "the link after the friend's start", func() bool { return a.link(hi.ID()) != nil && b.link(lo.ID()) != nil })
}

// TestLinkDisconnect: a friend that disconnects has its link stopped,
// and gets a new one when it connects again.
func TestLinkDisconnect(t *testing.T) {
	lo, hi := twoHosts(t)
	a, b := startNode(t, lo, nil), startNode(t, hi, nil)
	friends(t, a, b)
	old := a.link(hi.ID())
	lo.Network().ClosePeer(hi.ID())
	select {
	case <-old.down:
	case <-time.After(10 * time.Second):
		t.Fatal("the link outlived the connection")
	}
	testkit.WaitFor(t, waitLimit, "both sides disconnected", func() bool {
		return lo.Network().Connectedness(hi.ID()) != network.Connected && hi.Network().Connectedness(lo.ID()) != network.Connected
	})
	testkit.Connect(t, hi, lo)
	testkit.WaitFor(t, waitLimit, "a new link", func() bool { l := a.link(hi.ID()); return l != nil && l != old })
}

// TestLinkBatchesWrites: what is queued at once goes out in few writes,
// writeBatch bytes each at most, and a message queued alone goes out
// without waiting for more.
func TestLinkBatchesWrites(t *testing.T) {
	lo, hi := twoHosts(t)
	const n, msgSize = 500, 100
	msg := strings.Repeat("m", msgSize-2)
	// The lower ID queues n messages before its writer starts.
	a := startNode(t, lo, func(n0 *node, c *Config[string]) {
		n0.up = func(l *Link[string]) {
			for range n {
				l.Send(msg)
			}
		}
	})
	b := startNode(t, hi, nil)
	friends(t, a, b)
	lb := b.link(lo.ID())
	for range n {
		recv(t, lb, msg)
	}
	writes := a.writes.Load()
	total := n * (msgSize - 1) // a one-byte prefix each
	t.Logf("%d messages of %d bytes in %d writes", n, msgSize-1, writes)
	if want := int64(total/writeBatch + 1); writes > want {
		t.Fatalf("%d messages queued at once took %d writes, want at most %d", n, writes, want)
	}
	a.link(hi.ID()).l.Send("alone")
	recv(t, lb, "alone")
}

// TestLinkQueueBounded: a friend that never reads costs at most the
// queue's bound in messages and bytes, charged to the resource manager;
// the rest is dropped and counted; once a write has waited WriteTimeout
// the link goes, its memory is given back, and the friend is not paused
// (a slow friend is no fault).
func TestLinkQueueBounded(t *testing.T) {
	lo, hi := twoHosts(t)
	const queueBytes = 256 << 10
	a := startNode(t, lo, func(_ *node, c *Config[string]) {
		c.WriteTimeout = 2 * time.Second
		c.QueueBytes = queueBytes
		c.Queue = 100
	})
	x := newRawFriend(t, hi, a) // never reads what it is sent
	testkit.WaitFor(t, waitLimit, "the link", func() bool { return a.link(hi.ID()) != nil })
	l := a.link(hi.ID()).l
	base := testkit.PeerMemory(lo, hi.ID())
	big := strings.Repeat("x", 16<<10)
	var peakQueue, peakMem int64
	for range 400 {
		l.Send(big)
		peakQueue = max(peakQueue, l.QueuedBytes())
		peakMem = max(peakMem, testkit.PeerMemory(lo, hi.ID())-base)
		time.Sleep(time.Millisecond)
	}
	small := 0
	for range 200 {
		if l.Send("s") {
			small++
		}
	}
	t.Logf("peak queue %d bytes, peak memory charged %d, %d dropped, %d small ones fit", peakQueue, peakMem, l.QueueDrops(), small)
	if peakQueue > queueBytes || peakQueue < queueBytes/2 {
		t.Fatalf("queued up to %d bytes, bound %d", peakQueue, queueBytes)
	}
	if l.QueueDrops() == 0 || a.m.Stats().QueueDrops != l.QueueDrops() {
		t.Fatalf("drops: link %d, manager %d", l.QueueDrops(), a.m.Stats().QueueDrops)
	}
	if peakMem < peakQueue/2 || peakMem > queueBytes+64<<10 {
		t.Fatalf("peak memory charged for the friend %d, want the queue (%d) charged and no more than its bound", peakMem, peakQueue)
	}
	l.mu.Lock()
	count := l.count
	l.mu.Unlock()
	if count > 100 {
		t.Fatalf("%d messages queued, bound 100", count)
	}
	select {
	case <-l.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the link to a friend that never reads was kept")
	}
	testkit.WaitFor(t, waitLimit, "the link's memory given back", func() bool { return testkit.PeerMemory(lo, hi.ID()) <= base })
	if a.m.Stats().Faults != 0 || a.m.Paused(hi.ID()) {
		t.Fatal("a friend that reads slowly was taken for a faulty one")
	}
	_ = x
}

// TestLinkInboundCap: streams of one friend that wait to become its link
// hold its MaxInbound slots; more are reset at once.
func TestLinkInboundCap(t *testing.T) {
	lo, hi := twoHosts(t)
	release := make(chan struct{})
	var once sync.Once
	c := startNode(t, hi, func(n0 *node, cfg *Config[string]) {
		cfg.MaxInbound = 2
		n0.up = func(*Link[string]) { once.Do(func() { <-release }) } // the first Up waits
	})
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the Manager's Close, should the test fail
	y := newRawFriend(t, lo, c)
	const open = 8
	var streams []network.Stream
	for range open {
		streams = append(streams, y.open(t, c, "hi"))
	}
	testkit.WaitFor(t, waitLimit, "the streams over the cap refused", func() bool { return c.m.Stats().Refused >= open-2 })
	time.Sleep(200 * time.Millisecond)
	if r := c.m.Stats().Refused; r != open-2 {
		t.Fatalf("%d of %d streams refused, want %d", r, open, open-2)
	}
	unblock()
	testkit.WaitFor(t, waitLimit, "the link", func() bool { return c.link(lo.ID()) != nil })
	_ = streams
}

// TestLinkFaultPause: a friend that sends a frame over the size limit, a
// frame too slowly, or a frame its owner calls a protocol error, has
// that link reset and is refused a new one of the protocol both ways for
// the pause, whichever side opened it; its connection and its link of
// another protocol go on, and after the pause the link comes back.
func TestLinkFaultPause(t *testing.T) {
	const pause = time.Second
	for _, c := range []struct {
		name  string
		write func(s network.Stream)
	}{
		{"too large", func(s network.Stream) { s.Write(binary.AppendUvarint(nil, 1<<30)) }},
		{"too slow", func(s network.Stream) { s.Write(append(binary.AppendUvarint(nil, 100), 1, 2, 3)) }},
		{"owner's protocol error", func(s network.Stream) { b, _ := encode(nil, "bad"); s.Write(b) }},
	} {
		for _, lower := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, manager opens %v", c.name, lower), func(t *testing.T) {
				lo, hi := twoHosts(t)
				mh, xh := hi, lo // the Manager's host and the faulty friend's
				if lower {
					mh, xh = lo, hi
				}
				a := startNode(t, mh, func(_ *node, cfg *Config[string]) {
					cfg.pause = pause
					cfg.FrameTimeout = 500 * time.Millisecond
				})
				x := newRawFriend(t, xh, a)
				// A second protocol between the same friends.
				other := func(h host.Host) *node {
					return startNode(t, h, func(_ *node, cfg *Config[string]) { cfg.Protocol = otherProto })
				}
				ao, xo := other(mh), other(xh)
				friends(t, ao, xo)

				var s network.Stream
				if lower {
					select {
					case s = <-x.held:
						t.Cleanup(func() { s.Reset() })
					case <-time.After(10 * time.Second):
						t.Fatal("no link opened to the friend")
					}
				} else {
					s = x.open(t, a, "fine so far")
				}
				testkit.WaitFor(t, waitLimit, "the link", func() bool { return a.link(xh.ID()) != nil })
				c.write(s)
				testkit.WaitFor(t, waitLimit, "the fault counted", func() bool { return a.m.Stats().Faults == 1 })
				start := time.Now()
				testkit.WaitFor(t, waitLimit, "the link gone", func() bool { return a.link(xh.ID()) == nil })
				if !a.m.Paused(xh.ID()) {
					t.Fatal("the faulty friend is not paused")
				}
				if !isReset(s) {
					t.Fatal("the faulty link's stream was not reset")
				}
				// Refused while paused: its own new stream, and none
				// opened to it (several retries pass).
				if s2 := x.open(t, a, "again"); !isReset(s2) {
					t.Fatal("a paused friend's new stream was taken")
				}
				time.Sleep(300 * time.Millisecond)
				if time.Since(start) < pause && (len(x.held) != 0 || a.link(xh.ID()) != nil) {
					t.Fatal("a paused friend got a new link")
				}
				// The rest goes on: the connection and the other protocol.
				if mh.Network().Connectedness(xh.ID()) != network.Connected {
					t.Fatal("the faulty friend's connection was closed")
				}
				ao.link(xh.ID()).l.Send("other protocol")
				recv(t, xo.link(mh.ID()), "other protocol")
				// After the pause, a link again.
				if lower {
					select {
					case s3 := <-x.held:
						s3.Reset()
					case <-time.After(10 * time.Second):
						t.Fatal("no link after the pause")
					}
				} else {
					time.Sleep(time.Until(start.Add(pause + 100*time.Millisecond)))
					x.open(t, a, "after the pause")
					testkit.WaitFor(t, waitLimit, "the link after the pause", func() bool { return a.link(xh.ID()) != nil })
					recv(t, a.link(xh.ID()), "after the pause")
				}
				if took := time.Since(start); took < pause-100*time.Millisecond {
					t.Fatalf("a new link %v after the fault, the pause is %v", took, pause)
				}
			})
		}
	}
}

// TestLinkCloseWaits: Close stops every link and returns once every
// Handler's Down ran.
func TestLinkCloseWaits(t *testing.T) {
	lo, hi := twoHosts(t)
	a, b := startNode(t, lo, nil), startNode(t, hi, nil)
	friends(t, a, b)
	s := a.link(hi.ID())
	s.l.Send("bye")
	a.m.Close()
	select {
	case <-s.down:
	default:
		t.Fatal("Close returned before Down")
	}
	if s.l.Send("after close") {
		t.Fatal("a stopped link took a message")
	}
	a.m.Close() // twice is fine
	testkit.WaitFor(t, waitLimit, "b's link down", func() bool { return b.link(lo.ID()) == nil })
}

// TestLinkEncodeError: a message that does not encode is dropped, and the
// link goes on.
func TestLinkEncodeError(t *testing.T) {
	lo, hi := twoHosts(t)
	a, b := startNode(t, lo, nil), startNode(t, hi, nil)
	friends(t, a, b)
	l := a.link(hi.ID()).l
	l.Send(strings.Repeat("x", maxFrame+1))
	l.Send("next")
	recv(t, b.link(lo.ID()), "next")
	testkit.WaitFor(t, waitLimit, "the queue empty", func() bool { return l.QueuedBytes() == 0 })
	if a.m.Stats().Faults != 0 || l != a.link(hi.ID()).l {
		t.Fatal("a message that does not encode broke the link")
	}
}
