package f2f

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// udpProxy forwards one client's datagrams to target and back, until
// cut, after which it silently drops everything: to both ends a QUIC
// connection through it then looks like one whose peer vanished.
type udpProxy struct {
	front, back *net.UDPConn
	mu          sync.Mutex
	client      *net.UDPAddr
	cut         bool
	wg          sync.WaitGroup
}

func newUDPProxy(t *testing.T, target *net.UDPAddr) *udpProxy {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp4", nil, target)
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{front: front, back: back}
	p.wg.Add(2)
	go func() { // client -> target
		defer p.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.client = from
			cut := p.cut
			p.mu.Unlock()
			if !cut {
				back.Write(buf[:n])
			}
		}
	}()
	go func() { // target -> client
		defer p.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			client, cut := p.client, p.cut
			p.mu.Unlock()
			if client != nil && !cut {
				front.WriteToUDP(buf[:n], client)
			}
		}
	}()
	t.Cleanup(func() { front.Close(); back.Close(); p.wg.Wait() })
	return p
}

func (p *udpProxy) addr() ma.Multiaddr {
	a := p.front.LocalAddr().(*net.UDPAddr)
	return ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", a.Port))
}

func (p *udpProxy) cutOff() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
}

// silenceable befriends a and b so that a knows no address of b that
// answers and b knows a only through a proxy of a's QUIC port, which the
// caller can cut off.
func silenceable(t *testing.T, a, b *testPeer) *udpProxy {
	t.Helper()
	var quicAddr *net.UDPAddr
	for _, addr := range a.host.Addrs() {
		if na, err := net.ResolveUDPAddr("udp4", fmt.Sprintf("127.0.0.1:%s", mustPort(t, addr))); err == nil {
			quicAddr = na
		}
	}
	proxy := newUDPProxy(t, quicAddr)
	a.addWithAddrs(b, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/9/quic-v1")})
	b.addWithAddrs(a, []ma.Multiaddr{proxy.addr()})
	return proxy
}

// addWithAddrs puts other on p's friend list with the given addresses.
func (p *testPeer) addWithAddrs(other *testPeer, addrs []ma.Multiaddr) {
	p.t.Helper()
	text, err := NewInvite(other.key, addrs, "peer")
	if err != nil {
		p.t.Fatal(err)
	}
	inv, err := ParseInvite(text)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.friends.Add(inv, ""); err != nil {
		p.t.Fatal(err)
	}
}

// TestDeadConnectionClosedOnReconnect: B reaches A over QUIC through a
// proxy that then goes silent, as a crashed friend's connection does. When
// B connects again, A pings its other connection to B over that
// connection, gets no answer and closes it; a live older connection
// answers and stays.
func TestDeadConnectionClosedOnReconnect(t *testing.T) {
	a, b := newPeer(t, "quic"), newPeer(t, "quic")
	proxy := silenceable(t, a, b)
	waitFor(t, 15*time.Second, "friends online through the proxy", func() bool { return online(a, b.id) && online(b, a.id) })
	if n := len(a.host.Network().ConnsToPeer(b.id)); n != 1 {
		t.Fatalf("%d connections before the cut", n)
	}
	dead := a.host.Network().ConnsToPeer(b.id)[0]

	// B "crashes": the proxy goes silent and B drops its side without a
	// word reaching A, then B comes back on a new connection.
	proxy.cutOff()
	for _, c := range b.host.Network().ConnsToPeer(a.id) {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.host.Connect(ctx, peer.AddrInfo{ID: a.id, Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the dead connection closed", func() bool { return dead.IsClosed() })
	if got := a.conn.Stats().DeadConnsClosed; got != 1 {
		t.Fatalf("DeadConnsClosed = %d, want 1", got)
	}
	if err := roundTrip(ctx, a, b.id, nil); err != nil {
		t.Fatalf("the new connection does not work: %v", err)
	}

	// Probing a live connection: it answers and stays open.
	live := a.host.Network().ConnsToPeer(b.id)
	if len(live) != 1 {
		t.Fatalf("%d connections after the reconnect", len(live))
	}
	a.conn.probeOtherConns(b.id, nil)
	time.Sleep(ConnProbeTimeout + 500*time.Millisecond)
	if live[0].IsClosed() {
		t.Fatal("a live connection was closed")
	}
	if got := a.conn.Stats().DeadConnsClosed; got != 1 {
		t.Fatalf("DeadConnsClosed = %d after probing a live connection, want 1", got)
	}
}

func mustPort(t *testing.T, addr ma.Multiaddr) string {
	t.Helper()
	port, err := addr.ValueForProtocol(ma.P_UDP)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestProbesRefusedKeepLiveConnections: a probe the friend refuses (its
// resource manager allows few ping streams per peer, and after a
// simultaneous dial both friends probe at once) proves the connection is
// alive; none may be closed for it.
func TestProbesRefusedKeepLiveConnections(t *testing.T) {
	a, b := newPeer(t, "quic"), newPeer(t, "quic")
	befriend(a, b)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(a, b.id) && online(b, a.id) })
	before := a.conn.Stats().DeadConnsClosed + b.conn.Stats().DeadConnsClosed
	conns := append(a.host.Network().ConnsToPeer(b.id), b.host.Network().ConnsToPeer(a.id)...)
	// Many probes at once from both sides: more ping streams than a
	// peer's limit.
	for range 6 {
		a.conn.probeOtherConns(b.id, nil)
		b.conn.probeOtherConns(a.id, nil)
	}
	time.Sleep(ConnProbeTimeout + 500*time.Millisecond)
	for _, c := range conns {
		if c.IsClosed() {
			t.Errorf("a live connection (%s) was closed", c.RemoteMultiaddr())
		}
	}
	if got := a.conn.Stats().DeadConnsClosed + b.conn.Stats().DeadConnsClosed - before; got != 0 {
		t.Errorf("DeadConnsClosed rose by %d, want 0", got)
	}
}

// deadAndLive sets up A with two friends: B, whose connection to A runs
// through a proxy that has gone silent (to A it looks open, as the
// connection of a friend that moved does), and C, which is fine. serve
// runs on B and C before they connect (a service A will ask them for).
// It returns A's connection to B.
func deadAndLive(t *testing.T, serve func(*testPeer)) (a, b, c *testPeer, dead network.Conn) {
	t.Helper()
	a, b, c = newPeer(t, "quic"), newPeer(t, "quic"), newPeer(t, "quic")
	serve(b)
	serve(c)
	proxy := silenceable(t, a, b)
	befriend(a, c)
	waitFor(t, 15*time.Second, "friends online", func() bool {
		return online(a, b.id) && online(b, a.id) && online(a, c.id) && online(c, a.id)
	})
	if n := len(a.host.Network().ConnsToPeer(b.id)); n != 1 {
		t.Fatalf("%d connections to B", n)
	}
	dead = a.host.Network().ConnsToPeer(b.id)[0]
	proxy.cutOff()
	return a, b, c, dead
}

// TestReachVerdictDoesNotWaitForADeadFriend: A asks B and C to dial it
// back, and B's connection died unnoticed. C's answer makes the verdict
// while B's request still waits (before, the verdict waited for B's
// timeout, and a node behind NAT reserved no relay meanwhile: a friend
// that had moved could not reach it); then B's silence gets its
// connection probed and closed.
func TestReachVerdictDoesNotWaitForADeadFriend(t *testing.T) {
	a, b, c, dead := deadAndLive(t, func(p *testPeer) { startReach(t, p, isLoopbackAddr) })
	var gaveUp atomicBool
	unanswered := func(id peer.ID) { gaveUp.set(true); a.conn.Probe(id) }
	ra, err := NewReach(ReachConfig{Host: a.host, Key: a.key, Friends: a.friends, Traversal: a.trav, Log: testLog,
		candidate: isLoopbackAddr, Unanswered: unanswered})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	ra.Recheck()
	waitFor(t, ReachRequestTimeout, "A's reachability", func() bool { return ra.State().State != ReachUnknown })
	st := ra.State()
	if gaveUp.get() {
		t.Fatal("the verdict came only after B's request gave up")
	}
	if st.State != ReachPublic || len(st.CheckedBy) != 1 || st.CheckedBy[0] != c.id {
		t.Fatalf("A's reachability: %+v (C is %s, B is %s)", st, c.id, b.id)
	}
	waitFor(t, ReachRequestTimeout+ConnProbeTimeout+5*time.Second, "B's dead connection closed", dead.IsClosed)
	if got := a.conn.Stats().DeadConnsClosed; got != 1 {
		t.Fatalf("DeadConnsClosed = %d, want 1", got)
	}
}

// TestReservationDoesNotWaitForADeadRelay: A reserves on B and C, both
// relays, and B's connection died unnoticed. The reservation on C is
// held while B's request still waits, and B's silence gets its
// connection probed and closed.
func TestReservationDoesNotWaitForADeadRelay(t *testing.T) {
	a, b, c, dead := deadAndLive(t, func(p *testPeer) {
		relay, err := StartRelay(p.host, p.friends, RelayConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { relay.Close() })
	})
	var gaveUp atomicBool
	unanswered := func(id peer.ID) { gaveUp.set(true); a.conn.Probe(id) }
	res, err := NewReservations(ReservationsConfig{Host: a.host, Friends: a.friends, Unanswered: unanswered, Log: testLog})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	waitFor(t, ReserveTimeout, "A to hold a reservation on C", func() bool { return res.Holds(c.id) })
	if gaveUp.get() {
		t.Fatal("the reservation on C came only after B's request gave up")
	}
	if res.Holds(b.id) {
		t.Fatal("a reservation on B, whose connection is dead")
	}
	waitFor(t, ReserveTimeout+ConnProbeTimeout+5*time.Second, "B's dead connection closed", dead.IsClosed)
	if got := a.conn.Stats().DeadConnsClosed; got != 1 {
		t.Fatalf("DeadConnsClosed = %d, want 1", got)
	}
}
