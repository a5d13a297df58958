package f2f

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// natted makes a and b unable to dial each other directly (as two
// friends behind NATs): their gaters refuse every address of the other
// but circuit addresses. Everything else runs as it would.
func natted(a, b *testPeer) {
	for _, pair := range [][2]*testPeer{{a, b}, {b, a}} {
		g, other := pair[0].gater, pair[1].id
		prev := g.dialHook.Load()
		fn := func(p peer.ID, addr ma.Multiaddr, ok bool) bool {
			if p == other && !isCircuit(addr) {
				return false
			}
			if prev != nil {
				return (*prev)(p, addr, ok)
			}
			return ok && (isCircuit(addr) || isLoopbackAddr(addr))
		}
		g.dialHook.Store(&fn)
	}
}

// circuitTo returns the circuit address of target through relay r.
func circuitTo(t *testing.T, r *testPeer, target peer.ID) ma.Multiaddr {
	t.Helper()
	return r.host.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + r.id.String() + "/p2p-circuit/p2p/" + target.String()))
}

// reserveOn makes p reserve a slot on relay r (p must be r's friend to
// get one). A friend of r first waits for the Connectors to connect the
// two, as the Reservations of a running node do: a dial of its own could
// meet their dials' backoff.
func reserveOn(ctx context.Context, p, r *testPeer) error {
	if _, friend := r.friends.Get(p.id); friend {
		waitFor(p.t, 10*time.Second, "a friend to connect to the relay", func() bool {
			return p.host.Network().Connectedness(r.id) == network.Connected
		})
	}
	_, err := client.Reserve(ctx, p.host, peer.AddrInfo{ID: r.id, Addrs: r.host.Addrs()})
	return err
}

// dialVia connects p to target through relay r only.
func dialVia(ctx context.Context, t *testing.T, p, r, target *testPeer) error {
	p.host.Peerstore().AddAddrs(r.id, r.host.Addrs(), peerstore.PermanentAddrTTL)
	return p.host.Connect(ctx, peer.AddrInfo{ID: target.id, Addrs: []ma.Multiaddr{circuitTo(t, r, target.id)}})
}

func relayedConn(p *testPeer, id peer.ID) network.Conn {
	for _, c := range p.host.Network().ConnsToPeer(id) {
		if isCircuit(c.RemoteMultiaddr()) {
			return c
		}
	}
	return nil
}

// TestRelayServesFriendsOnly is the relay's ACL, attacked: a stranger
// cannot reserve on R; a circuit through R between R's friend A and a
// peer that is not R's friend is refused; a circuit between two friends
// of R works, is not limited (every kith protocol runs over it), and
// counts. Each refusal is counted by R.
func TestRelayServesFriendsOnly(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, a, b, x := newPeer(t, tr), newPeer(t, tr), newPeer(t, tr), newPeer(t, tr)
			natted(a, b)
			natted(a, x)
			befriend(r, a)
			befriend(r, b)
			befriend(a, b)
			befriend(a, x) // X is A's friend, not R's
			x.add(r)       // X lists R; R does not list X
			relay, err := StartRelay(r.host, r.friends, RelayConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()

			// A stranger cannot reserve: R's gater refuses its connection.
			refusedBefore := r.gater.Refused()
			if err := reserveOn(ctx, x, r); err == nil {
				t.Fatal("a stranger reserved a slot on R")
			}
			waitFor(t, 5*time.Second, "R to count the stranger", func() bool { return r.gater.Refused() > refusedBefore })

			// B (R's friend) reserves; A reaches B through R.
			if err := reserveOn(ctx, b, r); err != nil {
				t.Fatalf("friend's reservation: %v", err)
			}
			waitFor(t, 5*time.Second, "R to count the reservation", func() bool { return relay.Stats().Reservations == 1 })
			// A's Connector may dial the circuit too once it knows it; one
			// of the two connections may be closed as a duplicate.
			dialVia(ctx, t, a, r, b)
			waitFor(t, 10*time.Second, "a relayed connection A-B", func() bool { return relayedConn(a, b.id) != nil })
			c := relayedConn(a, b.id)
			if c.Stat().Limited {
				t.Fatal("relayed friend connection is limited: kith's protocols would not run over it")
			}
			if err := roundTrip(ctx, a, b.id, nil); err != nil {
				t.Fatalf("stream over the circuit: %v", err)
			}
			if b.rec.count(a.id) != 1 {
				t.Fatal("B did not see A's stream")
			}
			if st := relay.Stats(); st.CircuitsTotal == 0 || st.Circuits == 0 || st.Bytes == 0 {
				t.Fatalf("relay stats after one circuit: %+v", st)
			}

			// A circuit from A to X (not R's friend) is refused by R's ACL.
			refusedNF := relay.Stats().RefusedNotFriend
			x.host.Network().ClosePeer(a.id)
			a.host.Network().ClosePeer(x.id)
			if err := dialVia(ctx, t, a, r, x); err == nil {
				t.Fatal("R relayed a circuit to a non-friend")
			}
			waitFor(t, 5*time.Second, "R to count the refused circuit", func() bool { return relay.Stats().CircuitsRefused == 1 })
			st := relay.Stats()
			if st.RefusedNotFriend != refusedNF+1 || st.CircuitsRefused != 1 {
				t.Fatalf("refused circuit not counted: %+v", st)
			}
			if c := relayedConn(a, x.id); c != nil {
				t.Fatalf("A reached X through R: %s", c.RemoteMultiaddr())
			}
		})
	}
}

// TestRelayCaps: the relay-wide circuit cap refuses the circuit over it;
// the bandwidth cap bounds the bytes relayed (all circuits together) to
// the rate times the time, plus the burst.
func TestRelayCaps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	r, a, b, c := newPeer(t, "tcp"), newPeer(t, "tcp"), newPeer(t, "tcp"), newPeer(t, "tcp")
	natted(a, b)
	natted(c, b)
	for _, p := range []*testPeer{a, b, c} {
		befriend(r, p)
	}
	befriend(a, b)
	befriend(c, b)
	const rateCap = 256 << 10
	relay, err := StartRelay(r.host, r.friends, RelayConfig{Rate: rateCap, MaxCircuits: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := reserveOn(ctx, b, r); err != nil {
		t.Fatal(err)
	}
	// The Connectors dial through R too once they know the circuit
	// address; whichever circuit comes first holds the relay's one slot.
	dialVia(ctx, t, a, r, b)
	waitFor(t, 10*time.Second, "A's circuit to B", func() bool { return relayedConn(a, b.id) != nil })
	dialVia(ctx, t, c, r, b)
	waitFor(t, 5*time.Second, "the relay to refuse a circuit", func() bool { return relay.Stats().CircuitsRefused >= 1 })
	if st := relay.Stats(); st.Circuits != 1 {
		t.Fatalf("circuit cap: %+v", st)
	}
	if relayedConn(c, b.id) != nil {
		t.Fatal("C reached B through a full relay")
	}

	// Push as much as possible from A to B for 2 s over the circuit.
	got := make(chan int64, 1)
	b.host.SetStreamHandler(protocolID("/kith/test/sink"), func(s network.Stream) {
		n, _ := io.Copy(io.Discard, s)
		got <- n
	})
	s, err := a.host.NewStream(ctx, b.id, protocolID("/kith/test/sink"))
	if err != nil {
		t.Fatal(err)
	}
	if !isCircuit(s.Conn().RemoteMultiaddr()) {
		t.Fatal("stream not on the circuit")
	}
	before := relay.Stats().Bytes
	start := time.Now()
	buf := make([]byte, 32<<10)
	s.SetWriteDeadline(start.Add(2 * time.Second))
	for time.Since(start) < 2*time.Second {
		if _, err := s.Write(buf); err != nil {
			break
		}
	}
	s.Reset()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
	}
	// What the relay moved up to now, against the time since the first
	// byte: the bytes the muxer had buffered count too.
	relayed := int64(relay.Stats().Bytes - before)
	elapsed := time.Since(start)
	bound := int64(float64(rateCap)*elapsed.Seconds()) + int64(RelayRateBurst) + 2*RelayBufferSize
	t.Logf("relayed %d bytes in %v at a cap of %d B/s (bound %d)", relayed, elapsed, rateCap, bound)
	if relayed > bound {
		t.Fatalf("relay moved %d bytes in %v, over its cap (%d)", relayed, elapsed, bound)
	}
	if relayed < rateCap/2 {
		t.Fatalf("relay moved only %d bytes in %v", relayed, elapsed)
	}
}

// TestReservationsAdvertiseCircuits: B, told it is not reachable,
// reserves on its friend R and advertises the circuit address through R
// in identify and in its invite; A, with nothing but that invite, reaches
// B through R, and B's path for A reads "relayed through R". Told it is
// reachable, B drops the reservation and its circuit address.
func TestReservationsAdvertiseCircuits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, a := newPeer(t, "tcp"), newPeer(t, "tcp")
	b := newPeerWith(t, "tcp", func(p *testPeer) { p.trav = NewTraversal(nil) })
	natted(a, b)
	befriend(r, a)
	befriend(r, b)
	relay, err := StartRelay(r.host, r.friends, RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	var need atomicBool
	need.set(true)
	res, err := NewReservations(ReservationsConfig{Host: b.host, Friends: b.friends, Need: need.get, Log: testLog})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	b.trav.AddSource(res.CircuitAddrs)
	waitFor(t, 15*time.Second, "B to hold a reservation on R", func() bool { return len(res.Held()) == 1 })
	circuit := res.Held()[0].Addrs
	if len(circuit) == 0 || CircuitRelay(circuit[0]) != r.id {
		t.Fatalf("circuit addresses %v", circuit)
	}
	hasCircuit := func(addrs []ma.Multiaddr) bool {
		for _, x := range addrs {
			if CircuitRelay(x) == r.id {
				return true
			}
		}
		return false
	}
	if !hasCircuit(b.host.Addrs()) {
		t.Fatalf("B does not advertise its circuit address: %v", b.host.Addrs())
	}
	// identify: R learns the circuit address when B's addresses change.
	waitFor(t, 15*time.Second, "R to learn B's circuit address", func() bool {
		f, _ := r.friends.Get(b.id)
		return hasCircuit(f.Addrs)
	})
	// A adds B's new invite, which carries only what B advertises.
	inv := b.invite()
	if !hasCircuit(inv.Addrs) {
		t.Fatalf("invite lacks the circuit address: %v", inv.Addrs)
	}
	var circuitsOnly []ma.Multiaddr
	for _, x := range inv.Addrs {
		if isCircuit(x) {
			circuitsOnly = append(circuitsOnly, x)
		}
	}
	inv.Addrs = circuitsOnly
	if _, err := a.friends.Add(inv, "b"); err != nil {
		t.Fatal(err)
	}
	b.add(a)
	waitFor(t, 15*time.Second, "A online at B", func() bool { return online(b, a.id) && online(a, b.id) })
	if p := b.trav.PathTo(b.host, a.id); p.Kind != PathRelayed || p.Relay != r.id {
		t.Fatalf("B's path to A: %+v", p)
	}
	if err := roundTrip(ctx, a, b.id, nil); err != nil {
		t.Fatal(err)
	}
	// Reachable now: the reservation and the circuit address go.
	need.set(false)
	res.Kick()
	waitFor(t, 10*time.Second, "B to drop its reservation", func() bool { return len(res.Held()) == 0 })
	if hasCircuit(b.host.Addrs()) {
		t.Fatal("B still advertises a circuit address")
	}
}

// TestRelayedClosedOnceDirect: two friends connected through a relay get
// a direct connection; the Connector closes the relayed one, and the
// streams opened afterwards go direct.
func TestRelayedClosedOnceDirect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, a, b := newPeer(t, "tcp"), newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(r, a)
	befriend(r, b)
	relay, err := StartRelay(r.host, r.friends, RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := reserveOn(ctx, b, r); err != nil {
		t.Fatal(err)
	}
	// A and B know no address of each other at first: A reaches B
	// through R.
	for _, pair := range [][2]*testPeer{{a, b}, {b, a}} {
		inv := pair[1].invite()
		inv.Addrs = nil
		if _, err := pair[0].friends.Add(inv, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := dialVia(ctx, t, a, r, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A online through R", func() bool { return online(a, b.id) })
	if relayedConn(a, b.id) == nil {
		t.Fatal("not relayed")
	}
	// Now a direct connection.
	if err := a.host.Connect(network.WithForceDirectDial(ctx, "test"), peer.AddrInfo{ID: b.id, Addrs: b.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the relayed connection to close", func() bool {
		return relayedConn(a, b.id) == nil && relayedConn(b, a.id) == nil
	})
	if a.conn.Stats().RelayedClosed+b.conn.Stats().RelayedClosed == 0 {
		t.Fatal("the Connector did not count the relayed connection it closed")
	}
	s, err := a.host.NewStream(ctx, b.id, testProto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	if isCircuit(s.Conn().RemoteMultiaddr()) {
		t.Fatal("a new stream went over the relay")
	}
}

// atomicBool is a flag tests flip while a component reads it.
type atomicBool struct{ v atomic.Bool }

func (b *atomicBool) set(v bool) { b.v.Store(v) }
func (b *atomicBool) get() bool  { return b.v.Load() }
