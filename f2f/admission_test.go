package f2f

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// TestStrangerHandshakeFlood: a stranger dials the node in a loop (the
// review measured 841 handshakes a second costing the victim 86% of a
// core). Only HandshakeBurstPerIP handshakes, plus HandshakeRatePerIP a
// second, may get as far as the security handshake; the rest are refused
// before it. A friend on the same IP connects meanwhile.
func TestStrangerHandshakeFlood(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) { testStrangerHandshakeFlood(t, transport) })
	}
}

func testStrangerHandshakeFlood(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, stranger, f := newPeer(t, transport), newPeer(t, transport), newPeer(t, transport)
	stranger.add(v) // its own gater lets it dial V; V does not know it
	sw := stranger.host.Network().(*swarm.Swarm)
	target := peer.AddrInfo{ID: v.id, Addrs: v.host.Addrs()}

	const minDials, maxDials = 300, 3000
	before := v.gater.Refused()
	start := time.Now()
	dials, friendUp := 0, false
	for dials < maxDials && time.Since(start) < 30*time.Second && !(dials >= minDials && friendUp) {
		stranger.host.Network().ClosePeer(v.id)
		sw.Backoff().Clear(v.id)
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		stranger.host.Connect(dctx, target)
		dcancel()
		dials++
		if dials == 50 {
			befriend(v, f)
		}
		if dials > 50 && !friendUp {
			friendUp = online(v, f.id) && online(f, v.id)
		}
	}
	elapsed := time.Since(start)
	secured := int(v.gater.Refused() - before)
	bound := HandshakeBurstPerIP + int(HandshakeRatePerIP*elapsed.Seconds()) + 1
	t.Logf("%d stranger dials in %v: %d reached the security handshake (bound %d); friend connected during the flood: %v",
		dials, elapsed.Round(time.Millisecond), secured, bound, friendUp)
	if secured > bound {
		t.Errorf("%d of %d stranger dials reached the security handshake, want at most %d", secured, dials, bound)
	}
	if !friendUp {
		t.Fatal("the friend did not connect during the flood")
	}
	if err := roundTrip(ctx, f, v.id, nil); err != nil {
		t.Fatalf("friend stream during the flood: %v", err)
	}
}
