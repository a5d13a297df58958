package f2f

import (
	"fmt"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DHTPrefix isolates kith's DHT from the public IPFS one: its protocol is
// /kith/kad/1.0.0, which no IPFS node speaks.
const DHTPrefix = "/kith"

// NewFriendDHT starts a Kademlia DHT among friends, used only to find the
// current addresses of a friend whose known ones went stale by asking the
// other friends (FindPeer). It runs in server mode, stores no provider or
// value records, bootstraps only from friends, and keeps only friends in its
// routing table and queries. Non-friends cannot reach it at all: the gater
// refuses their connections.
//
// Privacy cost: a friend that asks us for a peer close to some key learns the
// IDs and addresses of our friends nearest that key. That is the price of
// finding each other again after address changes; it never leaves the
// circle of friends-of-friends.
func NewFriendDHT(h host.Host, friends *Friends, autoRefresh bool) (*dht.IpfsDHT, error) {
	opts := []dht.Option{
		dht.ProtocolPrefix(DHTPrefix),
		dht.Mode(dht.ModeServer),
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return friends.IsFriend(p) }),
		dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return friends.IsFriend(ai.ID) }),
		dht.BootstrapPeersFunc(func() []peer.AddrInfo {
			var out []peer.AddrInfo
			for _, f := range friends.List() {
				if len(f.Addrs) > 0 {
					out = append(out, peer.AddrInfo{ID: f.ID, Addrs: f.Addrs})
				}
			}
			return out
		}),
		dht.DisableProviders(),
		dht.DisableValues(),
	}
	if !autoRefresh {
		opts = append(opts, dht.DisableAutoRefresh())
	}
	d, err := dht.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("starting friends DHT: %w", err)
	}
	return d, nil
}
