package f2f

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	xrate "github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
)

// HostConfig says how to build the libp2p host of a node.
type HostConfig struct {
	Key         crypto.PrivKey
	ListenAddrs []string // multiaddrs; TCP and QUIC
	Gater       *Gater
	// ProtocolPeerStreams caps, per protocol, the streams one peer may
	// have open with us at once in each direction (resource manager
	// ProtocolPeer limits): the node passes the caps the other packages
	// export. f2f's own protocols have caps of their own
	// (KadStreamsPerPeer, LookupStreamsPerPeer), which an entry here
	// replaces.
	ProtocolPeerStreams map[protocol.ID]int
	// Traversal, if set, makes the host reachable through NATs: it
	// advertises what Traversal gathers, maps ports with UPnP / NAT-PMP
	// (PortMap), and hole-punches with friends (DCUtR). Without it the
	// host still dials and accepts relayed connections (friends relay for
	// friends) but advertises only its interface addresses.
	Traversal *Traversal
	// PortMap asks a UPnP IGD / NAT-PMP gateway for port mappings (with
	// Traversal; never when every listen address is loopback, so tests
	// and the demo send nothing to the LAN).
	PortMap bool
	// Metrics, if set, is where libp2p registers its own Prometheus
	// metrics (resource manager, swarm, identify, relay, hole punching);
	// nil switches them off (tests, the simulator).
	Metrics prometheus.Registerer
	// Bandwidth, if set, counts the bytes of every stream by protocol and
	// peer.
	Bandwidth *metrics.BandwidthCounter
	// Extra options are appended last (tests, the simulator).
	Extra []libp2p.Option
}

// NewResourceManager builds libp2p's resource manager with kith's explicit
// limits on top of the auto-scaled defaults: every peer is a friend, so the
// per-peer caps are generous but finite. protoStreams are per-protocol
// per-peer stream caps (see HostConfig.ProtocolPeerStreams).
func NewResourceManager(protoStreams map[protocol.ID]int, opts ...rcmgr.Option) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	return newResourceManager(limits.AutoScale(), protoStreams, opts...)
}

// ownProtocolStreams are the per-peer stream caps of f2f's protocols.
func ownProtocolStreams() map[protocol.ID]int {
	return map[protocol.ID]int{DHTProtocol: KadStreamsPerPeer, LookupProtocol: LookupStreamsPerPeer}
}

// resourceLimits puts kith's limits over base, libp2p's defaults scaled
// to the machine. Stream limits are fixed, not scaled: libp2p's scaled
// defaults would let a small machine relay fewer tunnels than the router
// admits (a relayed tunnel is an inbound and an outbound stream of one
// protocol).
func resourceLimits(base rcmgr.ConcreteLimitConfig, protoStreams map[protocol.ID]int) rcmgr.ConcreteLimitConfig {
	streams := rcmgr.ResourceLimits{
		Streams:         rcmgr.LimitVal(MaxStreams),
		StreamsInbound:  rcmgr.LimitVal(MaxStreams),
		StreamsOutbound: rcmgr.LimitVal(MaxStreams),
	}
	perPeer := rcmgr.ResourceLimits{
		Streams:         rcmgr.LimitVal(StreamsPerPeer),
		StreamsInbound:  rcmgr.LimitVal(InboundStreamsPerPeer),
		StreamsOutbound: rcmgr.LimitVal(StreamsPerPeer),
	}
	// kith's services (services.go) are capped by their packages' own
	// limits and the peer and host scopes: the service scopes add no
	// tighter memory limit than those (libp2p's default per-service-peer
	// memory is smaller than what one friend's share streams reserve).
	service, servicePeer := streams, perPeer
	service.Memory = rcmgr.LimitVal64(HostMemory)
	servicePeer.Memory = rcmgr.LimitVal64(PeerMemory)
	// Nor do the protocol scopes (libp2p's default of 16 MiB per protocol
	// per peer holds every yamux window of one friend's share streams, or
	// of all the tunnels through one friend, to 8 MiB together: yamux
	// grows a window only while each scope is at most half full).
	perPeer.Memory = rcmgr.LimitVal64(PeerMemory)
	transient := streams
	transient.Memory = rcmgr.LimitVal64(TransientMemory)
	protoPeer := map[protocol.ID]rcmgr.ResourceLimits{}
	for _, caps := range []map[protocol.ID]int{ownProtocolStreams(), protoStreams} {
		for pid, n := range caps {
			protoPeer[pid] = rcmgr.ResourceLimits{
				Streams:         rcmgr.LimitVal(2 * n),
				StreamsInbound:  rcmgr.LimitVal(n),
				StreamsOutbound: rcmgr.LimitVal(n),
				Memory:          perPeer.Memory,
			}
		}
	}
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(MaxConns),
			Memory:          rcmgr.LimitVal64(HostMemory),
			Streams:         streams.Streams,
			StreamsInbound:  streams.StreamsInbound,
			StreamsOutbound: streams.StreamsOutbound,
		},
		Transient:           transient,
		Stream:              rcmgr.ResourceLimits{Memory: rcmgr.LimitVal64(StreamMemory)},
		ProtocolPeer:        protoPeer,
		ProtocolDefault:     streams,
		ServiceDefault:      service,
		ProtocolPeerDefault: perPeer,
		ServicePeerDefault:  servicePeer,
		PeerDefault: rcmgr.ResourceLimits{
			Streams:         rcmgr.LimitVal(StreamsPerPeer),
			StreamsInbound:  rcmgr.LimitVal(InboundStreamsPerPeer),
			StreamsOutbound: rcmgr.LimitVal(StreamsPerPeer),
			Conns:           rcmgr.LimitVal(ConnsPerPeer),
			ConnsInbound:    rcmgr.LimitVal(ConnsPerPeer),
			ConnsOutbound:   rcmgr.LimitVal(ConnsPerPeer),
			Memory:          rcmgr.LimitVal64(PeerMemory),
		},
	}
	return cfg.Build(base)
}

func newResourceManager(base rcmgr.ConcreteLimitConfig, protoStreams map[protocol.ID]int, opts ...rcmgr.Option) (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(base, protoStreams)), append(opts,
		// The handshake rate is kith's admission, which knows friends'
		// endpoints; libp2p's per-IP rate would let a stranger on a
		// friend's IP lock the friend out.
		rcmgr.WithConnRateLimiters(&xrate.Limiter{}),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: MaxConnsPerIP}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: MaxConnsPerIP}}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("building resource manager: %w", err)
	}
	return rm, nil
}

// NewHost builds a libp2p host with TCP (TLS 1.3 or Noise, yamux) and QUIC, the friend
// gater, libp2p's resource manager with explicit limits, and a connection
// manager that never trims friends (the Connector protects them). The
// relay transport is on (a friend's relay carries friends' connections,
// see relay.go); with cfg.Traversal, so are DCUtR hole punching, the
// advertised addresses of advertise.go and, with cfg.PortMap, UPnP /
// NAT-PMP. No AutoNAT service, no AutoRelay; libp2p's metrics only with Metrics.
// Every stream of a kith protocol is attached to its resource-manager
// service (services.go).
//
// Inbound connections pass the Gater's admission (a handshake rate for
// sources that are not known friend endpoints) before any handshake, and
// every dial passes the address policy of a node listening on ListenAddrs.
func NewHost(cfg HostConfig) (host.Host, error) {
	if cfg.Gater == nil {
		return nil, errors.New("starting libp2p host: no gater")
	}
	var rmOpts []rcmgr.Option
	if cfg.Metrics != nil {
		str, err := rcmgr.NewStatsTraceReporter()
		if err != nil {
			return nil, fmt.Errorf("resource manager metrics: %w", err)
		}
		rmOpts = append(rmOpts, rcmgr.WithTraceReporter(str))
	}
	rm, err := NewResourceManager(cfg.ProtocolPeerStreams, rmOpts...)
	if err != nil {
		return nil, err
	}
	var listen []ma.Multiaddr
	for _, s := range cfg.ListenAddrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			listen = append(listen, a)
		}
	}
	cfg.Gater.setPolicy(NewAddrPolicy(listen))
	rm = admittingRcmgr{ResourceManager: rm, adm: cfg.Gater.adm, g: cfg.Gater}
	cm, err := connmgr.NewConnManager(MaxConns/2, MaxConns-64, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("building connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		// TLS first: its AES-GCM costs half of Noise's ChaCha20-Poly1305
		// on CPUs with AES instructions, and a friend's TCP connection
		// carries the bulk data (BENCHMARKS.md, issue 14). Noise stays
		// for peers that offer only it.
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(cfg.Gater),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.EnableRelay(),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirstRanker)),
	}
	if cfg.Metrics != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	if cfg.Bandwidth != nil {
		opts = append(opts, libp2p.BandwidthReporter(cfg.Bandwidth))
	}
	tr := cfg.Traversal
	if tr != nil {
		opts = append(opts, libp2p.AddrsFactory(tr.adv.factory))
		if cfg.PortMap && !allLoopbackAddrs(listen) {
			tr.nat = &natWatch{}
			opts = append(opts, libp2p.NATManager(tr.nat.construct))
		}
	}
	h, err := libp2p.New(append(opts, cfg.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p host: %w", err)
	}
	if tr != nil {
		tr.adv.setNetwork(h.Network())
		tr.punch.h.Store(&h)
		if err := tr.startHolePunching(h); err != nil {
			h.Close()
			return nil, fmt.Errorf("starting libp2p host: %w", err)
		}
		return servicesHost{traversalHost{Host: h, tr: tr}}, nil
	}
	return servicesHost{h}, nil
}

// QUICAfterTCP is how long a dial to a friend's public address waits for
// TCP before it tries QUIC too: long enough for a TCP and Noise handshake
// over a long path on a busy machine (about 3 round trips; libp2p's own
// 250 ms let QUIC win over 50 ms links under load), short enough that a
// friend whose TCP port is filtered is still reached within about a
// second. A TCP dial that fails outright starts QUIC at once.
const QUICAfterTCP = time.Second

// tcpFirstRanker orders the dials to a friend as libp2p's default ranker
// does, except that TCP goes first and QUIC follows after QUICAfterTCP
// (public addresses) or libp2p's private TCP delay (30 ms), so that a
// friend reachable both ways is reached over TCP. A friend's
// connection carries its downloads and the tunnels through us, and over
// long paths quic-go's congestion control (its slow start leaves early,
// and its Cubic hardly grows while the sender is not writing at every
// instant) moved a download at a third of what the kernel's TCP moves
// over the same link (issue 14; BENCHMARKS.md, "Over long paths").
// Hole punching dials with no delay at all, as before.
func tcpFirstRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	var quicAddrs, rest []ma.Multiaddr
	for _, a := range addrs {
		if isDirectQUIC(a) {
			quicAddrs = append(quicAddrs, a)
		} else {
			rest = append(rest, a)
		}
	}
	if len(quicAddrs) == 0 || !hasTCP(rest) {
		return swarm.DefaultDialRanker(addrs)
	}
	out := swarm.DefaultDialRanker(rest)
	for _, d := range swarm.DefaultDialRanker(quicAddrs) {
		if manet.IsPrivateAddr(d.Addr) {
			d.Delay += swarm.PrivateTCPDelay
		} else {
			d.Delay += QUICAfterTCP
		}
		out = append(out, d)
	}
	return out
}

// isDirectQUIC reports whether a is a QUIC address, not through a relay.
func isDirectQUIC(a ma.Multiaddr) bool { return directOver(a, ma.P_QUIC_V1) }

// isDirectTCPAddr reports whether a is a TCP address not through a relay.
func isDirectTCPAddr(a ma.Multiaddr) bool { return directOver(a, ma.P_TCP) }

// directOver reports whether a has the protocol code and no relay hop.
func directOver(a ma.Multiaddr, code int) bool {
	has := false
	for _, c := range a {
		switch c.Code() {
		case code:
			has = true
		case ma.P_CIRCUIT:
			return false
		}
	}
	return has
}

// hasTCP reports whether any of addrs is a direct TCP address.
func hasTCP(addrs []ma.Multiaddr) bool { return slices.ContainsFunc(addrs, isDirectTCPAddr) }

// traversalHost is a host whose hole punching Traversal runs: closing it
// stops that first.
type traversalHost struct {
	host.Host
	tr *Traversal
}

func (h traversalHost) Close() error {
	h.tr.stopHolePunching()
	return h.Host.Close()
}

// allLoopbackAddrs reports whether every IP address of addrs is a
// loopback one (others, like the relay transport's /p2p-circuit, do not
// count).
func allLoopbackAddrs(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if ip, ok := addrIP(a); ok && !ip.IsLoopback() {
			return false
		}
	}
	return true
}
