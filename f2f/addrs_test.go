package f2f

import (
	"net/netip"
	"slices"
	"strings"
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
	inviteAddrs := append(slices.Clone(m.host.Network().ListenAddresses()), harmless...)
	inviteAddrs = append(inviteAddrs, inviteHostile...)
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

// TestAddrPolicy: which addresses a node stores and dials, by where it
// listens and which networks its interfaces are on.
func TestAddrPolicy(t *testing.T) {
	_, friend := newKey(t)
	_, other := newKey(t)
	nets := func(ss ...string) func() []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return func() []netip.Prefix { return out }
	}
	onLoopback := &AddrPolicy{loopback: true, nets: nets("127.0.0.1/8")}
	atHome := &AddrPolicy{nets: nets("127.0.0.1/8", "192.168.1.10/24", "fd12:3456::7/64")}
	onTailnet := &AddrPolicy{nets: nets("100.101.102.103/32")}
	long := "/dns4/" + strings.Repeat("a", MaxAddrLen) + ".example/tcp/1"
	cases := []struct {
		addr                               string
		loopback, home, tailnet, nilPolicy bool
	}{
		{"/ip4/203.0.113.7/tcp/4001", true, true, true, true},
		{"/ip4/203.0.113.7/udp/4001/quic-v1", true, true, true, true},
		{"/ip6/2001:4860::8888/tcp/4001", true, true, true, true},
		{"/ip4/203.0.113.7/tcp/4001/p2p/" + friend.String(), true, true, true, true},
		{"/ip4/203.0.113.7/tcp/4001/p2p/" + other.String(), false, false, false, false},
		{"/dns4/example.org/tcp/4001", true, true, true, true},
		{"/ip4/127.0.0.1/tcp/4001", true, false, false, true},
		{"/ip6/::1/tcp/4001", true, false, false, true},
		{"/dns/localhost/tcp/22", true, false, false, true},
		{"/ip4/192.168.1.20/tcp/4001", false, true, false, true},
		{"/ip4/192.168.2.20/tcp/4001", false, false, false, true},
		{"/ip4/10.0.0.1/tcp/4001", false, false, false, true},
		{"/ip6/fd12:3456::9/tcp/4001", false, true, false, true},
		{"/ip6/fd99::9/tcp/4001", false, false, false, true},
		{"/ip4/100.64.1.2/tcp/4001", false, false, true, true},
		// never, wherever the node is
		{"/ip4/169.254.169.254/tcp/80", false, false, false, false},
		{"/ip4/169.254.3.4/tcp/4001", false, false, false, false},
		{"/ip6/fe80::1/tcp/4001", false, false, false, false},
		{"/ip6/fd00:ec2::254/tcp/80", false, false, false, false},
		{"/ip4/100.100.100.200/tcp/80", false, false, false, false},
		{"/ip6/::ffff:169.254.169.254/tcp/80", false, false, false, false},
		{"/ip6/64:ff9b::a9fe:a9fe/tcp/80", false, false, false, false}, // NAT64 of 169.254.169.254
		{"/ip4/0.0.0.0/tcp/4001", false, false, false, false},
		{"/ip6/::/tcp/4001", false, false, false, false},
		{"/ip4/0.1.2.3/tcp/4001", false, false, false, false},
		{"/ip4/224.0.0.251/udp/5353/quic-v1", false, false, false, false},
		{"/ip6/ff02::1/tcp/4001", false, false, false, false},
		{"/ip4/255.255.255.255/tcp/4001", false, false, false, false},
		{"/ip4/240.0.0.1/tcp/4001", false, false, false, false},
		{"/ip4/203.0.113.7/tcp/0", false, false, false, false},
		{"/ip4/203.0.113.7/udp/4001", false, false, false, false},
		{"/ip4/203.0.113.7/tcp/4001/ws", false, false, false, false},
		// circuit addresses: judged by the relay's address
		{"/ip4/203.0.113.7/tcp/4001/p2p/" + other.String() + "/p2p-circuit", true, true, true, true},
		{"/ip4/1.2.0.3/udp/4001/quic-v1/p2p/" + other.String() + "/p2p-circuit/p2p/" + friend.String(), true, true, true, true},
		{"/ip4/127.0.0.1/tcp/4001/p2p/" + other.String() + "/p2p-circuit", true, false, false, true},
		{"/ip4/192.168.1.20/tcp/4001/p2p/" + other.String() + "/p2p-circuit", false, true, false, true},
		{"/ip4/169.254.169.254/tcp/80/p2p/" + other.String() + "/p2p-circuit", false, false, false, false},
		{"/ip4/203.0.113.7/tcp/4001/p2p/" + friend.String() + "/p2p-circuit", false, false, false, false},                                                         // relayed by itself
		{"/ip4/203.0.113.7/tcp/4001/p2p/" + other.String() + "/p2p-circuit/p2p/" + other.String(), false, false, false, false},                                    // another peer's
		{"/ip4/203.0.113.7/tcp/4001/p2p-circuit", false, false, false, false},                                                                                     // no relay ID
		{"/ip4/203.0.113.7/tcp/4001/p2p/" + other.String() + "/p2p-circuit/ip4/1.2.3.4/tcp/1/p2p/" + other.String() + "/p2p-circuit", false, false, false, false}, // a chain
		{"/ip4/1.2.0.1/tcp/4001", true, true, true, true},                                                                                                         // public-looking test addresses (netns tests)
		{long, false, false, false, false},
	}
	for _, c := range cases {
		a, err := ma.NewMultiaddr(c.addr)
		if err != nil {
			t.Fatalf("%s: %v", c.addr, err)
		}
		for _, p := range []struct {
			name   string
			policy *AddrPolicy
			want   bool
		}{{"loopback", onLoopback, c.loopback}, {"home", atHome, c.home}, {"tailnet", onTailnet, c.tailnet}, {"nil", nil, c.nilPolicy}} {
			if got := p.policy.Allowed(friend, a); got != p.want {
				t.Errorf("%s policy, %s: allowed %v, want %v", p.name, c.addr, got, p.want)
			}
		}
	}
	// NewAddrPolicy: loopback only for an explicit loopback listen address.
	if !NewAddrPolicy(mustAddrs(t, "/ip4/127.0.0.1/tcp/0")).loopback {
		t.Error("a node on 127.0.0.1 may not dial loopback")
	}
	if NewAddrPolicy(mustAddrs(t, "/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/4001/quic-v1")).loopback {
		t.Error("a node on every interface may dial loopback")
	}
}

// TestUnconfirmedAddrsExpire: addresses a friend gave that never worked go
// after UnconfirmedAddrTTL or MaxUnconfirmedDials failed dials; the one
// that worked last stays, even when newer ones push the others out.
func TestUnconfirmedAddrsExpire(t *testing.T) {
	e := newFriendsEnv(t)
	now := time.Now()
	e.f.now = func() time.Time { return now }
	worked, stale, dialled := mustAddrs(t, "/ip4/203.0.113.1/tcp/1"), mustAddrs(t, "/ip4/203.0.113.2/tcp/2"), mustAddrs(t, "/ip4/203.0.113.3/tcp/3")
	ada := e.add("ada", slices.Concat(worked, stale)...)
	e.f.AddrWorked(ada.ID, worked[0])

	now = now.Add(UnconfirmedAddrTTL / 2)
	e.f.LearnAddrs(ada.ID, dialled)
	for range MaxUnconfirmedDials - 1 {
		e.f.DialFailed(ada.ID, slices.Concat(worked, dialled))
	}
	assertAddrs(t, e.mustGet(ada.ID).Addrs, slices.Concat(dialled, worked, stale))
	dropped := e.f.DialFailed(ada.ID, dialled)
	assertAddrs(t, dropped, dialled)
	assertAddrs(t, e.mustGet(ada.ID).Addrs, slices.Concat(worked, stale))

	now = now.Add(UnconfirmedAddrTTL/2 + time.Second)
	assertAddrs(t, e.f.ExpireAddrs()[ada.ID], stale)
	assertAddrs(t, e.mustGet(ada.ID).Addrs, worked)
	e.reopen()
	e.f.now = func() time.Time { return now }
	assertAddrs(t, e.mustGet(ada.ID).Addrs, worked)

	// A friend that floods us with addresses cannot push out the one that
	// worked.
	e.f.LearnAddrs(ada.ID, tcpAddrs(t, 1000, MaxStoredAddrs+4))
	got := e.mustGet(ada.ID).Addrs
	if len(got) != MaxStoredAddrs || !slices.ContainsFunc(got, worked[0].Equal) {
		t.Errorf("after a flood of addresses: %d stored, the one that worked kept: %v", len(got), slices.ContainsFunc(got, worked[0].Equal))
	}
	if e.f.ExpireAddrs()[ada.ID] != nil {
		t.Error("fresh addresses expired")
	}
}

// TestStoredAddrsFollowPolicy: a friend list with the policy of a node that
// listens on every interface stores no loopback or foreign private address
// of a friend.
func TestStoredAddrsFollowPolicy(t *testing.T) {
	e := newFriendsEnv(t)
	e.f.SetAddrPolicy(&AddrPolicy{nets: func() []netip.Prefix { return nil }})
	good := mustAddrs(t, "/ip4/203.0.113.1/tcp/1")
	bad := mustAddrs(t, "/ip4/127.0.0.1/tcp/22", "/ip4/10.1.1.1/tcp/80", "/ip4/169.254.169.254/tcp/80")
	ada := e.add("ada", slices.Concat(bad, good)...)
	assertAddrs(t, ada.Addrs, good)
	if e.f.LearnAddrs(ada.ID, bad) {
		t.Error("LearnAddrs took refused addresses as new")
	}
	e.f.SetOnline(ada.ID, true, bad)
	assertAddrs(t, e.mustGet(ada.ID).Addrs, good)
}
