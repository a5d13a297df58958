package f2f

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// DHTPrefix isolates kith's DHT from the public IPFS one: its protocol is
// /kith/kad/2.0.0, which no IPFS node speaks.
const DHTPrefix = "/kith"

// DHTProtocol is the friends DHT's protocol, served by kith itself (kad.go).
// Version 2: kith's own messages (blinded keys, lookup proofs), which
// version 1 (kad-dht's) peers cannot read.
const DHTProtocol protocol.ID = DHTPrefix + "/kad/2.0.0"

// FriendDHT is a Kademlia DHT among friends, used only to find the current
// addresses of a friend whose known ones went stale by asking the other
// friends (FindPeer). go-libp2p-kad-dht does the lookups and keeps the
// routing table (friends only, no provider or value records, bootstrapped
// from friends); kith answers the protocol itself and sends kad-dht's
// requests its own way, so that a friend asking us learns only the address
// of a peer whose ID it already knows and that is a friend of both (see
// lookup.go for how, and what that costs in privacy). Non-friends cannot
// reach it at all: the gater refuses their connections.
type FriendDHT struct {
	kad     *dht.IpfsDHT
	h       host.Host
	friends *Friends
	look    *lookup
	srv     *kadServer
	log     *slog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	sub       event.Subscription
	kick      chan struct{}
	mu        sync.Mutex
	dirty     map[peer.ID]bool // friends owed a new grant
	closeOnce sync.Once
}

// DHTStats counts the friends DHT's answers to friends.
type DHTStats struct {
	// Answered counts FIND_NODE answers that named a peer.
	Answered uint64
	// Empty counts FIND_NODE answers that named none.
	Empty uint64
	// Refused counts streams reset for a bad or unsupported request.
	Refused uint64
}

// NewFriendDHT starts the friends DHT on h. autoRefresh lets kad-dht
// refresh its routing table periodically (tests switch it off to observe
// lookups alone). Close stops it.
func NewFriendDHT(h host.Host, friends *Friends, autoRefresh bool) (*FriendDHT, error) {
	return newFriendDHT(h, friends, autoRefresh, nil)
}

func newFriendDHT(h host.Host, friends *Friends, autoRefresh bool, log *slog.Logger) (*FriendDHT, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	look, err := newLookup(h.ID(), h.Peerstore().PrivKey(h.ID()), friends, log)
	if err != nil {
		return nil, fmt.Errorf("starting friends DHT: %w", err)
	}
	policy := NewAddrPolicy(h.Network().ListenAddresses())
	sender := &kadSender{h: h, look: look}
	opts := []dht.Option{
		dht.ProtocolPrefix(DHTPrefix),
		dht.V1ProtocolOverride(DHTProtocol), // which friends count as DHT peers
		// Client mode: kad-dht registers no handler; kadServer serves.
		dht.Mode(dht.ModeClient),
		dht.WithCustomMessageSender(func(host.Host, []protocol.ID) dhtpb.MessageSenderWithDisconnect { return sender }),
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return friends.IsFriend(p) }),
		dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return friends.IsFriend(ai.ID) }),
		dht.AddressFilter(func(addrs []ma.Multiaddr) []ma.Multiaddr { return policy.Filter("", addrs) }),
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
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return nil, fmt.Errorf("starting friends DHT: %w", err)
	}
	kad, err := dht.New(h, opts...)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("starting friends DHT: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &FriendDHT{
		kad: kad, h: h, friends: friends, look: look, log: log,
		srv: &kadServer{h: h, friends: friends, look: look, log: log,
			frameTimeout: KadFrameTimeout, idleTimeout: KadIdleTimeout},
		ctx: ctx, cancel: cancel, sub: sub,
		kick: make(chan struct{}, 1), dirty: map[peer.ID]bool{},
	}
	h.SetStreamHandler(DHTProtocol, d.srv.handle)
	h.SetStreamHandler(LookupProtocol, look.handleGrant)
	friends.Watch(d.onChange)
	d.wg.Add(2)
	go d.watch()
	go d.sendGrants()
	return d, nil
}

// FindPeer asks the friends for the addresses of the friend id.
func (d *FriendDHT) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	return d.kad.FindPeer(ctx, id)
}

// Stats returns counters of the DHT's answers.
func (d *FriendDHT) Stats() DHTStats {
	return DHTStats{Answered: d.srv.answered.Load(), Empty: d.srv.empty.Load(), Refused: d.srv.refused.Load()}
}

// Close stops serving and looking up, and waits for the DHT's goroutines.
// Safe to call more than once.
func (d *FriendDHT) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.h.RemoveStreamHandler(DHTProtocol)
		d.h.RemoveStreamHandler(LookupProtocol)
		d.cancel()
		d.sub.Close()
		d.wg.Wait()
		err = d.kad.Close()
	})
	return err
}

// onChange runs on every change of the friend list: a friend added or
// removed changes our grants to every friend and our blinded keys.
func (d *FriendDHT) onChange(c Change) {
	if c.Kind != FriendAdded && c.Kind != FriendRemoved {
		return
	}
	d.look.reindex()
	d.mu.Lock()
	for _, id := range d.friends.IDs() {
		d.dirty[id] = true
	}
	d.mu.Unlock()
	d.poke()
}

func (d *FriendDHT) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// watch owes a grant to every friend whose connection identifies.
func (d *FriendDHT) watch() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case ev, ok := <-d.sub.Out():
			if !ok {
				return
			}
			e := ev.(event.EvtPeerIdentificationCompleted)
			if !d.friends.IsFriend(e.Peer) {
				continue
			}
			d.mu.Lock()
			d.dirty[e.Peer] = true
			d.mu.Unlock()
			d.poke()
		}
	}
}

// sendGrants sends the grants owed, LookupGrantDelay after the first
// change, to the friends that are connected (the others get theirs when
// they connect).
func (d *FriendDHT) sendGrants() {
	defer d.wg.Done()
	open := func(ctx context.Context, id peer.ID) (network.Stream, error) {
		return d.h.NewStream(network.WithNoDial(ctx, "lookup grant"), id, LookupProtocol)
	}
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.kick:
		}
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(LookupGrantDelay):
		}
		d.mu.Lock()
		owed := d.dirty
		d.dirty = map[peer.ID]bool{}
		d.mu.Unlock()
		for id := range owed {
			if d.h.Network().Connectedness(id) != network.Connected || !d.friends.IsFriend(id) {
				continue
			}
			if err := d.look.sendGrant(d.ctx, open, id); err != nil {
				d.log.Debug("sending lookup grant", slog.String("peer", id.ShortString()), slog.Any("err", err))
			}
		}
	}
}
