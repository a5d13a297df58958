package tunnels

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/internal/friendlink"
	"kith/internal/testkit"
)

// TestDroppedRequestFailsFast: B's only other friend X never reads its
// router stream, so B's queue to X fills. A tunnel request A sends
// through B is then dropped on that queue; B fails it back at once, so A
// hears "no tunnel" long before TunnelRequestTTL.
func TestDroppedRequestFailsFast(t *testing.T) {
	nodes := newNet(t, 2, chainEdges(2), nil)
	a, b := nodes[0], nodes[1]
	x, xal := newTestHost(t)
	// X takes B's router stream, or opens one (whichever side the peer
	// IDs make the opener), and never reads it.
	held := make(chan network.Stream, 4)
	x.SetStreamHandler(RouterProtocol, func(s network.Stream) { held <- s })
	defer func() {
		for len(held) > 0 {
			(<-held).Reset()
		}
	}()
	xal.Add(b.h.ID())
	b.friends.Add(x.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := x.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if friendlink.Opener(x.ID(), b.h.ID()) {
		s, err := x.NewStream(ctx, b.h.ID(), RouterProtocol)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		// A first message makes the stream's protocol negotiation happen.
		m := &Search{ID: SearchID{7}, Depth: 0, Keywords: "hello", ReplyKey: [32]byte{1}}
		if err := NewMessageWriter(s).Write(m); err != nil {
			t.Fatal(err)
		}
	}
	var l *link
	testkit.WaitFor(t, waitLimit, "B's link to X", func() bool {
		b.r.mu.Lock()
		defer b.r.mu.Unlock()
		l = b.r.links[x.ID()]
		return l != nil
	})
	// Fill B's send queue to X: large results block the stream once X's
	// receive window is full, then the queue fills up.
	big := &SearchResult{SearchID: SearchID{1}, Sealed: make([]byte, MaxSealedResults)}
	deadline := time.Now().Add(8 * time.Second) // within LinkWriteTimeout
	for {
		for l.Send(big) {
		}
		time.Sleep(300 * time.Millisecond) // full still: the writer is stuck
		if !l.Send(big) {
			for l.Send(&TunnelClose{ID: 1}) { // the last bytes and slots
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("could not fill B's queue to X")
		}
	}
	dropped := b.r.Stats().MessagesDropped
	start := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	_, err := a.r.RequestTunnels(rctx, TargetForRoot([32]byte{9}), 1)
	took := time.Since(start)
	if !errors.Is(err, ErrNoTunnel) {
		t.Fatalf("request through a full queue: %v", err)
	}
	if b.r.Stats().MessagesDropped == dropped {
		t.Fatal("B's queue to X dropped nothing: the test proves nothing")
	}
	if took > 3*time.Second {
		t.Fatalf("the dropped request took %v to fail", took)
	}
	t.Logf("failed in %v", took)
}

// TestTunnelRequestCrossesLinkOnce: in a fully meshed network, where
// every relay gets copies of a request by many paths, every link carries
// the request at most once in each direction, before and after the
// holder answers.
func TestTunnelRequestCrossesLinkOnce(t *testing.T) {
	const n = 6
	var edges [][2]int
	for i := range n {
		for j := i + 1; j < n; j++ {
			edges = append(edges, [2]int{i, j})
		}
	}
	share := &fakeShare{name: "mesh.bin", root: [32]byte(randBytes(32)), size: 1}
	incoming := make(chan *Tunnel, n)
	nodes := newNet(t, n, edges, func(i int, c *RouterConfig) {
		if i == n-1 {
			holderTunnels(share, incoming)(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := range 3 {
		ts, err := nodes[0].r.OpenTunnels(ctx, share.root, 1)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, tn := range ts {
			tn.Close()
		}
	}
	time.Sleep(500 * time.Millisecond) // copies still on their way
	for len(incoming) > 0 {
		(<-incoming).Close()
	}
	perRequest := map[RequestID]int{}
	for _, to := range nodes {
		for _, from := range nodes {
			if from == to {
				continue
			}
			seen := map[RequestID]int{}
			for _, m := range to.tap.messages(t, from.h.ID(), true) {
				if req, ok := m.(*TunnelRequest); ok {
					seen[req.RequestID]++
					perRequest[req.RequestID]++
				}
			}
			for id, c := range seen {
				if c > 1 {
					t.Fatalf("request %x crossed a link %d times in one direction", id[:4], c)
				}
			}
		}
	}
	if len(perRequest) != 3 {
		t.Fatalf("%d distinct requests seen, want 3", len(perRequest))
	}
	for id, c := range perRequest {
		if c < n-1 {
			t.Fatalf("request %x crossed only %d links: the test proves nothing", id[:4], c)
		}
	}
}
