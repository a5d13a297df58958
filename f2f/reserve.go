package f2f

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// client.Reserve bounds its exchange with the relay by this package
// variable (a minute by default), not by its context, which bounds only
// opening the stream: a relay whose connection died would hold its
// request, and the reservations waiting on it, that long.
func init() { client.ReserveTimeout = ReserveTimeout }

// Reservations keeps slots on friends' relays for a node that is not
// directly reachable, so that its other friends can reach it through
// them (and then hole-punch). libp2p's AutoRelay is not used: it starts
// only on an AutoNAT verdict a friends-only node never gets, and backs
// off from a static relay for an hour.
//
// It reserves on up to WantReservations friends it has a direct
// connection to, preferring friends it dialled at a public address (they
// are reachable from outside, so its other friends can reach them too),
// renews each reservation before it expires, drops one whose relay went
// away, and takes a better relay when one comes online. Its circuit
// addresses (RELAY-ADDR/p2p/RELAY/p2p-circuit) are advertised through
// Traversal. It is safe for concurrent use.
type Reservations struct {
	cfg ReservationsConfig
	h   host.Host
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sub    event.Subscription
	kick   chan struct{}
	once   sync.Once

	// loopback is set for a node that listens on loopback only (tests,
	// the demo): there every relay is a good one.
	loopback bool

	mu    sync.Mutex
	held  map[peer.ID]*heldReservation
	retry map[peer.ID]time.Time // relays left alone until then
}

// ReservationsConfig holds the dependencies of Reservations.
type ReservationsConfig struct {
	Host    host.Host
	Friends Allowlist
	// Need reports whether the node needs relays now (it is not known to
	// be directly reachable); nil means always.
	Need func() bool
	// Punched, if set, tells connections a hole punch made: dialling a
	// friend's public address through a punched hole says nothing of
	// whether others can reach it.
	Punched func(network.Conn) bool
	// Unanswered, if set, hears of a relay whose connection failed our
	// request (it may be dead: the connector probes it).
	Unanswered func(peer.ID)
	Log        *slog.Logger
}

type heldReservation struct {
	relay   peer.ID
	since   time.Time
	renewed time.Time
	expires time.Time
	rank    int
	addrs   []ma.Multiaddr // circuit addresses
}

// Reservation is a slot held on a friend's relay.
type Reservation struct {
	Relay   peer.ID
	Since   time.Time
	Expires time.Time
	// Addrs are the circuit addresses through it that we advertise.
	Addrs []ma.Multiaddr
}

// NewReservations starts keeping reservations; Close stops it.
func NewReservations(cfg ReservationsConfig) (*Reservations, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Need == nil {
		cfg.Need = func() bool { return true }
	}
	sub, err := cfg.Host.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reservations{cfg: cfg, h: cfg.Host, log: cfg.Log, ctx: ctx, cancel: cancel, sub: sub,
		kick: make(chan struct{}, 1), held: map[peer.ID]*heldReservation{}, retry: map[peer.ID]time.Time{},
		loopback: allLoopbackAddrs(cfg.Host.Network().ListenAddresses())}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// Close stops renewing reservations (they lapse at the relays) and waits
// for its goroutine. Safe to call more than once.
func (r *Reservations) Close() error {
	r.once.Do(func() {
		r.cancel()
		r.sub.Close()
		r.wg.Wait()
	})
	return nil
}

// Kick makes Reservations look at its relays now.
func (r *Reservations) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Held returns the reservations held now, by relay.
func (r *Reservations) Held() []Reservation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Reservation, 0, len(r.held))
	for _, h := range r.held {
		out = append(out, Reservation{Relay: h.relay, Since: h.since, Expires: h.expires, Addrs: slices.Clone(h.addrs)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Relay < out[j].Relay })
	return out
}

// Holds reports whether we hold a reservation on relay.
func (r *Reservations) Holds(relay peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.held[relay]
	return ok
}

// CircuitAddrs returns the circuit addresses of every reservation held.
func (r *Reservations) CircuitAddrs() []ma.Multiaddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ma.Multiaddr
	for _, h := range r.held {
		out = append(out, h.addrs...)
	}
	return out
}

func (r *Reservations) loop() {
	defer r.wg.Done()
	tick := time.NewTicker(ReserveInterval)
	defer tick.Stop()
	r.reconcile()
	for {
		select {
		case <-r.ctx.Done():
			return
		case ev, ok := <-r.sub.Out():
			if !ok {
				return
			}
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if !r.cfg.Friends.IsFriend(e.Peer) {
					continue
				}
			case event.EvtPeerConnectednessChanged:
				r.mu.Lock()
				_, held := r.held[e.Peer]
				r.mu.Unlock()
				if !held || e.Connectedness == network.Connected {
					continue
				}
			}
			r.reconcile()
		case <-r.kick:
			r.reconcile()
		case <-tick.C:
			r.reconcile()
		}
	}
}

// directConn returns a live direct connection to p, preferring one we
// dialled.
func directConn(h host.Host, p peer.ID) network.Conn {
	var best network.Conn
	for _, c := range h.Network().ConnsToPeer(p) {
		if c.IsClosed() || isCircuit(c.RemoteMultiaddr()) {
			continue
		}
		if best == nil || (c.Stat().Direction == network.DirOutbound && best.Stat().Direction != network.DirOutbound) {
			best = c
		}
	}
	return best
}

// relayRank says how good a relay p is: 2 if we dialled it at a public
// address (it is reachable from outside), 0 otherwise (a friend that
// dialled us, perhaps from behind its own NAT, or a LAN friend: useful
// only to friends on its network). -1: no direct connection, or p does
// not relay.
func (r *Reservations) relayRank(p peer.ID) int {
	c := directConn(r.h, p)
	if c == nil {
		return -1
	}
	if ok, _ := r.h.Peerstore().SupportsProtocols(p, proto.ProtoIDv2Hop); len(ok) == 0 {
		return -1
	}
	if manet.IsPublicAddr(c.RemoteMultiaddr()) && c.Stat().Direction == network.DirOutbound &&
		(r.cfg.Punched == nil || !r.cfg.Punched(c)) {
		return 2
	}
	return 0
}

// reconcile drops reservations that lapsed, renews those about to,
// and reserves on the best relays up to WantReservations.
func (r *Reservations) reconcile() {
	now := time.Now()
	need := r.cfg.Need()
	r.mu.Lock()
	var renew []peer.ID
	for id, h := range r.held {
		switch {
		case !need || !r.cfg.Friends.IsFriend(id) || directConn(r.h, id) == nil || now.After(h.expires):
			delete(r.held, id)
			r.log.Info("relay reservation dropped", slog.String("relay", id.ShortString()))
		case h.expires.Sub(now) < RelayReservationTTL/4 || h.expires.Sub(now) < (h.expires.Sub(h.since))/4 ||
			now.Sub(h.renewed) > ReserveRefresh:
			renew = append(renew, id)
		default:
			h.rank = max(h.rank, r.relayRank(id))
		}
	}
	held := len(r.held)
	worst, worstRank := peer.ID(""), 3
	for id, h := range r.held {
		if h.rank < worstRank {
			worst, worstRank = id, h.rank
		}
	}
	r.mu.Unlock()
	renewals := make([]relayCand, len(renew))
	for i, id := range renew {
		renewals[i] = relayCand{id, r.relayRank(id)}
	}
	r.reserveAll(renewals)
	if !need {
		return
	}
	var cands []relayCand
	for _, c := range r.h.Network().Conns() {
		id := c.RemotePeer()
		if slices.ContainsFunc(cands, func(x relayCand) bool { return x.id == id }) || !r.cfg.Friends.IsFriend(id) {
			continue
		}
		r.mu.Lock()
		_, isHeld := r.held[id]
		wait := now.Before(r.retry[id])
		r.mu.Unlock()
		if isHeld || wait {
			continue
		}
		if rank := r.relayRank(id); rank >= 0 {
			cands = append(cands, relayCand{id, rank})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].rank > cands[j].rank })
	// The best relays first, as many at once as slots are free: a relay
	// whose connection died delays only its own request.
	for len(cands) > 0 && held < WantReservations {
		n := min(WantReservations-held, len(cands))
		held += r.reserveAll(cands[:n])
		cands = cands[n:]
	}
	for _, c := range cands {
		if c.rank <= worstRank || worst == "" {
			return
		}
		// A better relay came online: take it, let the worst lapse.
		if !r.reserve(c.id, c.rank) {
			continue
		}
		r.mu.Lock()
		delete(r.held, worst)
		r.mu.Unlock()
		r.log.Info("relay reservation replaced by a better relay", slog.String("relay", worst.ShortString()), slog.String("by", c.id.ShortString()))
		worst, worstRank = "", 3
	}
}

// relayCand is a friend's relay we may reserve on, with its relayRank.
type relayCand struct {
	id   peer.ID
	rank int
}

// reserveAll asks every relay of cands at once and waits for their
// answers (each within ReserveTimeout); it returns how many granted.
func (r *Reservations) reserveAll(cands []relayCand) int {
	var wg sync.WaitGroup
	var granted atomic.Int32
	for _, c := range cands {
		wg.Go(func() {
			if r.reserve(c.id, c.rank) {
				granted.Add(1)
			}
		})
	}
	wg.Wait()
	return int(granted.Load())
}

// reserve asks the friend id's relay for a slot (or renews ours) and
// records it; it reports whether the relay granted it.
func (r *Reservations) reserve(id peer.ID, rank int) bool {
	ctx, cancel := context.WithTimeout(r.ctx, ReserveTimeout)
	defer cancel()
	rsvp, err := client.Reserve(network.WithNoDial(ctx, "relay reservation"), r.h, peer.AddrInfo{ID: id})
	var rerr client.ReservationError
	refused := err != nil && errors.As(err, &rerr) && rerr.Status != pbv2.Status_CONNECTION_FAILED
	if err != nil && !refused && r.cfg.Unanswered != nil {
		r.cfg.Unanswered(id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.retry[id] = time.Now().Add(ReserveRetry)
		if old, ok := r.held[id]; ok && (refused || time.Now().After(old.expires)) {
			delete(r.held, id)
			r.log.Info("relay reservation dropped: the relay refused to renew it", slog.String("relay", id.ShortString()))
		}
		r.log.Debug("relay reservation failed", slog.String("relay", id.ShortString()), slog.Any("err", err))
		return false
	}
	if rank < 2 && len(rsvp.Addrs) == 0 && !r.loopback {
		// A relay we did not dial at a public address and that knows no
		// public address of its own is behind a NAT too: its circuit
		// addresses would reach no one.
		r.retry[id] = time.Now().Add(ReserveRetry)
		delete(r.held, id)
		return false
	}
	h, ok := r.held[id]
	if !ok {
		h = &heldReservation{relay: id, since: time.Now()}
		r.held[id] = h
		r.log.Info("relay reservation held", slog.String("relay", id.ShortString()), slog.Time("expires", rsvp.Expiration))
	}
	h.expires, h.rank, h.renewed = rsvp.Expiration, rank, time.Now()
	h.addrs = r.circuitAddrs(id, rsvp.Addrs)
	return true
}

// circuitAddrs builds our circuit addresses through relay: from the
// public addresses the relay vouched for, then where our direct
// connections to it go.
func (r *Reservations) circuitAddrs(relay peer.ID, vouched []ma.Multiaddr) []ma.Multiaddr {
	relayComp, err := ma.NewComponent("p2p", relay.String())
	if err != nil {
		return nil
	}
	circuit := ma.StringCast("/p2p-circuit")
	base := slices.Clone(vouched)
	for _, c := range r.h.Network().ConnsToPeer(relay) {
		if !isCircuit(c.RemoteMultiaddr()) {
			base = append(base, c.RemoteMultiaddr())
		}
	}
	var out []ma.Multiaddr
	for _, b := range base {
		b = stripPeer(b).Encapsulate(ma.Multiaddr{*relayComp})
		if !(*AddrPolicy)(nil).Allowed(relay, b) {
			continue
		}
		a := b.Encapsulate(circuit)
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
		if len(out) == MaxCircuitAddrsPerRelay {
			break
		}
	}
	return out
}
