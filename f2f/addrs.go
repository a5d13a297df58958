package f2f

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A friend chooses the addresses it gives us (in its invite, in identify,
// through the DHT), and the node dials them. Unfiltered, that lets a friend
// make the node connect to services on its own machine or LAN, or to
// link-local and cloud metadata addresses. AddrPolicy is the one rule for
// which addresses of a friend are stored and dialled: the Friends store
// applies it to everything it is told, the Gater to every address libp2p is
// about to dial (after DNS names are resolved), the friends DHT to every
// address it puts in the peerstore.

// metadataAddrs are cloud instance metadata services: AWS, GCP, Azure and
// others on 169.254.169.254 (link-local anyway), AWS over IPv6 on
// fd00:ec2::254, Alibaba on 100.100.100.200 (inside the shared CGNAT
// range, so it needs naming).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

// Address ranges the policy treats apart from the public Internet.
var (
	cgnatRange   = netip.MustParsePrefix("100.64.0.0/10")
	privateV4    = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}
	ulaRange     = netip.MustParsePrefix("fc00::/7")
	siteLocal    = netip.MustParsePrefix("fec0::/10")
	nat64Range   = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local   = netip.MustParsePrefix("64:ff9b:1::/48")
	thisNetwork  = netip.MustParsePrefix("0.0.0.0/8")
	reservedV4   = netip.MustParsePrefix("240.0.0.0/4") // with 255.255.255.255, the broadcast address
	discardV6    = netip.MustParsePrefix("100::/64")
	documentedV6 = netip.MustParsePrefix("2001:db8::/32")
)

// AddrPolicy says which addresses of friends the node stores and dials:
//
//   - only IP (or DNS name) with TCP, or UDP with QUIC v1, a port that is
//     not 0, at most MaxAddrLen bytes, and no peer ID but the friend's;
//   - never link-local, cloud metadata, unspecified, multicast, broadcast
//     or reserved addresses;
//   - loopback only when the node itself listens on a loopback address
//     (tests, the demo); a node listening on every interface does not;
//   - private ranges (RFC 1918, IPv6 ULA, CGNAT 100.64/10) only when one of
//     the node's own interface addresses is in the same network (for
//     CGNAT, which tailnets use whole: any address in it).
//
// DNS names pass (other than localhost, under the loopback rule): libp2p
// resolves them before it asks the Gater, which judges the addresses they
// resolve to. A nil *AddrPolicy applies only the first two rules. It is
// safe for concurrent use.
type AddrPolicy struct {
	loopback bool
	// nets returns the node's interface networks (tests replace it).
	nets func() []netip.Prefix
}

// NewAddrPolicy returns the policy of a node listening on listen.
func NewAddrPolicy(listen []ma.Multiaddr) *AddrPolicy {
	p := &AddrPolicy{nets: interfaceNets}
	for _, a := range listen {
		if ip, ok := addrIP(a); ok && ip.IsLoopback() {
			p.loopback = true
		}
	}
	return p
}

// Allowed reports whether the node may store and dial a, an address of
// the friend id (id may be empty when unknown).
//
// A circuit address (RELAY-ADDR/p2p/RELAY/p2p-circuit, optionally
// followed by /p2p/ID) is judged by its relay's address: it must pass as
// an address of RELAY, which must not be id itself, and it names one hop
// only. Whether RELAY is a friend is the Gater's question when libp2p
// dials it (only friends relay for friends).
func (p *AddrPolicy) Allowed(id peer.ID, a ma.Multiaddr) bool {
	if a == nil || len(a.Bytes()) > MaxAddrLen {
		return false
	}
	if relayAddr, relay, ok := splitCircuit(id, a); ok {
		return relay != id && p.Allowed(relay, relayAddr)
	} else if isCircuit(a) {
		return false
	}
	host, ok := splitAddr(id, a)
	if !ok {
		return false
	}
	switch host.Code() {
	case ma.P_IP4, ma.P_IP6:
		ip, err := netip.ParseAddr(host.Value())
		if err != nil {
			return false
		}
		return p.ipAllowed(ip)
	default: // a DNS name
		name := strings.ToLower(strings.TrimSuffix(host.Value(), "."))
		if name == "localhost" || strings.HasSuffix(name, ".localhost") {
			return p == nil || p.loopback
		}
		return name != ""
	}
}

// Filter returns the addresses of addrs that Allowed admits, in order.
func (p *AddrPolicy) Filter(id peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if p.Allowed(id, a) {
			out = append(out, a)
		}
	}
	return out
}

func (p *AddrPolicy) ipAllowed(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if nat64Range.Contains(ip) { // judge the IPv4 address it carries
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(),
		ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return false
	case thisNetwork.Contains(ip), reservedV4.Contains(ip), siteLocal.Contains(ip), nat64Local.Contains(ip),
		discardV6.Contains(ip), documentedV6.Contains(ip):
		return false
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return false
		}
	}
	if ip.IsLoopback() {
		return p == nil || p.loopback
	}
	if cgnatRange.Contains(ip) {
		return p == nil || p.sharesNet(ip, true)
	}
	if ulaRange.Contains(ip) {
		return p == nil || p.sharesNet(ip, false)
	}
	for _, r := range privateV4 {
		if r.Contains(ip) {
			return p == nil || p.sharesNet(ip, false)
		}
	}
	return true
}

// sharesNet reports whether one of our interface networks holds ip (for
// CGNAT: whether any interface address is in the CGNAT range).
func (p *AddrPolicy) sharesNet(ip netip.Addr, cgnat bool) bool {
	for _, n := range p.nets() {
		if cgnat && cgnatRange.Contains(n.Addr()) {
			return true
		}
		if n.Masked().Contains(ip) {
			return true
		}
	}
	return false
}

// isCircuit reports whether a holds a /p2p-circuit component.
func isCircuit(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}

// IsCircuitAddr reports whether a is a relayed (circuit) address.
func IsCircuitAddr(a ma.Multiaddr) bool { return isCircuit(a) }

// splitCircuit splits a circuit address of id into the relay's address
// (with /p2p/RELAY) and the relay's ID. It fails on anything but exactly
// RELAY-ADDR/p2p/RELAY/p2p-circuit[/p2p/id].
func splitCircuit(id peer.ID, a ma.Multiaddr) (ma.Multiaddr, peer.ID, bool) {
	comps := []ma.Component(a)
	i := slices.IndexFunc(comps, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
	if i < 2 || comps[i-1].Code() != ma.P_P2P {
		return nil, "", false
	}
	switch rest := comps[i+1:]; {
	case len(rest) == 0:
	case len(rest) == 1 && rest[0].Code() == ma.P_P2P && (id == "" || rest[0].Value() == id.String()):
	default:
		return nil, "", false
	}
	relay, err := peer.Decode(comps[i-1].Value())
	if err != nil {
		return nil, "", false
	}
	return ma.Multiaddr(slices.Clone(comps[:i])), relay, true
}

// CircuitRelay returns the relay of a circuit address, or "" if a is not one.
func CircuitRelay(a ma.Multiaddr) peer.ID {
	_, relay, ok := splitCircuit("", a)
	if !ok {
		return ""
	}
	return relay
}

// splitAddr checks that a is host/transport[/p2p/id] with a transport kith
// dials, and returns its host component.
func splitAddr(id peer.ID, a ma.Multiaddr) (ma.Component, bool) {
	comps := []ma.Component(a)
	if n := len(comps); n > 0 && comps[n-1].Code() == ma.P_P2P {
		if id != "" && comps[n-1].Value() != id.String() {
			return ma.Component{}, false
		}
		comps = comps[:n-1]
	}
	if len(comps) < 2 {
		return ma.Component{}, false
	}
	switch comps[0].Code() {
	case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
	default:
		return ma.Component{}, false
	}
	if comps[1].Value() == "0" {
		return ma.Component{}, false
	}
	switch {
	case len(comps) == 2 && comps[1].Code() == ma.P_TCP:
	case len(comps) == 3 && comps[1].Code() == ma.P_UDP && comps[2].Code() == ma.P_QUIC_V1:
	default:
		return ma.Component{}, false
	}
	return comps[0], true
}

// addrIP returns the IP of an /ip4 or /ip6 address.
func addrIP(a ma.Multiaddr) (netip.Addr, bool) {
	if len(a) == 0 || (a[0].Code() != ma.P_IP4 && a[0].Code() != ma.P_IP6) {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(a[0].Value())
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// endpoint is an IP, a port and whether it is UDP: where a connection
// comes from, or an address of a friend.
type endpoint struct {
	ip   netip.Addr
	port uint16
	udp  bool
}

// addrEndpoint returns the endpoint of an IP address with TCP or UDP.
// A circuit address has none (its first components are the relay's).
func addrEndpoint(a ma.Multiaddr) (endpoint, bool) {
	ip, ok := addrIP(a)
	if !ok || len(a) < 2 || isCircuit(a) {
		return endpoint{}, false
	}
	var e endpoint
	switch a[1].Code() {
	case ma.P_TCP:
	case ma.P_UDP:
		e.udp = true
	default:
		return endpoint{}, false
	}
	port, err := netip.ParseAddrPort("0.0.0.0:" + a[1].Value())
	if err != nil {
		return endpoint{}, false
	}
	e.ip, e.port = ip, port.Port()
	return e, true
}

// stripPeer returns a without a trailing /p2p component.
func stripPeer(a ma.Multiaddr) ma.Multiaddr {
	if n := len(a); n > 0 && a[n-1].Code() == ma.P_P2P {
		return a[:n-1]
	}
	return a
}

// The node's interface networks, cached for InterfaceRefresh: one copy for
// every policy of the process.
var ifaces struct {
	mu   sync.Mutex
	at   time.Time
	nets []netip.Prefix
}

func interfaceNets() []netip.Prefix {
	ifaces.mu.Lock()
	defer ifaces.mu.Unlock()
	if !ifaces.at.IsZero() && time.Since(ifaces.at) < InterfaceRefresh {
		return ifaces.nets
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ifaces.nets // keep what we had
	}
	var nets []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, total := ipn.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && total == 128 {
			ones -= 96
		}
		if p := netip.PrefixFrom(ip, ones); p.IsValid() {
			nets = append(nets, p)
		}
	}
	ifaces.nets, ifaces.at = nets, time.Now()
	return nets
}
