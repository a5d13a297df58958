package f2f

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Traversal is what a node's host does to be reached through NATs: the
// addresses it advertises (advertise.go), its UPnP / NAT-PMP port
// mappings, and its DCUtR hole punches. It is made before the host
// (HostConfig.Traversal) and filled in as the node starts; it is safe for
// concurrent use.
type Traversal struct {
	adv   *advertiser
	nat   *natWatch // nil: port mapping off
	punch *punchTracer

	// hps is the DCUtR service, run here rather than by libp2p's
	// EnableHolePunching so that a relayed connection that came before
	// the node learned a public address (the usual order: it learns it
	// from the friend that relays) is punched too (retryPunches).
	hps      *holepunch.Service
	observed atomic.Pointer[func() []ma.Multiaddr]
	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
	mu       sync.Mutex
	retries  map[peer.ID]*punchRetry
}

type punchRetry struct {
	next     time.Time
	attempts int
	running  bool
}

// NewTraversal returns the traversal state of a node that announces
// announce (--announce: forwarded ports, static addresses) besides the
// addresses it finds itself.
func NewTraversal(announce []ma.Multiaddr) *Traversal {
	return &Traversal{adv: newAdvertiser(announce), punch: &punchTracer{conns: map[string]bool{}, punching: map[peer.ID]time.Time{}}}
}

// SetObserved gives the addresses friends observe for us (Reach), which
// hole punching tells the other end to dial.
func (t *Traversal) SetObserved(fn func() []ma.Multiaddr) { t.observed.Store(&fn) }

// holePunchAddrs are the public addresses a hole punch gives the other
// end: those the host advertises and those friends observe for us, even
// by one friend (libp2p's HolePunchAddrs, with our own observations).
func (t *Traversal) holePunchAddrs() []ma.Multiaddr {
	hp := t.punch.h.Load()
	if hp == nil {
		return nil
	}
	all := (*hp).Addrs()
	if fn := t.observed.Load(); fn != nil {
		all = append(all, (*fn)()...)
	}
	var out []ma.Multiaddr
	for _, a := range all {
		if !isCircuit(a) && manet.IsPublicAddr(a) && !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// startHolePunching runs DCUtR on h, and the loop that punches relayed
// connections libp2p's service did not (retryPunches).
func (t *Traversal) startHolePunching(h host.Host) error {
	ids, ok := h.(interface{ IDService() identify.IDService })
	if !ok {
		return errors.New("hole punching: the host has no identify service")
	}
	svc, err := holepunch.NewService(h, ids.IDService(), t.holePunchAddrs, holepunch.WithTracer(t.punch))
	if err != nil {
		return fmt.Errorf("hole punching: %w", err)
	}
	t.hps, t.stop, t.retries = svc, make(chan struct{}), map[peer.ID]*punchRetry{}
	t.wg.Add(1)
	go t.retryPunches(h)
	return nil
}

func (t *Traversal) stopHolePunching() {
	t.stopOnce.Do(func() {
		if t.stop == nil {
			return
		}
		close(t.stop)
		t.hps.Close()
		t.wg.Wait()
	})
}

// retryPunches hole-punches the friends we reach only through a relay and
// that reached us through it (DCUtR's initiator is the end the relayed
// connection came in to): libp2p's service punches a relayed connection
// only as it opens, and only once the host has a public address, which
// it often learns from that same relay a moment later. Attempts back off
// from PunchRetryMin to PunchRetryMax.
func (t *Traversal) retryPunches(h host.Host) {
	defer t.wg.Done()
	tick := time.NewTicker(PunchCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		if !slices.Contains(h.Mux().Protocols(), holepunch.Protocol) || len(t.holePunchAddrs()) == 0 {
			continue // the service is not ready: it registers its handler then
		}
		now := time.Now()
		relayedIn := map[peer.ID]bool{}
		direct := map[peer.ID]bool{}
		for _, c := range h.Network().Conns() {
			if isCircuit(c.RemoteMultiaddr()) {
				if c.Stat().Direction == network.DirInbound {
					relayedIn[c.RemotePeer()] = true
				}
			} else {
				direct[c.RemotePeer()] = true
			}
		}
		t.mu.Lock()
		for p := range t.retries {
			if !relayedIn[p] || direct[p] {
				delete(t.retries, p)
			}
		}
		for p := range relayedIn {
			if direct[p] {
				continue
			}
			st := t.retries[p]
			if st == nil {
				st = &punchRetry{next: now.Add(PunchRetryMin)}
				t.retries[p] = st
			}
			if st.running || now.Before(st.next) {
				continue
			}
			st.running = true
			st.attempts++
			st.next = now.Add(min(PunchRetryMin<<min(st.attempts, 16), PunchRetryMax))
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				err := t.hps.DirectConnect(p)
				t.mu.Lock()
				st.running = false
				t.mu.Unlock()
				_ = err // counted by the tracer
			}()
		}
		t.mu.Unlock()
	}
}

// AddSource adds addresses the host advertises, asked for each time the
// host computes its addresses (every few seconds): fn must be fast.
func (t *Traversal) AddSource(fn func() []ma.Multiaddr) { t.adv.addSource(fn) }

// Announced returns the addresses given with --announce.
func (t *Traversal) Announced() []ma.Multiaddr { return t.adv.Announced() }

// PortMapping says what UPnP / NAT-PMP did.
func (t *Traversal) PortMapping() PortMapping { return t.nat.state() }

// MappedAddrs returns the external addresses a UPnP / NAT-PMP gateway
// maps to us.
func (t *Traversal) MappedAddrs() []ma.Multiaddr {
	if t.nat == nil {
		return nil
	}
	return t.nat.mapped()
}

// HolePunchStats counts DCUtR hole punches with friends.
type HolePunchStats struct {
	// Attempts counts hole punches started (each may try up to 3 times).
	Attempts uint64 `json:"attempts"`
	// Succeeded counts hole punches that made a direct connection.
	Succeeded uint64 `json:"succeeded"`
	// Failed counts hole punches that did not.
	Failed uint64 `json:"failed"`
	// DirectDials counts upgrades made by dialling a friend's public
	// address directly, without a punch.
	DirectDials uint64 `json:"direct_dials"`
}

// HolePunches returns the hole punch counters.
func (t *Traversal) HolePunches() HolePunchStats { return t.punch.stats() }

// Punched reports whether c is a connection a hole punch made.
func (t *Traversal) Punched(c network.Conn) bool { return t.punch.punched(c) }

// punchTracer watches the hole punches of the host (holepunch.WithTracer)
// and remembers which connections they made.
type punchTracer struct {
	h atomic.Pointer[host.Host]

	mu       sync.Mutex
	conns    map[string]bool       // IDs of live connections made by a punch
	punching map[peer.ID]time.Time // punches under way, by when they started

	attempts, succeeded, failed, directDials atomic.Uint64
}

// Trace records one event of the hole-punching service.
func (p *punchTracer) Trace(evt *holepunch.Event) {
	switch e := evt.Evt.(type) {
	case *holepunch.StartHolePunchEvt:
		p.attempts.Add(1)
		p.mu.Lock()
		if len(p.punching) < MaxConns {
			p.punching[evt.Remote] = time.Unix(0, evt.Timestamp)
		}
		p.mu.Unlock()
	case *holepunch.DirectDialEvt:
		if e.Success {
			p.directDials.Add(1)
		}
	case *holepunch.EndHolePunchEvt:
		p.mu.Lock()
		started, ok := p.punching[evt.Remote]
		delete(p.punching, evt.Remote)
		p.mu.Unlock()
		if e.Success {
			p.succeeded.Add(1)
		} else {
			p.failed.Add(1)
		}
		hp := p.h.Load()
		if hp == nil {
			return
		}
		// The connections the punch made: the newest direct one on
		// success, and any direct one that opened while it ran (the
		// other side's punch may be the one that got through).
		var newest network.Conn
		var made []network.Conn
		for _, c := range (*hp).Network().ConnsToPeer(evt.Remote) {
			if isCircuit(c.RemoteMultiaddr()) {
				continue
			}
			if ok && !c.Stat().Opened.Before(started) {
				made = append(made, c)
			}
			if newest == nil || c.Stat().Opened.After(newest.Stat().Opened) {
				newest = c
			}
		}
		if e.Success && newest != nil {
			made = append(made, newest)
		}
		if len(made) == 0 {
			return
		}
		p.mu.Lock()
		if len(p.conns) >= MaxConns { // forget closed ones
			p.pruneLocked(*hp)
		}
		for _, c := range made {
			p.conns[c.ID()] = true
		}
		p.mu.Unlock()
	}
}

func (p *punchTracer) pruneLocked(h host.Host) {
	live := map[string]bool{}
	for _, c := range h.Network().Conns() {
		live[c.ID()] = true
	}
	for id := range p.conns {
		if !live[id] {
			delete(p.conns, id)
		}
	}
}

// punched reports whether c was made by a hole punch: one that ended, or
// one still under way when c opened after it started (the connection is up
// a moment before the punch's end is traced, and a path must not read
// "direct" in between).
func (p *punchTracer) punched(c network.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[c.ID()] {
		return true
	}
	started, ok := p.punching[c.RemotePeer()]
	return ok && !c.Stat().Opened.Before(started)
}

func (p *punchTracer) stats() HolePunchStats {
	return HolePunchStats{Attempts: p.attempts.Load(), Succeeded: p.succeeded.Load(), Failed: p.failed.Load(), DirectDials: p.directDials.Load()}
}

// Path is how a friend is reached now.
type Path struct {
	// Kind is "direct", "hole-punched", "relayed" or "" (not connected).
	Kind string
	// Relay is the friend relaying, for "relayed".
	Relay peer.ID
	// Since is when that connection opened.
	Since time.Time
}

// Path kinds.
const (
	PathDirect      = "direct"
	PathHolePunched = "hole-punched"
	PathRelayed     = "relayed"
)

// PathTo says how the host reaches p now: a direct connection (made by a
// hole punch or not) before a relayed one.
func (t *Traversal) PathTo(h host.Host, p peer.ID) Path {
	var best Path
	for _, c := range h.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		if relay := CircuitRelay(c.RemoteMultiaddr()); relay != "" {
			if best.Kind == "" {
				best = Path{Kind: PathRelayed, Relay: relay, Since: c.Stat().Opened}
			}
			continue
		}
		kind := PathDirect
		if t.Punched(c) {
			kind = PathHolePunched
		}
		if best.Kind != PathHolePunched {
			best = Path{Kind: kind, Since: c.Stat().Opened}
		}
	}
	return best
}
