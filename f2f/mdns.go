package f2f

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// MDNSService is the mDNS name kith announces on the LAN.
const MDNSService = "_kith._udp"

type mdnsNotifee struct{ c *Connector }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n.c.LearnAddrs(ai.ID, ai.Addrs, SourceMDNS) // ignores non-friends
}

// StartMDNS announces the node on the LAN and dials friends found there.
// It multicasts the peer ID and addresses to every host on the LAN, so it is
// off in tests and can be switched off by users (kith up --no-mdns).
func StartMDNS(h host.Host, c *Connector) (interface{ Close() error }, error) {
	s := mdns.NewMdnsService(h, MDNSService, mdnsNotifee{c})
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("starting mDNS: %w", err)
	}
	return s, nil
}
