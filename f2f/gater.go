package f2f

import (
	"log/slog"
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

// Gater is a libp2p connection gater that admits only friends. Inbound
// connections are judged in InterceptSecured, right after the security
// handshake authenticated the remote key and before the muxer runs any
// protocol; outbound dials to non-friends are stopped before they start.
//
// Gaters are only asked about new connections: whoever removes a friend must
// also close its live connections (the Connector does).
type Gater struct {
	allow   Allowlist
	log     *slog.Logger
	refused atomic.Uint64
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater that admits the peers allow admits.
func NewGater(allow Allowlist, log *slog.Logger) *Gater {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gater{allow: allow, log: log}
}

// Refused counts the connections and dials refused so far.
func (g *Gater) Refused() uint64 { return g.refused.Load() }

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

// InterceptAddrDial refuses outbound dials to non-friends, per address.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow.IsFriend(p) }

// InterceptAccept lets raw inbound connections through: the remote key is not
// known until the security handshake.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured admits only friends, in both directions, after the
// handshake and before any protocol.
func (g *Gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.admit(p, dir.String())
}

// InterceptUpgraded admits every connection that passed InterceptSecured.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
