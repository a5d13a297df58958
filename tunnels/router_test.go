package tunnels

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/internal/testkit"
)

// zeroSource makes every depth MaxDepth and never decremented, so that
// tests reach the far end of a chain every time.
type zeroSource struct{}

func (zeroSource) Uint64() uint64 { return 0 }

// recTap records what a router moved.
type recTap struct {
	mu      sync.Mutex
	control map[string][]byte // peer + "in"/"out"
	data    [2][]byte
}

func newRecTap() *recTap { return &recTap{control: make(map[string][]byte)} }

func (r *recTap) tap() *Tap {
	return &Tap{
		Control: func(p peer.ID, in bool, b []byte) {
			k := string(p) + "out"
			if in {
				k = string(p) + "in"
			}
			r.mu.Lock()
			r.control[k] = append(r.control[k], b...)
			r.mu.Unlock()
		},
		Data: func(dir int, b []byte) {
			r.mu.Lock()
			r.data[dir] = append(r.data[dir], b...)
			r.mu.Unlock()
		},
	}
}

// all returns every byte recorded, control and data, one slice each.
func (r *recTap) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, b := range r.control {
		out = append(out, bytes.Clone(b))
	}
	out = append(out, bytes.Clone(r.data[0]), bytes.Clone(r.data[1]))
	return out
}

// messages decodes the control messages recorded in one direction.
func (r *recTap) messages(t *testing.T, p peer.ID, in bool) []Message {
	k := string(p) + "out"
	if in {
		k = string(p) + "in"
	}
	r.mu.Lock()
	b := bytes.Clone(r.control[k])
	r.mu.Unlock()
	mr := NewMessageReader(bytes.NewReader(b))
	var out []Message
	for {
		m, err := mr.Read()
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

type testNode struct {
	h       host.Host
	r       *Router
	friends *testkit.Friends
	tap     *recTap
}

// newTestHost starts a real libp2p host on 127.0.0.1 TCP with the f2f
// gater over an in-memory friend list (testkit.Peer).
func newTestHost(t testing.TB) (host.Host, *testkit.Friends) {
	t.Helper()
	p := testkit.NewPeer(t)
	return p.Host(t), p.Friends
}

// newNet builds n routers with friendships along edges, connects them and
// waits for every router link to be up. cfg may adjust node i's config.
func newNet(t testing.TB, n int, edges [][2]int, cfg func(i int, c *RouterConfig)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		h, al := newTestHost(t)
		nodes[i] = &testNode{h: h, friends: al, tap: newRecTap()}
	}
	for _, e := range edges {
		a, b := nodes[e[0]], nodes[e[1]]
		a.friends.Add(b.h.ID())
		b.friends.Add(a.h.ID())
	}
	for i, nd := range nodes {
		c := DefaultRouterConfig()
		c.Rand = zeroSource{}
		c.Tap = nd.tap.tap()
		c.LinkRetry = 200 * time.Millisecond
		if cfg != nil {
			cfg(i, &c)
		}
		r, err := NewRouter(nd.h, nd.friends, c)
		if err != nil {
			t.Fatal(err)
		}
		nd.r = r
		t.Cleanup(func() { r.Close() })
	}
	for _, e := range edges {
		testkit.Connect(t, nodes[e[0]].h, nodes[e[1]].h)
	}
	for _, e := range edges {
		for _, pair := range [][2]*testNode{{nodes[e[0]], nodes[e[1]]}, {nodes[e[1]], nodes[e[0]]}} {
			testkit.WaitFor(t, waitLimit, "router link", func() bool {
				for _, p := range pair[0].r.Links() {
					if p == pair[1].h.ID() {
						return true
					}
				}
				return false
			})
		}
	}
	return nodes
}

// waitLimit bounds the waits of a failing test.
const waitLimit = 15 * time.Second

// fakeShare is a Searcher and Holder of one file.
type fakeShare struct {
	name string
	root [32]byte
	size int64
}

func (f *fakeShare) Search(q Query) []Result {
	if (q.Keywords != "" && strings.Contains(f.name, q.Keywords)) || q.RootHash == SearchHash(f.root) {
		return []Result{{Name: f.name, Size: f.size, Root: f.root}}
	}
	return nil
}

func (f *fakeShare) HoldsTarget(target [32]byte) ([32]byte, bool) {
	return f.root, target == TargetForRoot(f.root)
}

func chainEdges(n int) [][2]int {
	var e [][2]int
	for i := 0; i+1 < n; i++ {
		e = append(e, [2]int{i, i + 1})
	}
	return e
}

// holderTunnels configures node i as the holder of share whose incoming
// tunnels go to ch.
func holderTunnels(share *fakeShare, ch chan *Tunnel) func(c *RouterConfig) {
	return func(c *RouterConfig) {
		c.Holder = share
		c.Searcher = share
		c.OnTunnel = func(tn *Tunnel) {
			select {
			case ch <- tn:
			default:
				tn.Close()
			}
		}
	}
}

func TestRouterChain(t *testing.T) {
	share := &fakeShare{name: "holiday-secret-2026.mkv", root: [32]byte(randBytes(32)), size: 8 << 20}
	incoming := make(chan *Tunnel, 4)
	nodes := newNet(t, 5, chainEdges(5), func(i int, c *RouterConfig) {
		if i == 4 {
			holderTunnels(share, incoming)(c)
		}
	})
	a := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Search by keyword and by root hash.
	for _, q := range []Query{{Keywords: "holiday"}, {RootHash: SearchHash(share.root)}} {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		ch, err := a.r.Search(sctx, q)
		if err != nil {
			t.Fatal(err)
		}
		res, ok := <-ch
		scancel()
		if !ok {
			t.Fatalf("search %+v found nothing", q)
		}
		if res.Name != share.name || res.Root != share.root || res.Size != share.size {
			t.Fatalf("search found %+v", res)
		}
	}

	// A tunnel from A to E, data both ways.
	up := randBytes(8 << 20)
	down := randBytes(8 << 20)
	tn, err := a.r.OpenTunnel(ctx, share.root)
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	var far *Tunnel
	select {
	case far = <-incoming:
	case <-ctx.Done():
		t.Fatal("holder got no tunnel")
	}
	defer far.Close()
	farGot := make(chan []byte, 1)
	go func() {
		b, err := io.ReadAll(far)
		if err != nil {
			t.Error("holder read:", err)
		}
		farGot <- b
		if _, err := far.Write(down); err != nil {
			t.Error("holder write:", err)
		}
		far.CloseWrite()
	}()
	go func() {
		if _, err := tn.Write(up); err != nil {
			t.Error("origin write:", err)
		}
		tn.CloseWrite()
	}()
	got, err := io.ReadAll(tn)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, down) {
		t.Fatalf("origin got %d bytes, not what the holder sent", len(got))
	}
	if b := <-farGot; !bytes.Equal(b, up) {
		t.Fatalf("holder got %d bytes, not what the origin sent", len(b))
	}

	// Tunnel ids differ on every link.
	ids := map[TunnelID]int{}
	n := 0
	for i := 1; i < 5; i++ {
		for _, m := range nodes[i].tap.messages(t, nodes[i-1].h.ID(), true) {
			if req, ok := m.(*TunnelRequest); ok {
				ids[req.ID]++
				n++
			}
		}
	}
	if n < 4 || len(ids) != n {
		t.Fatalf("tunnel ids on the 4 links: %d requests, %d distinct", n, len(ids))
	}

	// What relays B, C, D saw.
	windows := contentWindows(up, down)
	for i := 1; i <= 3; i++ {
		for _, b := range nodes[i].tap.all() {
			if bytes.Contains(b, share.root[:]) {
				t.Fatalf("relay %d saw the root", i)
			}
			if bytes.Contains(b, []byte(share.name)) {
				t.Fatalf("relay %d saw a result's name", i)
			}
			if off, ok := windows.find(b); ok {
				t.Fatalf("relay %d saw a 64-byte window of the content at %d", i, off)
			}
		}
		if len(nodes[i].tap.data[0]) < len(up) || len(nodes[i].tap.data[1]) < len(down) {
			t.Fatalf("relay %d forwarded %d and %d bytes", i, len(nodes[i].tap.data[0]), len(nodes[i].tap.data[1]))
		}
	}
}

// windowSet finds 64-byte windows of content in what a relay saw: it
// indexes every 64-byte window at multiples of 64, so any copy of 127 or
// more contiguous content bytes is found.
type windowSet struct {
	content []byte
	at      map[uint64][]int
}

func contentWindows(bufs ...[]byte) *windowSet {
	ws := &windowSet{content: bytes.Join(bufs, nil), at: map[uint64][]int{}}
	for off := 0; off+64 <= len(ws.content); off += 64 {
		k := binary.LittleEndian.Uint64(ws.content[off:])
		ws.at[k] = append(ws.at[k], off)
	}
	return ws
}

func (ws *windowSet) find(b []byte) (int, bool) {
	for i := 0; i+64 <= len(b); i++ {
		for _, off := range ws.at[binary.LittleEndian.Uint64(b[i:])] {
			if bytes.Equal(b[i:i+64], ws.content[off:off+64]) {
				return i, true
			}
		}
	}
	return 0, false
}

func TestRouterRingTwoTunnels(t *testing.T) {
	// A(0) - B(1) - E(2) - D(3) - A(0): two disjoint paths from A to E.
	share := &fakeShare{name: "ring.bin", root: [32]byte(randBytes(32)), size: 1}
	incoming := make(chan *Tunnel, 4)
	nodes := newNet(t, 4, [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 0}}, func(i int, c *RouterConfig) {
		if i == 2 {
			holderTunnels(share, incoming)(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ts, err := nodes[0].r.OpenTunnels(ctx, share.root, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 {
		t.Fatalf("got %d tunnels, want 2", len(ts))
	}
	var wg sync.WaitGroup
	for range 2 {
		far := <-incoming
		wg.Add(1)
		go func() { // echo
			defer wg.Done()
			defer far.Close()
			io.Copy(far, far)
			far.CloseWrite()
		}()
	}
	for i, tn := range ts {
		msg := randBytes(100 << 10)
		go func() { tn.Write(msg); tn.CloseWrite() }()
		got, err := io.ReadAll(tn)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("tunnel %d: echo of %d bytes, err %v", i, len(got), err)
		}
		tn.Close()
	}
	wg.Wait()
	for _, relay := range []int{1, 3} {
		if len(nodes[relay].tap.data[0]) == 0 {
			t.Fatalf("relay %d carried no tunnel", relay)
		}
	}
}

// TestRouterFloodAndGarbage: a friend X of B floods searches, which B
// passes on to C only at X's rate, then sends garbage: B resets X's
// router link and refuses it a new one both ways for the pause
// (friendlink.FaultPause), keeps X's connection, and B and C go on
// searching.
func TestRouterFloodAndGarbage(t *testing.T) {
	// X is a bare host, friend of B; B(0) - C(1) run routers.
	share := &fakeShare{name: "on-b.txt", root: [32]byte(randBytes(32)), size: 3}
	nodes := newNet(t, 2, chainEdges(2), func(i int, c *RouterConfig) {
		if i == 0 {
			c.Searcher = share
		}
	})
	b, c := nodes[0], nodes[1]
	x, xal := newTestHost(t)
	xal.Add(b.h.ID())
	b.friends.Add(x.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := x.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := x.NewStream(ctx, b.h.ID(), RouterProtocol)
	if err != nil {
		t.Fatal(err)
	}
	// Drain what B sends, so its writes never block.
	go io.Copy(io.Discard, s)
	start := time.Now()
	mw := NewMessageWriter(s)
	const flood = 10000
	for i := range flood {
		m := &Search{Depth: MaxDepth, Keywords: "flood", ReplyKey: [32]byte{1}}
		binary.BigEndian.PutUint64(m.ID[:], uint64(i)+1)
		if err := mw.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, waitLimit, "flood handled", func() bool { return b.r.Stats().SearchesDropped >= flood-SearchBurst-100 })
	elapsed := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	forwarded := 0
	for _, m := range c.tap.messages(t, b.h.ID(), true) {
		if s, ok := m.(*Search); ok && s.Keywords == "flood" {
			forwarded++
		}
	}
	limit := SearchBurst + int(elapsed.Seconds()*SearchesPerSecond) + 2
	if forwarded > limit || forwarded == 0 {
		t.Fatalf("B forwarded %d of %d flooded searches, limit %d", forwarded, flood, limit)
	}
	t.Logf("forwarded %d of %d in %v, dropped %d", forwarded, flood, elapsed, b.r.Stats().SearchesDropped)

	// Garbage: a length 5 and bytes that are no protobuf. The policy of
	// internal/friendlink: the link is reset and X is refused a router
	// link both ways for the pause; its connection stays.
	if _, err := s.Write([]byte{5, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitLimit, "garbage friend's link reset", func() bool {
		return b.r.Stats().FriendsDisconnected == 1 && linkOf(b.r, x.ID()) == nil
	})
	s.Reset()
	opened := make(chan network.Stream, 4)
	x.SetStreamHandler(RouterProtocol, func(s network.Stream) { opened <- s })
	defer func() {
		for len(opened) > 0 {
			(<-opened).Reset()
		}
	}()
	s2, err := x.NewStream(ctx, b.h.ID(), RouterProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Reset()
	if err := NewMessageWriter(s2).Write(&TunnelClose{ID: 1}); err != nil {
		t.Fatal(err)
	}
	s2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := s2.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("the paused friend's new router stream was taken: %v", err)
	}
	time.Sleep(5 * 200 * time.Millisecond) // five of B's link retries
	if len(opened) != 0 || linkOf(b.r, x.ID()) != nil {
		t.Fatal("B linked again to the friend that sent garbage, within the pause")
	}
	if b.h.Network().Connectedness(x.ID()) != network.Connected {
		t.Fatal("B closed the connection of the friend that sent garbage: only its router link should go")
	}

	// The rest still works: C searches and finds B's file.
	time.Sleep(1100 * time.Millisecond) // B's limiter refills for C's link anyway
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	ch, err := c.r.Search(sctx, Query{Keywords: "on-b"})
	if err != nil {
		t.Fatal(err)
	}
	if res, ok := <-ch; !ok || res.Name != share.name {
		t.Fatalf("search after garbage: %+v %v", res, ok)
	}
}

func TestRouterRelayKilled(t *testing.T) {
	share := &fakeShare{name: "kill.bin", root: [32]byte(randBytes(32)), size: 1}
	incoming := make(chan *Tunnel, 1)
	nodes := newNet(t, 3, chainEdges(3), func(i int, c *RouterConfig) {
		if i == 2 {
			holderTunnels(share, incoming)(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tn, err := nodes[0].r.OpenTunnel(ctx, share.root)
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	far := <-incoming
	defer far.Close()
	if _, err := tn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(far, buf); err != nil {
		t.Fatal(err)
	}
	nodes[1].r.Close()
	nodes[1].h.Close()
	for name, s := range map[string]*Tunnel{"origin": tn, "holder": far} {
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := s.Read(buf)
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline") {
			t.Fatalf("%s: read after relay died: %v", name, err)
		}
	}
}
