package tunnels

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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
	xal.add(b.h.ID())
	b.friends.add(x.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := x.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if opener(x.ID(), b.h.ID()) {
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
	waitFor(t, "B's link to X", func() bool {
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
		for len(l.out) < cap(l.out) {
			select {
			case l.out <- big:
			default:
			}
		}
		time.Sleep(300 * time.Millisecond) // full still: the writer is stuck
		if len(l.out) == cap(l.out) {
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
