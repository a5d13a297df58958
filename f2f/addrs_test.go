package f2f

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dialLog records the gater's verdict on every address a peer's host was
// about to dial. It refuses every address outside 127.0.0.0/8 whatever the
// verdict, so that no test dials beyond this machine.
type dialLog struct {
	mu      sync.Mutex
	allowed []ma.Multiaddr
	refused []ma.Multiaddr
}

func (l *dialLog) hook(g *Gater) {
	fn := func(_ peer.ID, a ma.Multiaddr, ok bool) bool {
		l.mu.Lock()
		if ok {
			l.allowed = append(l.allowed, a)
		} else {
			l.refused = append(l.refused, a)
		}
		l.mu.Unlock()
		return ok && isLoopbackAddr(a)
	}
	g.dialHook.Store(&fn)
}

func (l *dialLog) snapshot() (allowed, refused []ma.Multiaddr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.allowed), slices.Clone(l.refused)
}

func isLoopbackAddr(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	return err == nil && ip.IsLoopback()
}

// hostileAddrs are addresses a friend should not be able to make us dial
// (none of them is ever dialled: the dial log refuses them).
func hostileAddrs(t *testing.T, ss ...string) []ma.Multiaddr { return mustAddrs(t, ss...) }

// TestHostileAddressesNotStoredNorDialled: a friend's invite and its
// identify carry link-local, cloud metadata, multicast, broadcast,
// unspecified and foreign private addresses beside its real one. The node
// stores none of them and never asks to dial one; the loopback addresses
// (the node listens on loopback) are kept and dialled.
func TestHostileAddressesNotStoredNorDialled(t *testing.T) {
	inviteHostile := hostileAddrs(t,
		"/ip4/169.254.169.254/tcp/80",
		"/ip4/169.254.7.7/tcp/4001",
		"/ip6/fe80::1/tcp/4001",
		"/ip6/fd00:ec2::254/tcp/80",
		"/ip4/100.100.100.200/tcp/80",
		"/ip4/10.213.7.9/tcp/22",
		"/ip4/0.0.0.0/tcp/4001",
		"/ip4/224.0.0.1/tcp/4001",
		"/ip4/255.255.255.255/tcp/4001",
		"/ip6/ff02::1/tcp/4001",
	)
	identifyHostile := hostileAddrs(t,
		"/ip4/169.254.169.254/udp/80/quic-v1",
		"/ip4/192.168.213.1/tcp/8080",
		"/ip6/fe80::2/udp/4001/quic-v1",
		"/ip6/::ffff:169.254.169.254/tcp/80",
	)
	harmless := mustAddrs(t, "/ip4/127.0.0.2/tcp/1") // loopback, closed port
	identifyHarmless := mustAddrs(t, "/ip4/127.0.0.3/tcp/2")

	var log dialLog
	v := newPeerWith(t, "tcp", func(p *testPeer) { p.onGater = log.hook })
	m := newPeerWith(t, "tcp", func(p *testPeer) {
		p.extra = []libp2p.Option{libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			return append(append(addrs, identifyHostile...), identifyHarmless...)
		})}
	})
	m.add(v)
	var inviteAddrs []ma.Multiaddr
	for _, a := range m.host.Network().ListenAddresses() {
		inviteAddrs = append(inviteAddrs, a)
	}
	inviteAddrs = append(append(inviteAddrs, harmless...), inviteHostile...)
	v.addWithAddrs(m, inviteAddrs)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(v, m.id) && online(m, v.id) })
	waitFor(t, 5*time.Second, "identify's addresses to be stored", func() bool {
		fr, _ := v.friends.Get(m.id)
		return slices.ContainsFunc(fr.Addrs, identifyHarmless[0].Equal)
	})

	// M goes away: V redials it with everything it holds.
	dials := v.conn.Stats().Dials
	m.stop()
	waitFor(t, 10*time.Second, "V to redial M twice", func() bool { return v.conn.Stats().Dials >= dials+2 })

	fr, _ := v.friends.Get(m.id)
	t.Logf("stored: %v", fr.Addrs)
	for _, a := range slices.Concat(inviteHostile, identifyHostile) {
		if slices.ContainsFunc(fr.Addrs, a.Equal) {
			t.Errorf("stored hostile address %s", a)
		}
	}
	for _, a := range slices.Concat(harmless, identifyHarmless) {
		if !slices.ContainsFunc(fr.Addrs, a.Equal) {
			t.Errorf("loopback address %s not stored (the node listens on loopback)", a)
		}
	}
	allowed, refused := log.snapshot()
	t.Logf("dials allowed: %v; refused: %v", allowed, refused)
	for _, a := range allowed {
		if !isLoopbackAddr(a) {
			t.Errorf("the gater allowed a dial to %s", a)
		}
	}
	if !slices.ContainsFunc(allowed, harmless[0].Equal) {
		t.Errorf("the loopback address %s from the invite was never dialled", harmless[0])
	}
}
