package f2f

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	libp2pping "github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

func TestAdmission(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) { testAdmission(t, transport) })
	}
}

func testAdmission(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, stranger := newPeer(t, transport), newPeer(t, transport), newPeer(t, transport)
	befriend(a, b)
	stranger.add(a) // the stranger wants A; A does not know it

	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(a, b.id) && online(b, a.id) })
	if err := roundTrip(ctx, b, a.id, nil); err != nil {
		t.Fatalf("friend stream: %v", err)
	}
	if got := a.rec.count(b.id); got != 1 {
		t.Fatalf("recorder saw %d streams from the friend, want 1", got)
	}

	// A stranger dialling A: every protocol of ours is out of reach.
	for _, pid := range []string{string(testProto), string(identify.ID), string(libp2pping.ID), string(DHTProtocol)} {
		stranger.host.Peerstore().AddAddrs(a.id, a.host.Addrs(), time.Minute)
		s, err := stranger.host.NewStream(ctx, a.id, protocolID(pid))
		if err == nil {
			s.SetDeadline(time.Now().Add(2 * time.Second))
			s.Write([]byte{1})
			_, err = io.ReadFull(s, make([]byte, 1))
			s.Reset()
		}
		if err == nil {
			t.Fatalf("stranger got an answer on %s", pid)
		}
	}
	if n := a.rec.count(stranger.id); n != 0 {
		t.Fatalf("A's handler ran %d times for the stranger", n)
	}
	if protos, _ := a.host.Peerstore().GetProtocols(stranger.id); len(protos) > 0 {
		t.Fatalf("identify ran with the stranger: %v", protos)
	}
	if a.gater.Refused() == 0 {
		t.Fatal("gater did not count the refusal")
	}
	// A dialling the stranger: refused before any address is dialled.
	err := a.host.Connect(ctx, peer.AddrInfo{ID: stranger.id, Addrs: stranger.host.Addrs()})
	if !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
		t.Fatalf("dial to stranger: %v, want gater refusal", err)
	}
	if n := stranger.rec.count(a.id); n != 0 {
		t.Fatal("A reached the stranger")
	}
	waitFor(t, 3*time.Second, "no connection to the stranger", func() bool {
		return a.host.Network().Connectedness(stranger.id) != network.Connected
	})
}

func TestOneSidedFriendshipKeepsNoConnection(t *testing.T) {
	a, c := newPeer(t, "tcp"), newPeer(t, "tcp")
	a.add(c) // C never adds A
	// A's connector keeps dialling C; C's gater must drop every attempt.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if online(a, c.id) {
			t.Fatal("A sees C online with one-sided friendship")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.conn.Stats().Dials == 0 {
		t.Fatal("A never tried to dial C: the test proves nothing")
	}
	if c.gater.Refused() == 0 {
		t.Fatal("C's gater never refused A")
	}
	waitFor(t, 2*time.Second, "no lingering connection", func() bool {
		return len(a.host.Network().ConnsToPeer(c.id)) == 0 || len(c.host.Network().ConnsToPeer(a.id)) == 0
	})
	if n := c.rec.count(a.id); n != 0 {
		t.Fatal("a protocol ran between one-sided friends")
	}
}

func TestRemoveFriendDropsConnection(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			a, b := newPeer(t, transport), newPeer(t, transport)
			befriend(a, b)
			waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(a, b.id) && online(b, a.id) })
			start := time.Now()
			if _, err := a.friends.Remove(b.id.String()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, time.Second, "connection to drop", func() bool {
				return a.host.Network().Connectedness(b.id) != network.Connected &&
					b.host.Network().Connectedness(a.id) != network.Connected
			})
			t.Logf("connection dropped %v after removal", time.Since(start))
			waitFor(t, time.Second, "B to see A offline", func() bool { return !online(b, a.id) })
			// B keeps redialling A; A's gater keeps refusing.
			time.Sleep(300 * time.Millisecond)
			if a.host.Network().Connectedness(b.id) == network.Connected && online(b, a.id) {
				t.Fatal("removed friend reconnected")
			}
		})
	}
}

// TestStaleAddressesFoundThroughDHT: A and C are friends and both friends of
// B. A and C restart on new ports, so each holds only the other's stale
// address; they find each other through B via the friends DHT.
func TestStaleAddressesFoundThroughDHT(t *testing.T) {
	a, b, c := newPeer(t, "tcp"), newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(a, b)
	befriend(b, c)
	befriend(a, c)
	waitFor(t, 10*time.Second, "all connected", func() bool {
		return online(a, b.id) && online(a, c.id) && online(b, c.id)
	})
	oldA, oldC := a.host.Addrs(), c.host.Addrs()

	a.stop()
	c.stop()
	a.start("tcp")
	c.start("tcp")
	if a.host.Addrs()[0].Equal(oldA[0]) || c.host.Addrs()[0].Equal(oldC[0]) {
		t.Fatal("restart kept the old port; the test proves nothing")
	}
	// Each holds only the other's stale address.
	fc, _ := a.friends.Get(c.id)
	for _, addr := range fc.Addrs {
		for _, cur := range c.host.Addrs() {
			if addr.Equal(cur) {
				t.Fatalf("A already knows C's new address %s", cur)
			}
		}
	}
	waitFor(t, 15*time.Second, "A and C to reconnect", func() bool { return online(a, c.id) && online(c, a.id) })
	// The lookup dials its target, so the friend can show online a moment
	// before the lookup returns and is counted.
	waitFor(t, 5*time.Second, "the DHT lookup that found the new address to be counted", func() bool {
		return a.conn.Stats().DHTFoundNew+c.conn.Stats().DHTFoundNew > 0
	})
	t.Logf("A: %+v, C: %+v", a.conn.Stats(), c.conn.Stats())
	// The address that made it is the new one, learned by lookup.
	found := false
	fc, _ = a.friends.Get(c.id)
	for _, addr := range fc.Addrs {
		for _, cur := range c.host.Addrs() {
			found = found || addr.Equal(cur)
		}
	}
	if !found {
		t.Fatal("A did not store C's new address")
	}
}

// TestRedialNotHeldBySwarmBackoff: every Connector redial of a friend
// reaches the network. The swarm backs a peer off for at least 5 s after a
// failed dial; if that held the Connector's redials, two friends whose
// first dials collided (a TCP simultaneous open fails both handshakes)
// would wait out the swarm's backoff instead of the Connector's. Here the
// friend's address accepts TCP and hangs up, so each dial fails in its
// handshake, and the listener counts the dials that arrive.
func TestRedialNotHeldBySwarmBackoff(t *testing.T) {
	addr, accepted, err := hangUpListener(t, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	a := newPeer(t, "tcp")
	a.addWithAddrs(&testPeer{t: t, key: key}, []ma.Multiaddr{addr})
	waitFor(t, 10*time.Second, "A's Connector to fail 3 dials", func() bool { return a.conn.DialInfo(id).Failures >= 3 })
	if n := accepted.Load(); n < 3 {
		t.Fatalf("%d dials reached the friend's address after %d failed Connector dials: the swarm's backoff held the rest", n, a.conn.DialInfo(id).Failures)
	}
}

// hangUpListener listens on a TCP port of ip until the test ends and
// hangs up on every connection; it returns the address and the count of
// connections accepted.
func hangUpListener(t *testing.T, ip string) (ma.Multiaddr, *atomic.Int64, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { l.Close() })
	accepted := new(atomic.Int64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ma.StringCast("/ip4/" + ip + "/tcp/" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), accepted, nil
}

func TestRedialJitter(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 3, RedialMin, RedialMax} {
		for range 100 {
			if j := redialJitter(d); j < d*3/4 || j > d*5/4 {
				t.Fatalf("redialJitter(%v) = %v, want within [%v, %v]", d, j, d*3/4, d*5/4)
			}
		}
	}
}
