package f2f

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// MDNSService is the mDNS name kith announces on the LAN.
const MDNSService = "_kith._udp"

type mdnsNotifee struct{ c *Connector }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n.c.LearnAddrs(ai.ID, ai.Addrs, SourceMDNS) // ignores non-friends
}

// MDNS announces the node on the LAN and dials friends found there.
// libp2p's mDNS service announces the addresses the host had when it
// started and listens on the interfaces there were then, so MDNS starts
// it again whenever the host's addresses change (a new DHCP lease,
// another network): two LAN friends that both moved find each other
// again within seconds.
type MDNS struct {
	h   host.Host
	c   *Connector
	log *slog.Logger
	sub event.Subscription
	wg  sync.WaitGroup

	mu       sync.Mutex
	svc      mdns.Service
	announce []ma.Multiaddr
	once     sync.Once
	restarts int
}

// StartMDNS announces the node on the LAN and dials friends found there.
// It multicasts the peer ID and addresses to every host on the LAN, so it is
// off in tests and can be switched off by users (kith up --no-mdns).
func StartMDNS(h host.Host, c *Connector, log *slog.Logger) (*MDNS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return nil, fmt.Errorf("starting mDNS: %w", err)
	}
	m := &MDNS{h: h, c: c, log: log, sub: sub}
	if err := m.restart(); err != nil {
		sub.Close()
		return nil, err
	}
	m.wg.Add(1)
	go m.watch()
	return m, nil
}

// Restarts counts how often the service was started again for new
// addresses.
func (m *MDNS) Restarts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restarts
}

func (m *MDNS) watch() {
	defer m.wg.Done()
	for range m.sub.Out() {
		addrs := lanAddrs(m.h.Network())
		m.mu.Lock()
		same := slices.EqualFunc(addrs, m.announce, ma.Multiaddr.Equal)
		m.mu.Unlock()
		if same {
			continue
		}
		if err := m.restart(); err != nil {
			m.log.Warn("mDNS stopped: could not start it again for the new addresses", slog.Any("err", err))
			continue
		}
		m.log.Info("announcing new addresses on the LAN (mDNS)", slog.Any("addrs", addrs))
	}
}

// lanAddrs are the addresses mDNS announces (sorted): the interface
// addresses of the listen addresses as they are now (libp2p's swarm
// caches them for a minute), never loopback ones when there are others.
func lanAddrs(n network.Network) []ma.Multiaddr {
	all, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil
	}
	res, err := manet.ResolveUnspecifiedAddresses(n.ListenAddresses(), all)
	if err != nil {
		return nil
	}
	out := cleanAdvertised(slices.DeleteFunc(res, isCircuit))
	slices.SortFunc(out, ma.Multiaddr.Compare)
	return out
}

// mdnsHost is the host libp2p's mDNS service sees: its interface listen
// addresses are the fresh ones of lanAddrs.
type mdnsHost struct {
	host.Host
	net mdnsNet
}

func (h mdnsHost) Network() network.Network { return h.net }

type mdnsNet struct {
	network.Network
	addrs []ma.Multiaddr
}

func (n mdnsNet) InterfaceListenAddresses() ([]ma.Multiaddr, error) {
	return slices.Clone(n.addrs), nil
}

func (m *MDNS) restart() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.svc != nil {
		m.svc.Close()
		m.svc = nil
		m.restarts++
	}
	m.announce = lanAddrs(m.h.Network())
	h := mdnsHost{Host: m.h, net: mdnsNet{Network: m.h.Network(), addrs: m.announce}}
	s := mdns.NewMdnsService(h, MDNSService, mdnsNotifee{m.c})
	if err := s.Start(); err != nil {
		return fmt.Errorf("starting mDNS: %w", err)
	}
	m.svc = s
	return nil
}

// Close stops announcing. Safe to call more than once.
func (m *MDNS) Close() error {
	var err error
	m.once.Do(func() {
		m.sub.Close()
		m.wg.Wait()
		m.mu.Lock()
		if m.svc != nil {
			err = m.svc.Close()
		}
		m.mu.Unlock()
	})
	return err
}
