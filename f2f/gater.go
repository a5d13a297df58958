package f2f

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Allowlist is what the Gater asks; Friends implements it.
type Allowlist interface {
	IsFriend(peer.ID) bool
}

// endpointList is an Allowlist that also knows its friends' addresses
// (Friends): inbound connections from them skip the per-IP handshake rate.
type endpointList interface {
	knownEndpoint(endpoint) bool
}

// Gater is a libp2p connection gater that admits only friends. Inbound
// connections are judged in InterceptSecured, right after the security
// handshake authenticated the remote key and before the muxer runs any
// protocol; outbound dials to non-friends are stopped before they start,
// and a friend's address is dialled only if the address policy allows it
// (addrs.go). Before the handshake, NewHost puts the Gater's admission in
// front of inbound connections (admission.go).
//
// Gaters are only asked about new connections: whoever removes a friend must
// also close its live connections (the Connector does).
type Gater struct {
	allow   Allowlist
	log     *slog.Logger
	adm     *admission
	policy  atomic.Pointer[AddrPolicy]
	refused atomic.Uint64
	// addrsRefused counts addresses of friends the policy kept us from
	// dialling.
	addrsRefused atomic.Uint64
	// dialHook, if set, sees every address dial verdict and may change it
	// (tests: record verdicts, never dial outside 127.0.0.0/8).
	dialHook atomic.Pointer[func(peer.ID, ma.Multiaddr, bool) bool]
	// intro, if set, holds the introduction tokens whose connections are
	// admitted inbound, restricted to IntroduceProtocol (introduce.go).
	intro atomic.Pointer[Introductions]
	// introAdmitted counts connections admitted with a token;
	// introStreamsRefused the streams such connections were refused.
	introAdmitted, introStreamsRefused atomic.Uint64
	// circuitOnly holds the friends whose direct addresses are not
	// dialled for now (Connector.connect: a node behind NAT reaches a
	// NATed friend through its relay first, then hole-punches).
	circuitOnly sync.Map // peer.ID -> struct{}
	// onlyAddr holds the friends that may be dialled at one address
	// only, while the Connector moves them from QUIC to TCP
	// (tcpupgrade.go).
	onlyAddr sync.Map // peer.ID -> ma.Multiaddr
	// relayedOK, if set, says through which relays inbound relayed
	// connections are taken (SetRelayedFilter).
	relayedOK atomic.Pointer[func(relay peer.ID) bool]
	// relayedRefused counts inbound relayed connections refused by it.
	relayedRefused atomic.Uint64
	// sendBuffers counts friends' TCP connections given TCPSendBuffer
	// (sockbuf.go).
	sendBuffers atomic.Uint64
}

// SetRelayedFilter makes the Gater take inbound relayed connections only
// through relays ok admits: a node that found itself directly reachable
// and dropped its reservations refuses what a relay still sends it on an
// old one, so friends dial it directly instead.
func (g *Gater) SetRelayedFilter(ok func(relay peer.ID) bool) { g.relayedOK.Store(&ok) }

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater that admits the peers allow admits. If allow is
// a *Friends, its friends' addresses are known endpoints to the admission.
func NewGater(allow Allowlist, log *slog.Logger) *Gater {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var known func(endpoint) bool
	if el, ok := allow.(endpointList); ok {
		known = el.knownEndpoint
	}
	return &Gater{allow: allow, log: log, adm: newAdmission(known, allow.IsFriend)}
}

// GaterStats counts what the Gater refused and admitted.
type GaterStats struct {
	// Refused counts peers refused: non-friends after the handshake and
	// dials to non-friends.
	Refused uint64
	// AddrsRefused counts friends' addresses the policy would not dial.
	AddrsRefused uint64
	// Admission counts inbound connections judged before the handshake.
	Admission AdmissionStats
	// IntroAdmitted counts inbound connections admitted with an
	// introduction token; IntroStreamsRefused the streams of other
	// protocols they were refused.
	IntroAdmitted, IntroStreamsRefused uint64
	// RelayedRefused counts inbound relayed connections refused because
	// we are directly reachable.
	RelayedRefused uint64
	// SendBuffers counts friends' TCP connections given a send buffer
	// of TCPSendBuffer (sockbuf.go); 0 where the kernel's autotuning
	// stays.
	SendBuffers uint64
}

// Refused counts the connections and dials refused so far.
func (g *Gater) Refused() uint64 { return g.refused.Load() }

// Stats returns the Gater's counters.
func (g *Gater) Stats() GaterStats {
	return GaterStats{Refused: g.refused.Load(), AddrsRefused: g.addrsRefused.Load(), Admission: g.adm.stats(),
		IntroAdmitted: g.introAdmitted.Load(), IntroStreamsRefused: g.introStreamsRefused.Load(), RelayedRefused: g.relayedRefused.Load(),
		SendBuffers: g.sendBuffers.Load()}
}

// setPolicy sets the address policy of dials (NewHost: the host's).
func (g *Gater) setPolicy(p *AddrPolicy) { g.policy.Store(p) }

func (g *Gater) admit(p peer.ID, dir string) bool {
	if g.allow.IsFriend(p) {
		return true
	}
	g.refused.Add(1)
	g.log.Debug("refused non-friend", slog.String("peer", p.ShortString()), slog.String("dir", dir))
	return false
}

// InterceptPeerDial refuses outbound dials to non-friends.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return g.admit(p, "dial") }

// InterceptAddrDial refuses outbound dials to non-friends, and to any
// address of a friend the address policy refuses (libp2p has resolved DNS
// names by then).
func (g *Gater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	ok := g.allow.IsFriend(p)
	if _, only := g.circuitOnly.Load(p); ok && only && !isCircuit(a) {
		return false
	}
	if only, set := g.onlyAddr.Load(p); ok && set && !a.Equal(only.(ma.Multiaddr)) {
		return false
	}
	if ok && !g.policy.Load().Allowed(p, a) {
		ok = false
		g.addrsRefused.Add(1)
		g.log.Debug("not dialling a friend's address", slog.String("peer", p.ShortString()), slog.String("addr", a.String()))
	}
	if h := g.dialHook.Load(); h != nil {
		ok = (*h)(p, a, ok)
	}
	return ok
}

// InterceptAccept lets raw inbound connections through (but relayed ones
// SetRelayedFilter refuses): the remote key is not known until the
// security handshake, and the handshake rate is enforced for TCP and
// QUIC alike in the resource manager (admission.go).
func (g *Gater) InterceptAccept(cma network.ConnMultiaddrs) bool {
	if fn := g.relayedOK.Load(); fn != nil && isCircuit(cma.RemoteMultiaddr()) && !(*fn)(CircuitRelay(cma.RemoteMultiaddr())) {
		g.relayedRefused.Add(1)
		g.log.Debug("refused a relayed connection: we are directly reachable", slog.String("via", cma.RemoteMultiaddr().String()))
		return false
	}
	return true
}

// InterceptSecured admits only friends, in both directions, after the
// handshake and before any protocol. A friend's inbound endpoint is
// remembered, so that it gets back in past the handshake rate.
func (g *Gater) InterceptSecured(dir network.Direction, p peer.ID, cma network.ConnMultiaddrs) bool {
	if dir == network.DirInbound && !g.allow.IsFriend(p) && g.introOpen(p) {
		g.introAdmitted.Add(1)
		g.log.Debug("admitted an introduction token", slog.String("token", p.ShortString()))
		return true
	}
	if !g.admit(p, dir.String()) {
		return false
	}
	if dir == network.DirInbound && !isCircuit(cma.RemoteMultiaddr()) {
		g.adm.remember(cma.RemoteMultiaddr())
	}
	g.tuneFriendSocket(cma)
	return true
}

// InterceptUpgraded admits every connection that passed InterceptSecured.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// introOpen reports whether p is an open introduction token.
func (g *Gater) introOpen(p peer.ID) bool {
	in := g.intro.Load()
	return in != nil && in.open(p)
}

// restricted reports whether p's connections may open only
// IntroduceProtocol: an introduction token, not a friend.
func (g *Gater) restricted(p peer.ID) bool {
	in := g.intro.Load()
	return in != nil && !g.allow.IsFriend(p) && in.known(p)
}

// dialCircuitsOnly makes dials of the friend p use its circuit addresses
// only, until the returned function is called.
func (g *Gater) dialCircuitsOnly(p peer.ID) func() {
	g.circuitOnly.Store(p, struct{}{})
	return func() { g.circuitOnly.Delete(p) }
}

// dialOnly makes dials of the friend p use the address a only, until the
// returned function is called.
func (g *Gater) dialOnly(p peer.ID, a ma.Multiaddr) func() {
	g.onlyAddr.Store(p, a)
	return func() { g.onlyAddr.Delete(p) }
}
