package f2f

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// TestStrangerHandshakeFlood: a stranger dials the node in a loop (the
// review measured 841 handshakes a second costing the victim 86% of a
// core). Only HandshakeBurstPerIP handshakes, plus HandshakeRatePerIP a
// second, may get as far as the security handshake; the rest are refused
// before it. Meanwhile a friend on the same IP, whose addresses the node
// does not know (it can only be dialled by), drops its connection and
// comes back in from the endpoint it came from before.
func TestStrangerHandshakeFlood(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) { testStrangerHandshakeFlood(t, transport) })
	}
}

func testStrangerHandshakeFlood(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, stranger := newPeer(t, transport), newPeer(t, transport)
	f := newPeerWith(t, transport, func(p *testPeer) {
		// F tells V no address: V cannot dial it, F must come in.
		p.extra = []libp2p.Option{libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return nil })}
	})
	f.add(v)
	v.addWithAddrs(f, nil)
	waitFor(t, 10*time.Second, "the friend to connect", func() bool { return online(v, f.id) && online(f, v.id) })
	stranger.add(v) // its own gater lets it dial V; V does not know it
	sw := stranger.host.Network().(*swarm.Swarm)
	target := peer.AddrInfo{ID: v.id, Addrs: v.host.Addrs()}

	const minDials, maxDials, friendDrops = 300, 3000, 50
	before, adm := v.gater.Refused(), v.gater.Stats().Admission
	var knownBefore uint64
	start := time.Now()
	dials, friendBack := 0, false
	for dials < maxDials && time.Since(start) < 30*time.Second && !(dials >= minDials && friendBack) {
		stranger.host.Network().ClosePeer(v.id)
		sw.Backoff().Clear(v.id)
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		stranger.host.Connect(dctx, target)
		dcancel()
		dials++
		if dials == friendDrops {
			knownBefore = v.gater.Stats().Admission.AdmittedKnown
			f.host.Network().ClosePeer(v.id) // F redials V at once
		}
		if dials > friendDrops && !friendBack {
			friendBack = online(v, f.id) && online(f, v.id) && v.gater.Stats().Admission.AdmittedKnown > knownBefore
		}
	}
	elapsed := time.Since(start)
	secured := int(v.gater.Refused() - before)
	after := v.gater.Stats().Admission
	bound := HandshakeBurstPerIP + int(HandshakeRatePerIP*elapsed.Seconds()) + 1
	t.Logf("%d stranger dials in %v: %d reached the security handshake (bound %d), %d refused before it; friend back during the flood: %v (admitted from known endpoints: %d)",
		dials, elapsed.Round(time.Millisecond), secured, bound, after.Refused-adm.Refused, friendBack, after.AdmittedKnown-adm.AdmittedKnown)
	if secured > bound {
		t.Errorf("%d of %d stranger dials reached the security handshake, want at most %d", secured, dials, bound)
	}
	// Every stranger connection V's admission saw was either admitted
	// (within the bound) or refused before the handshake. A few dials
	// never reach V (the stranger's own dial fails on a machine busy
	// compiling), so the refusals are counted against what arrived, and
	// nearly all dials must have arrived for the flood to be one.
	refused, admitted := int(after.Refused-adm.Refused), int(after.Admitted-adm.Admitted)
	arrived := refused + admitted
	if admitted > bound {
		t.Errorf("%d stranger connections admitted to the handshake, want at most %d", admitted, bound)
	}
	if arrived < dials*9/10 {
		t.Errorf("only %d of %d stranger dials reached V's admission", arrived, dials)
	}
	if refused < arrived-bound {
		t.Errorf("%d of %d stranger connections refused before the handshake, want at least %d", refused, arrived, arrived-bound)
	}
	if !friendBack {
		t.Fatal("the friend did not get back in during the flood")
	}
	if err := roundTrip(ctx, f, v.id, nil); err != nil {
		t.Fatalf("friend stream during the flood: %v", err)
	}
}
