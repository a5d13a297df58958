package f2f

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"kith/internal/seen"
)

// errNotAdmitted is what the resource manager answers for an inbound
// connection the admission refused.
var errNotAdmitted = errors.New("inbound connection over the handshake rate")

// admission bounds the work inbound connections can cause before the
// security handshake tells a friend from a stranger. It runs in the
// resource manager's OpenConnection, which libp2p calls for every inbound
// connection before any handshake: for TCP right after accept (after the
// Gater's InterceptAccept), for QUIC when the first Initial packet
// arrives, before quic-go does any cryptography (its ConnContext hook).
//
// A connection from a known friend endpoint (the IP and port of a stored
// address of a friend, or of a friend's earlier inbound connection) draws
// on one shared bucket (KnownHandshakeRate). Any other connection needs a
// token from its IP's bucket (HandshakeRatePerIP, IPv6 by /56) and from
// the bucket of all such connections (HandshakeRate). Loopback is not
// exempt, unlike libp2p's own limiter, which kith replaces: a friend on
// the same IP as a flood still gets in from its own endpoint. Over QUIC a
// known endpoint must first answer a Retry (see verifySource), so a
// spoofed source address cannot use it. It is safe for concurrent use.
type admission struct {
	known    func(endpoint) bool // stored friend addresses; may be nil
	isFriend func(peer.ID) bool  // the relays of relayed connections; may be nil

	mu       sync.Mutex
	global   *rate.Limiter
	friends  *rate.Limiter
	perIP    map[netip.Prefix]*rate.Limiter
	pruneAt  int
	observed *seen.Set[endpoint] // friends' past inbound endpoints

	admittedKnown, admittedRelayed, admitted, refused atomic.Uint64
}

func newAdmission(known func(endpoint) bool, isFriend func(peer.ID) bool) *admission {
	return &admission{
		known:    known,
		isFriend: isFriend,
		global:   rate.NewLimiter(HandshakeRate, HandshakeBurst),
		friends:  rate.NewLimiter(KnownHandshakeRate, KnownHandshakeBurst),
		perIP:    map[netip.Prefix]*rate.Limiter{},
		pruneAt:  256,
		observed: seen.New[endpoint](MaxKnownEndpoints, KnownEndpointTTL),
	}
}

// sourceKey is the bucket of an IP: the address itself for IPv4, its /56
// for IPv6 (one subscriber's allocation).
func sourceKey(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 56
	}
	p, _ := ip.Prefix(bits)
	return p
}

// allow decides on an inbound connection from remote. A relayed
// connection comes through a friend's relay (the relay's own gater
// admitted both ends' connections to it), so it draws on the bucket of
// known friend endpoints; one through a relay that is not a friend is
// refused before its handshake.
func (a *admission) allow(remote ma.Multiaddr) bool {
	now := time.Now()
	if isCircuit(remote) {
		if relay := CircuitRelay(remote); relay == "" || a.isFriend == nil || !a.isFriend(relay) {
			a.refused.Add(1)
			return false
		}
		a.mu.Lock()
		ok := a.friends.AllowN(now, 1)
		a.mu.Unlock()
		if !ok {
			a.refused.Add(1)
			return false
		}
		a.admittedRelayed.Add(1)
		return true
	}
	e, ok := addrEndpoint(remote)
	if !ok {
		a.refused.Add(1)
		return false
	}
	if a.isKnown(e, now) {
		a.mu.Lock()
		ok := a.friends.AllowN(now, 1)
		a.mu.Unlock()
		if !ok {
			a.refused.Add(1)
			return false
		}
		a.admittedKnown.Add(1)
		return true
	}
	key := sourceKey(e.ip)
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := a.perIP[key]
	// Peek at the IP's bucket first, so that a refused connection takes
	// no token from the global one.
	if lim != nil && lim.TokensAt(now) < 1 {
		a.refused.Add(1)
		return false
	}
	if lim == nil && len(a.perIP) >= a.pruneAt {
		a.prune(now)
	}
	if (lim == nil && len(a.perIP) >= MaxTrackedSources) || !a.global.AllowN(now, 1) {
		a.refused.Add(1)
		return false
	}
	if lim == nil {
		lim = rate.NewLimiter(HandshakeRatePerIP, HandshakeBurstPerIP)
		a.perIP[key] = lim
	}
	lim.AllowN(now, 1)
	a.admitted.Add(1)
	return true
}

// prune drops the buckets that are full again: a full bucket is the same
// as none. The caller holds a.mu.
func (a *admission) prune(now time.Time) {
	for k, lim := range a.perIP {
		if lim.TokensAt(now) >= HandshakeBurstPerIP {
			delete(a.perIP, k)
		}
	}
	a.pruneAt = max(256, 2*len(a.perIP))
}

func (a *admission) isKnown(e endpoint, now time.Time) bool {
	if a.known != nil && a.known(e) {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observed.Expire(now)
	return a.observed.Has(e)
}

// remember records the remote endpoint of a friend's inbound connection,
// so that the friend coming back from it skips the per-IP buckets.
func (a *admission) remember(remote ma.Multiaddr) {
	e, ok := addrEndpoint(remote)
	if !ok {
		return
	}
	a.mu.Lock()
	a.observed.Add(e, time.Now())
	a.mu.Unlock()
}

// verifySource tells QUIC to make a source prove its address with a Retry
// before the handshake: always for a known friend endpoint (which skips
// the rate limits, so it must not be spoofable).
func (a *admission) verifySource(addr net.Addr) bool {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	ap := u.AddrPort()
	return a.isKnown(endpoint{ip: ap.Addr().Unmap(), port: ap.Port(), udp: true}, time.Now())
}

// AdmissionStats counts the inbound connections judged before the
// security handshake.
type AdmissionStats struct {
	// AdmittedKnown came from known friend endpoints.
	AdmittedKnown uint64
	// AdmittedRelayed came through a friend's relay.
	AdmittedRelayed uint64
	// Admitted came from other sources, within the handshake rates.
	Admitted uint64
	// Refused were closed before any handshake.
	Refused uint64
}

func (a *admission) stats() AdmissionStats {
	return AdmissionStats{AdmittedKnown: a.admittedKnown.Load(), AdmittedRelayed: a.admittedRelayed.Load(), Admitted: a.admitted.Load(), Refused: a.refused.Load()}
}

// admittingRcmgr is the host's resource manager with the admission in
// front of inbound connections, and the stream restriction of
// introduction tokens.
type admittingRcmgr struct {
	network.ResourceManager
	adm *admission
	g   *Gater
}

// OpenStream gives the streams of an introduction token's connection a
// scope that admits IntroduceProtocol only.
func (r admittingRcmgr) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	s, err := r.ResourceManager.OpenStream(p, dir)
	if err != nil || r.g == nil || !r.g.restricted(p) {
		return s, err
	}
	return introScope{StreamManagementScope: s, refused: &r.g.introStreamsRefused}, nil
}

// OpenConnection refuses an inbound connection the admission refuses,
// before libp2p starts its handshake.
func (r admittingRcmgr) OpenConnection(dir network.Direction, usefd bool, remote ma.Multiaddr) (network.ConnManagementScope, error) {
	if dir == network.DirInbound && !r.adm.allow(remote) {
		return nil, errNotAdmitted
	}
	return r.ResourceManager.OpenConnection(dir, usefd, remote)
}

// VerifySourceAddress asks QUIC for a Retry from known friend endpoints,
// and from others when libp2p's resource manager would.
func (r admittingRcmgr) VerifySourceAddress(addr net.Addr) bool {
	return r.adm.verifySource(addr) || r.ResourceManager.VerifySourceAddress(addr)
}
