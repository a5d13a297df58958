package tunnels

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// TestSearchWalkAcrossChain runs the walk and the spread on real hosts:
// O has three friends with no other friend (L1-L3) and A, and A - B - C - H
// is a chain to the holder H. O has more than SearchFanout friends, so it
// sends each search walking, to one friend; a walk that picks a dead end
// comes back and O walks it on to a friend it has not tried; A, B and C
// have SearchFanout friends or fewer besides their sender, so they spread
// to all of them. Every search finds H, O never sends a spreading copy
// (it always walks), never sends one search to more than one friend at a
// time but for the dead ends that sent it back, and a tunnel opens
// across the chain and carries data both ways.
func TestSearchWalkAcrossChain(t *testing.T) {
	share := &fakeShare{name: "walk-chain.bin", root: [32]byte(randBytes(32)), size: 4096}
	incoming := make(chan *Tunnel, 4)
	// 0 O, 1-3 L1-L3, 4 A, 5 B, 6 C, 7 H.
	edges := [][2]int{{0, 1}, {0, 2}, {0, 3}, {0, 4}, {4, 5}, {5, 6}, {6, 7}}
	nodes := newNet(t, 8, edges, func(i int, c *RouterConfig) {
		if i == 7 {
			holderTunnels(share, incoming)(c)
		}
	})
	o := nodes[0]
	const searches = 12
	for k := range searches {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ch, err := o.r.Search(ctx, Query{RootHash: SearchHash(share.root)})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		res, ok := <-ch
		cancel()
		if !ok || res.Root != share.root {
			t.Fatalf("search %d found nothing through the walk", k)
		}
	}

	// What O wrote: walking copies only, each search to its dead ends
	// and then to A, one friend at a time.
	sentTo := map[SearchID]map[int]bool{}
	for i := 1; i <= 4; i++ {
		for _, m := range o.tap.messages(t, nodes[i].h.ID(), false) {
			s, ok := m.(*Search)
			if !ok {
				continue
			}
			if !s.Walk {
				t.Errorf("O sent a spreading copy to node %d: an origin with more than %d friends walks", i, SearchFanout)
			}
			if sentTo[s.ID] == nil {
				sentTo[s.ID] = map[int]bool{}
			}
			sentTo[s.ID][i] = true
		}
	}
	if len(sentTo) != searches {
		t.Fatalf("O sent %d searches, want %d", len(sentTo), searches)
	}
	bounced := 0
	for id, to := range sentTo {
		if !to[4] {
			t.Errorf("search %x never went to A, the only way on", id[:4])
		}
		bounced += len(to) - 1
	}
	// Each dead end O tried sent the walk back: O heard it from them.
	back := 0
	for i := 1; i <= 3; i++ {
		for _, m := range o.tap.messages(t, nodes[i].h.ID(), true) {
			if s, ok := m.(*Search); ok && s.Walk {
				back++
			}
		}
	}
	if back != bounced {
		t.Errorf("dead ends sent %d walks back, O tried them %d times", back, bounced)
	}
	t.Logf("%d searches, %d walks into dead ends sent back and walked on", searches, bounced)

	// A tunnel from O to H across the chain.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tn, err := o.r.OpenTunnel(ctx, share.root)
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
	go func() { io.Copy(far, far); far.CloseWrite() }()
	msg := randBytes(64 << 10)
	go func() { tn.Write(msg); tn.CloseWrite() }()
	got, err := io.ReadAll(tn)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo across the chain: %d bytes, err %v", len(got), err)
	}
}
