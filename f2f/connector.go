package f2f

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// protectTag marks friends' connections so the connection manager never trims them.
const protectTag = "kith-friend"

// AddrSource says where a friend's address was learned.
type AddrSource string

// Address sources.
const (
	SourceInvite   AddrSource = "invite"
	SourceIdentify AddrSource = "identify"
	SourceDHT      AddrSource = "dht"
	SourceMDNS     AddrSource = "mdns"
)

// ConnectorConfig holds a Connector's dependencies and tuning. Zero tuning
// values take the defaults of limits.go.
type ConnectorConfig struct {
	Host    host.Host
	Friends *Friends
	DHT     *FriendDHT // nil: no DHT lookups for stale addresses
	Log     *slog.Logger
	// OnAddrs, if set, is called when new addresses of a friend are learned.
	OnAddrs func(id peer.ID, addrs []ma.Multiaddr, src AddrSource)
	// Gater, if set, is the host's: a node behind NAT (Private) dials a
	// friend that has circuit addresses through its relay first, leaving
	// the direct path to the hole punch that follows (dialling a friend's
	// NAT mapping unprompted works only by chance).
	Gater *Gater
	// Private, if set, reports that friends found us behind a NAT.
	Private func() bool
	// Reachable, if set, reports that friends can dial us directly: a
	// friend we know only by circuit addresses is then given
	// CircuitDialGrace to dial us itself (a direct connection, no
	// relay) before we dial it through its relay.
	Reachable func() bool
	RedialMin time.Duration
	RedialMax time.Duration
	// BulkProtocols are the protocols of bulk streams (downloads,
	// tunnels): a QUIC connection older than TCPUpgradeYoung that
	// carries one is not closed to move its friend to TCP
	// (tcpupgrade.go).
	BulkProtocols []protocol.ID
	// TCPUpgradeDelay and TCPUpgradeInterval override the defaults of
	// limits.go (tests).
	TCPUpgradeDelay, TCPUpgradeInterval time.Duration
}

// ConnectorStats counts what the Connector did.
type ConnectorStats struct {
	Dials       uint64 // dial attempts
	DHTLookups  uint64 // FindPeer calls after a failed dial
	DHTFoundNew uint64 // lookups that produced an address we did not know
	// DeadConnsClosed counts connections closed because they did not
	// answer a ping after the friend reconnected.
	DeadConnsClosed uint64
	// RelayedClosed counts relayed connections closed once a direct one
	// to the same friend identified.
	RelayedClosed uint64
	// AddrChanges counts changes of our own interface addresses seen
	// while running (each makes every friend due for a dial).
	AddrChanges uint64
	// DirectUpgrades counts direct dials of friends connected only
	// through a relay, and DirectUpgraded those that connected.
	DirectUpgrades, DirectUpgraded uint64
	// TCPProbes counts the TCP connects that checked the TCP address of
	// a friend connected over QUIC only, TCPProbesFailed those that got
	// no answer; TCPUpgradeCloses counts the QUIC connections closed to
	// move a friend to TCP, TCPUpgraded the moves that got a TCP
	// connection (tcpupgrade.go).
	TCPProbes, TCPProbesFailed, TCPUpgradeCloses, TCPUpgraded uint64
}

type dialState struct {
	next    time.Time
	backoff time.Duration
	dialing bool
	// lastErr is the last dial's error (cut to MaxLastError), lastAt
	// when it ran, attempts how many dials failed in a row.
	lastErr  string
	lastAt   time.Time
	attempts int
	// circuitAt is when a friend known only by circuit addresses became
	// due while we are reachable (see ConnectorConfig.Reachable).
	circuitAt time.Time
	// upgradeAt is when to dial a friend connected only through a relay
	// at its direct addresses, upgradeWait the backoff; upgrading is set
	// while such a dial runs.
	upgradeAt   time.Time
	upgradeWait time.Duration
	upgrading   bool
	// quicSince is when the friend was first seen connected by direct
	// QUIC connections only (zero: it is not), tcpAt when its TCP
	// address may be checked next, tcpWait the backoff; tcpChecking is
	// set while a check or move runs (tcpupgrade.go).
	quicSince   time.Time
	tcpAt       time.Time
	tcpWait     time.Duration
	tcpMoves    int // successful moves to TCP (TCPRemoveDelay)
	tcpChecking bool
}

// DialInfo is what the Connector knows of its dials of one friend.
type DialInfo struct {
	// LastError is the last failed dial's error ("" after a success).
	LastError string
	// LastAttempt is when the last dial ran (zero: never).
	LastAttempt time.Time
	// NextAttempt is when the next dial is due.
	NextAttempt time.Time
	// Failures counts failed dials in a row.
	Failures int
}

// Connector keeps a connection to every reachable friend: it dials each one,
// redials with capped exponential backoff, falls back to the friends DHT when
// the known addresses fail, records presence, and closes the connections of
// removed friends. A friend counts as online once identify completed on a
// connection, which proves the friend's gater admitted us too.
type Connector struct {
	cfg ConnectorConfig
	h   host.Host
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sub    event.Subscription
	kick   chan struct{}

	policy  *AddrPolicy
	lookups chan struct{} // a token per lookup running (MaxConcurrentLookups)

	mu    sync.Mutex
	state map[peer.ID]*dialState

	dials, lookupsRun, foundNew, staleClosed atomic.Uint64
	relayedClosed, addrChanges               atomic.Uint64
	upgrades, upgraded                       atomic.Uint64
	tcpProbes, tcpProbesFailed               atomic.Uint64
	tcpClosed, tcpUpgraded                   atomic.Uint64
	closeOnce                                sync.Once

	// localIPs are our interface IPs as last seen (moving networks).
	localIPs map[netip.Addr]bool
	probes   chan struct{} // probes of our connections running at once
}

// NewConnector starts a connector. Close stops it. It sets the address
// policy of the host (addrs.go) on the friend list, so that only addresses
// the node may dial are stored.
func NewConnector(cfg ConnectorConfig) (*Connector, error) {
	if cfg.RedialMin == 0 {
		cfg.RedialMin = RedialMin
	}
	if cfg.RedialMax == 0 {
		cfg.RedialMax = RedialMax
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sub, err := cfg.Host.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtLocalAddressesUpdated),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Connector{
		cfg: cfg, h: cfg.Host, log: cfg.Log,
		ctx: ctx, cancel: cancel, sub: sub,
		kick:     make(chan struct{}, 1),
		state:    map[peer.ID]*dialState{},
		policy:   NewAddrPolicy(cfg.Host.Network().ListenAddresses()),
		lookups:  make(chan struct{}, MaxConcurrentLookups),
		localIPs: currentIPs(),
		probes:   make(chan struct{}, MaxConcurrentProbes),
	}
	cfg.Friends.SetAddrPolicy(c.policy)
	for _, f := range cfg.Friends.List() {
		c.adopt(f)
	}
	cfg.Friends.Watch(c.onChange)
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

// Close stops dialling and waits for the connector's goroutines. It does not
// close connections (the host does). Safe to call more than once.
func (c *Connector) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.sub.Close()
		c.wg.Wait()
	})
	return nil
}

// Stats returns counters of what the connector did.
func (c *Connector) Stats() ConnectorStats {
	return ConnectorStats{Dials: c.dials.Load(), DHTLookups: c.lookupsRun.Load(), DHTFoundNew: c.foundNew.Load(),
		DeadConnsClosed: c.staleClosed.Load(), RelayedClosed: c.relayedClosed.Load(), AddrChanges: c.addrChanges.Load(),
		DirectUpgrades: c.upgrades.Load(), DirectUpgraded: c.upgraded.Load(),
		TCPProbes: c.tcpProbes.Load(), TCPProbesFailed: c.tcpProbesFailed.Load(),
		TCPUpgradeCloses: c.tcpClosed.Load(), TCPUpgraded: c.tcpUpgraded.Load()}
}

// DialInfo returns what the connector knows of its dials of id.
func (c *Connector) DialInfo(id peer.ID) DialInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.state[id]
	if !ok {
		return DialInfo{}
	}
	return DialInfo{LastError: st.lastErr, LastAttempt: st.lastAt, NextAttempt: st.next, Failures: st.attempts}
}

// Kick makes the connector dial every disconnected friend now.
func (c *Connector) Kick() {
	c.mu.Lock()
	for _, st := range c.state {
		st.next = time.Time{}
	}
	c.mu.Unlock()
	c.poke()
}

func (c *Connector) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// LearnAddrs records addresses of a friend found by some means (mDNS, the
// API) and dials it at once if it is not connected.
func (c *Connector) LearnAddrs(id peer.ID, addrs []ma.Multiaddr, src AddrSource) {
	if !c.cfg.Friends.IsFriend(id) {
		return
	}
	addrs = c.policy.Filter(id, addrs)
	c.h.Peerstore().AddAddrs(id, addrs, peerstore.PermanentAddrTTL)
	if c.cfg.Friends.LearnAddrs(id, addrs) && c.cfg.OnAddrs != nil {
		c.cfg.OnAddrs(id, addrs, src)
	}
	c.mu.Lock()
	if st, ok := c.state[id]; ok {
		st.next = time.Time{}
	}
	c.mu.Unlock()
	c.poke()
}

func (c *Connector) adopt(f Friend) {
	c.h.ConnManager().Protect(f.ID, protectTag)
	c.h.Peerstore().AddAddrs(f.ID, c.policy.Filter(f.ID, f.Addrs), peerstore.PermanentAddrTTL)
	c.mu.Lock()
	if _, ok := c.state[f.ID]; !ok {
		c.state[f.ID] = &dialState{backoff: c.cfg.RedialMin}
	}
	c.mu.Unlock()
}

func (c *Connector) onChange(ch Change) {
	switch ch.Kind {
	case FriendAdded:
		c.adopt(ch.Friend)
		c.poke()
	case FriendRemoved:
		c.mu.Lock()
		delete(c.state, ch.Friend.ID)
		c.mu.Unlock()
		c.h.ConnManager().Unprotect(ch.Friend.ID, protectTag)
		// The gater refuses new connections; close the live ones now.
		if err := c.h.Network().ClosePeer(ch.Friend.ID); err != nil {
			c.log.Debug("closing removed friend", slog.String("peer", ch.Friend.ID.ShortString()), slog.Any("err", err))
		}
		c.h.Peerstore().ClearAddrs(ch.Friend.ID)
		c.h.Peerstore().RemovePeer(ch.Friend.ID)
	}
}

func (c *Connector) loop() {
	defer c.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	expire := time.NewTicker(AddrExpiryInterval)
	defer expire.Stop()
	c.expireAddrs()
	c.dialDue()
	for {
		select {
		case <-c.ctx.Done():
			return
		case ev, ok := <-c.sub.Out():
			if !ok {
				return
			}
			c.handleEvent(ev)
		case <-c.kick:
			c.dialDue()
		case <-tick.C:
			c.dialDue()
		case <-expire.C:
			c.expireAddrs()
		}
	}
}

// expireAddrs drops the friends' addresses that never worked and expired,
// from the store and from the peerstore.
func (c *Connector) expireAddrs() {
	for id, addrs := range c.cfg.Friends.ExpireAddrs() {
		c.forget(id, addrs)
	}
}

// forget takes addresses of id out of the peerstore.
func (c *Connector) forget(id peer.ID, addrs []ma.Multiaddr) {
	for _, a := range addrs {
		c.h.Peerstore().SetAddr(id, a, 0)
	}
	if len(addrs) > 0 {
		c.log.Debug("dropped a friend's addresses that never worked", slog.String("peer", id.ShortString()), slog.Any("addrs", addrs))
	}
}

func (c *Connector) handleEvent(ev any) {
	switch e := ev.(type) {
	case event.EvtLocalAddressesUpdated:
		c.localAddrsChanged()
	case event.EvtPeerIdentificationCompleted:
		if !c.cfg.Friends.IsFriend(e.Peer) || c.h.Network().Connectedness(e.Peer) != network.Connected {
			return
		}
		c.afterRelayedGrace(e.Peer)
		if e.Conn != nil && e.Conn.Stat().Direction == network.DirOutbound {
			// We dialled that address and the friend answered: it works.
			c.cfg.Friends.AddrWorked(e.Peer, e.Conn.RemoteMultiaddr())
		}
		addrs := c.policy.Filter(e.Peer, e.ListenAddrs)
		if len(addrs) > 0 {
			c.h.Peerstore().AddAddrs(e.Peer, addrs, peerstore.PermanentAddrTTL)
			if c.cfg.Friends.LearnAddrs(e.Peer, addrs) && c.cfg.OnAddrs != nil {
				c.cfg.OnAddrs(e.Peer, addrs, SourceIdentify)
			}
		}
		c.mu.Lock()
		if st, ok := c.state[e.Peer]; ok {
			st.backoff = c.cfg.RedialMin
			st.lastErr, st.attempts = "", 0
		}
		c.mu.Unlock()
		c.cfg.Friends.SetOnline(e.Peer, true, nil)
		c.log.Info("friend online", slog.String("peer", e.Peer.ShortString()))
		if e.Conn != nil && len(c.h.Network().ConnsToPeer(e.Peer)) > 1 {
			c.probeOtherConns(e.Peer, e.Conn)
		}
	case event.EvtPeerConnectednessChanged:
		if e.Connectedness == network.Connected {
			return // online only once identify proves the friend admitted us
		}
		if fr, ok := c.cfg.Friends.Get(e.Peer); ok {
			if fr.Online {
				c.log.Info("friend offline", slog.String("peer", e.Peer.ShortString()))
			}
			c.cfg.Friends.SetOnline(e.Peer, false, nil)
			c.mu.Lock()
			if st, ok := c.state[e.Peer]; ok && !st.dialing {
				st.next = time.Now().Add(st.backoff)
			}
			c.mu.Unlock()
		}
	}
}

// maybeUpgrade dials, with backoff, the direct addresses of the friend
// id when it is connected only through a relay: hole punching may have
// failed, or the friend may have become reachable since (a port mapping,
// a forwarded port, a new address learned from another friend). The
// caller holds c.mu.
func (c *Connector) maybeUpgrade(id peer.ID, st *dialState, now time.Time) {
	if st.upgrading || now.Before(st.upgradeAt) {
		return
	}
	for _, conn := range c.h.Network().ConnsToPeer(id) {
		if !conn.IsClosed() && !isCircuit(conn.RemoteMultiaddr()) {
			st.upgradeAt, st.upgradeWait = time.Time{}, 0
			return
		}
	}
	fr, ok := c.cfg.Friends.Get(id)
	if !ok {
		return
	}
	var direct []ma.Multiaddr
	for _, a := range c.policy.Filter(id, fr.Addrs) {
		if !isCircuit(a) {
			direct = append(direct, a)
		}
	}
	if st.upgradeWait == 0 {
		// The first try waits for the hole punch the relayed connection
		// starts.
		st.upgradeWait = DirectUpgradeMin
		st.upgradeAt = now.Add(st.upgradeWait)
		return
	}
	st.upgradeWait = min(2*st.upgradeWait, DirectUpgradeMax)
	st.upgradeAt = now.Add(st.upgradeWait)
	if len(direct) == 0 {
		return
	}
	st.upgrading = true
	c.upgrades.Add(1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(network.WithForceDirectDial(c.ctx, "upgrade a relayed friend"), DialTimeout)
		err := c.h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: direct})
		cancel()
		if err == nil {
			c.upgraded.Add(1)
			c.log.Info("friend reached directly instead of through a relay", slog.String("peer", id.ShortString()))
			c.afterRelayedGrace(id)
		}
		c.mu.Lock()
		st.upgrading = false
		c.mu.Unlock()
	}()
}

// waitForInbound reports whether to leave the friend id to dial us: we
// are directly reachable and know it only by circuit addresses, and
// CircuitDialGrace has not passed. The caller holds c.mu.
func (c *Connector) waitForInbound(id peer.ID, st *dialState, now time.Time) bool {
	if c.cfg.Reachable == nil || !c.cfg.Reachable() {
		return false
	}
	fr, ok := c.cfg.Friends.Get(id)
	if !ok || len(fr.Addrs) == 0 || slices.ContainsFunc(fr.Addrs, func(a ma.Multiaddr) bool { return !isCircuit(a) }) {
		return false
	}
	if st.circuitAt.IsZero() {
		st.circuitAt = now
	}
	return now.Sub(st.circuitAt) < CircuitDialGrace
}

// dialDue starts a dial for every friend that is disconnected and due.
func (c *Connector) dialDue() {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, st := range c.state {
		if c.h.Network().Connectedness(id) == network.Connected {
			st.circuitAt = time.Time{}
			c.maybeUpgrade(id, st, now)
			c.maybeTCPUpgrade(id, st, now)
			continue
		}
		if !st.upgrading {
			st.upgradeAt, st.upgradeWait = time.Time{}, 0
		}
		if !st.tcpChecking {
			st.quicSince = time.Time{}
		}
		if st.dialing || now.Before(st.next) {
			st.circuitAt = time.Time{}
			continue
		}
		if c.waitForInbound(id, st, now) {
			continue
		}
		st.dialing = true
		c.wg.Add(1)
		go c.dial(id)
	}
}

func (c *Connector) dial(id peer.ID) {
	defer c.wg.Done()
	c.dials.Add(1)
	err := c.connect(id)
	c.mu.Lock()
	if st, ok := c.state[id]; ok {
		// Back off even when the dial "succeeded": a friend whose gater
		// refuses us (one-sided friendship) closes the connection at once.
		// Identify completing resets the backoff.
		st.dialing = false
		st.next = time.Now().Add(redialJitter(st.backoff))
		st.backoff = min(st.backoff*2, c.cfg.RedialMax)
		st.lastAt = time.Now()
		if err != nil {
			st.attempts++
			st.lastErr = err.Error()
			if len(st.lastErr) > MaxLastError {
				st.lastErr = st.lastErr[:MaxLastError]
			}
			c.log.Debug("dial failed", slog.String("peer", id.ShortString()), slog.Any("err", err))
		}
	}
	c.mu.Unlock()
}

func (c *Connector) connect(id peer.ID) error {
	ctx, cancel := context.WithTimeout(c.ctx, DialTimeout)
	defer cancel()
	fr, ok := c.cfg.Friends.Get(id)
	if !ok {
		return nil
	}
	addrs := c.policy.Filter(id, fr.Addrs)
	c.h.Peerstore().AddAddrs(id, addrs, peerstore.PermanentAddrTTL)
	clearDialBackoff(c.h, id)
	var err error
	if c.cfg.Gater != nil && c.cfg.Private != nil && c.cfg.Private() && slices.ContainsFunc(addrs, isCircuit) {
		done := c.cfg.Gater.dialCircuitsOnly(id)
		err = c.h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs})
		done()
		if err == nil || c.ctx.Err() != nil {
			return err
		}
		c.log.Debug("dial through relays failed, dialling directly", slog.String("peer", id.ShortString()), slog.Any("err", err))
	}
	err = c.h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs})
	if err != nil && len(addrs) > 0 && c.ctx.Err() == nil && c.h.Network().Connectedness(id) != network.Connected {
		c.forget(id, c.cfg.Friends.DialFailed(id, addrs))
	}
	if err == nil || c.cfg.DHT == nil || c.ctx.Err() != nil {
		return err
	}
	c.log.Debug("dial failed, asking friends DHT", slog.String("peer", id.ShortString()), slog.Any("err", err))
	return c.lookup(ctx, id, fr.Addrs)
}

// redialJitter spreads a redial wait d over [3d/4, 5d/4). Two friends who
// dial each other in the same instant from their listen ports (libp2p's
// TCP dials reuse them) can meet in one TCP simultaneous open, where both
// ends start the handshake as its initiator and it fails; without jitter
// their next dials would be due in the same instant again.
func redialJitter(d time.Duration) time.Duration {
	if d < 2 {
		return d // rand.N needs a positive bound
	}
	return d*3/4 + rand.N(d/2)
}

// clearDialBackoff forgets the swarm's dial backoff for a friend before
// the Connector dials it: the Connector's own backoff (RedialMin to
// RedialMax) paces its dials, and the swarm's (at least 5 s after any
// failed dial, ours or a DHT query's) would turn the Connector's next
// dial into a "dial backoff" error without trying the friend.
func clearDialBackoff(h host.Host, id peer.ID) {
	if sw, ok := h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(id)
	}
}

// lookup asks the friends DHT for id's current addresses and dials them;
// at most MaxConcurrentLookups run at once.
func (c *Connector) lookup(ctx context.Context, id peer.ID, known []ma.Multiaddr) error {
	select {
	case c.lookups <- struct{}{}:
		defer func() { <-c.lookups }()
	case <-ctx.Done():
		return ctx.Err()
	}
	c.lookupsRun.Add(1)
	ai, err := c.cfg.DHT.FindPeer(ctx, id)
	if err != nil {
		// The lookup dials the peers it learns of, its target too; it may
		// have reached the friend even when it reports failure.
		if c.h.Network().Connectedness(id) != network.Connected {
			return err
		}
		ai = peer.AddrInfo{ID: id, Addrs: c.h.Peerstore().Addrs(id)}
	}
	ai.Addrs = c.policy.Filter(id, ai.Addrs)
	var fresh []ma.Multiaddr
	for _, a := range ai.Addrs {
		if !slices.ContainsFunc(known, a.Equal) {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) > 0 {
		c.foundNew.Add(1)
		c.log.Info("friend found through DHT", slog.String("peer", id.ShortString()), slog.Any("addrs", fresh))
		c.h.Peerstore().AddAddrs(id, fresh, peerstore.PermanentAddrTTL)
		c.cfg.Friends.LearnAddrs(id, fresh)
		if c.cfg.OnAddrs != nil {
			c.cfg.OnAddrs(id, fresh, SourceDHT)
		}
	}
	return c.h.Connect(ctx, ai)
}

// afterRelayedGrace closes, RelayedCloseDelay from now, the relayed
// connections to the friend p if a direct one is open then. libp2p opens
// new streams on the direct connection but leaves the relayed one and
// its streams alone; once it is closed, the long-lived streams (the
// router's and the lobby's links, chat) are opened again on the direct
// connection, and the relay carries nothing more of ours.
func (c *Connector) afterRelayedGrace(p peer.ID) {
	relayed := false
	for _, conn := range c.h.Network().ConnsToPeer(p) {
		if isCircuit(conn.RemoteMultiaddr()) {
			relayed = true
		}
	}
	if !relayed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(RelayedCloseDelay):
		}
		conns := c.h.Network().ConnsToPeer(p)
		if !slices.ContainsFunc(conns, func(x network.Conn) bool { return !x.IsClosed() && !isCircuit(x.RemoteMultiaddr()) }) {
			return
		}
		for _, conn := range conns {
			if isCircuit(conn.RemoteMultiaddr()) {
				c.relayedClosed.Add(1)
				c.log.Info("friend reached directly: closing the relayed connection", slog.String("peer", p.ShortString()),
					slog.String("via", conn.RemoteMultiaddr().String()))
				conn.Close()
			}
		}
	}()
}

// currentIPs returns the IPs on our interfaces now.
func currentIPs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out
}

// localAddrsChanged runs when the host's advertised addresses change.
// If our interface addresses changed (a new DHCP lease, another network),
// connections from an address we no longer have are closed, the others
// are probed (one that does not answer is dead: the path it used is
// gone), and every friend is due for a dial, so that friends hear of our
// new addresses from us at once instead of after their redial backoff.
func (c *Connector) localAddrsChanged() {
	now := currentIPs()
	c.mu.Lock()
	same := len(now) == len(c.localIPs)
	for ip := range now {
		if !c.localIPs[ip] {
			same = false
		}
	}
	c.localIPs = now
	c.mu.Unlock()
	if same {
		return
	}
	c.addrChanges.Add(1)
	c.log.Info("our addresses changed: checking friend connections and dialling friends", slog.Int("addrs", len(now)))
	for _, conn := range c.h.Network().Conns() {
		if !c.cfg.Friends.IsFriend(conn.RemotePeer()) {
			continue
		}
		if ip, ok := addrIP(conn.LocalMultiaddr()); ok && !ip.IsUnspecified() && !now[ip] && !isCircuit(conn.RemoteMultiaddr()) {
			c.staleClosed.Add(1)
			conn.Close()
			continue
		}
		c.probeConn(conn, "closing a friend connection that died with our old address")
	}
	c.mu.Lock()
	for _, st := range c.state {
		st.next, st.backoff = time.Time{}, c.cfg.RedialMin
	}
	c.mu.Unlock()
	c.poke()
}
