package f2f

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// advertiser decides the addresses the node gives friends: in identify,
// in the friends DHT's answers about itself, in invites and on mDNS. It is
// libp2p's address factory, so everything that asks the host for its
// addresses gets them:
//
//   - the interface addresses of the listen addresses, read afresh every
//     AdvertiseRefresh (libp2p caches its own for a minute, which leaves a
//     node that moved advertising its old address);
//   - the port mappings of UPnP / NAT-PMP;
//   - the addresses given with --announce (a forwarded port, a static
//     address);
//   - addresses observed by friends that friends agree on or that a
//     friend's dial-back confirmed (Reach);
//   - circuit addresses through the friends holding a reservation for us
//     (Reservations);
//
// never a loopback address when there is any other, never IPv6
// link-local or unspecified ones.
type advertiser struct {
	mu       sync.Mutex
	net      network.Network // set once the host exists
	announce []ma.Multiaddr
	extra    []func() []ma.Multiaddr // reach's adopted, reservations' circuits
	// ifaceIPs are every IP seen on an interface, so that addresses libp2p
	// derived from its stale interface cache can be told from mappings.
	ifaceIPs map[netip.Addr]bool
	cacheAt  time.Time
	ifaces   []ma.Multiaddr
	now      func() time.Time
}

func newAdvertiser(announce []ma.Multiaddr) *advertiser {
	return &advertiser{announce: slices.Clone(announce), ifaceIPs: map[netip.Addr]bool{}, now: time.Now}
}

// setNetwork gives the advertiser the host's network, for its listen
// addresses.
func (a *advertiser) setNetwork(n network.Network) {
	a.mu.Lock()
	a.net = n
	a.mu.Unlock()
}

// addSource adds a source of addresses to advertise.
func (a *advertiser) addSource(fn func() []ma.Multiaddr) {
	a.mu.Lock()
	a.extra = append(a.extra, fn)
	a.mu.Unlock()
}

// Announced returns the addresses given with --announce.
func (a *advertiser) Announced() []ma.Multiaddr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.announce)
}

// interfaceAddrs returns the interface addresses of the listen addresses,
// cached for AdvertiseRefresh. The caller holds a.mu.
func (a *advertiser) interfaceAddrsLocked() []ma.Multiaddr {
	now := a.now()
	if !a.cacheAt.IsZero() && now.Sub(a.cacheAt) < AdvertiseRefresh {
		return a.ifaces
	}
	all, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return a.ifaces
	}
	all = slices.DeleteFunc(all, manet.IsIP6LinkLocal)
	if len(a.ifaceIPs) > 4*MaxStoredAddrs { // a node that moved a lot
		clear(a.ifaceIPs)
	}
	for _, x := range all {
		if ip, ok := addrIP(x); ok {
			a.ifaceIPs[ip] = true
		}
	}
	var out []ma.Multiaddr
	if a.net != nil {
		if res, err := manet.ResolveUnspecifiedAddresses(a.net.ListenAddresses(), all); err == nil {
			out = res
		}
	}
	a.ifaces, a.cacheAt = out, now
	return out
}

// factory is the host's address factory (libp2p.AddrsFactory).
func (a *advertiser) factory(in []ma.Multiaddr) []ma.Multiaddr {
	a.mu.Lock()
	var out []ma.Multiaddr
	if a.net != nil {
		out = append(out, a.interfaceAddrsLocked()...)
		// What libp2p adds beyond interface addresses: port mappings and
		// addresses its observers agreed on. What it derived from
		// interfaces is replaced by the fresh list above.
		for _, x := range in {
			ip, ok := addrIP(x)
			if isCircuit(x) || (ok && a.ifaceIPs[ip]) {
				continue
			}
			out = append(out, x)
		}
	} else {
		out = append(out, in...)
	}
	out = append(out, a.announce...)
	extra := slices.Clone(a.extra)
	a.mu.Unlock()
	for _, fn := range extra {
		out = append(out, fn()...)
	}
	return cleanAdvertised(out)
}

// cleanAdvertised drops loopback addresses when there is anything else,
// IPv6 link-local and unspecified ones, and duplicates.
func cleanAdvertised(addrs []ma.Multiaddr) []ma.Multiaddr {
	direct := func(x ma.Multiaddr) bool {
		if _, ok := addrIP(x); !ok && (len(x) == 0 || x[0].Code() == ma.P_CIRCUIT) {
			return false // "/p2p-circuit", the relay transport's listen address
		}
		return !isCircuit(x)
	}
	onlyLoopback := true
	for _, x := range addrs {
		if direct(x) && !manet.IsIPLoopback(x) {
			onlyLoopback = false
			break
		}
	}
	out := slices.DeleteFunc(slices.Clone(addrs), func(x ma.Multiaddr) bool {
		if len(x) == 0 || x[0].Code() == ma.P_CIRCUIT {
			return true
		}
		if isCircuit(x) {
			return false
		}
		return manet.IsIP6LinkLocal(x) || manet.IsIPUnspecified(x) || (!onlyLoopback && manet.IsIPLoopback(x))
	})
	return ma.Unique(out)
}

// natWatch is libp2p's NAT port mapper (UPnP IGD, NAT-PMP), kept where
// the node can ask what it mapped.
type natWatch struct {
	mu  sync.Mutex
	mgr basichost.NATManager
	net network.Network
}

func (w *natWatch) construct(n network.Network) basichost.NATManager {
	m := basichost.NewNATManager(n)
	w.mu.Lock()
	w.mgr, w.net = m, n
	w.mu.Unlock()
	return m
}

// PortMapping says what UPnP / NAT-PMP did.
type PortMapping struct {
	// Enabled is false when port mapping is off (--no-port-map, or a
	// node that listens on loopback only).
	Enabled bool `json:"enabled"`
	// Gateway is true once a UPnP or NAT-PMP gateway was found.
	Gateway bool `json:"gateway"`
	// Mapped are the external addresses the gateway maps to us.
	Mapped []string `json:"mapped,omitempty"`
}

func (w *natWatch) state() PortMapping {
	if w == nil {
		return PortMapping{}
	}
	w.mu.Lock()
	mgr, n := w.mgr, w.net
	w.mu.Unlock()
	st := PortMapping{Enabled: true}
	if mgr == nil || !mgr.HasDiscoveredNAT() {
		return st
	}
	st.Gateway = true
	for _, l := range n.ListenAddresses() {
		if m := mgr.GetMapping(l); m != nil {
			st.Mapped = append(st.Mapped, m.String())
		}
	}
	slices.Sort(st.Mapped)
	st.Mapped = slices.Compact(st.Mapped)
	return st
}

// mapped returns the external addresses the gateway maps to us.
func (w *natWatch) mapped() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range w.state().Mapped {
		if a, err := ma.NewMultiaddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}
