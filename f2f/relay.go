package f2f

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/time/rate"
)

// Friends relay for friends: every node runs a circuit relay v2 service
// (go-libp2p's) that only its friends may use. A friend behind a NAT
// reserves a slot with us; another friend of ours reaches it through us;
// both then try to hole-punch (DCUtR) to a direct connection.
//
// libp2p's own EnableRelayService waits for AutoNAT to call the node
// public, which a friends-only node never hears (AutoNAT dials back from
// strangers), so the service is started here, at once.
//
// Limits. A relayed connection carries the whole friend link (identify,
// the router's and the lobby's streams, chat, share) until a direct one
// exists, so circuits have no per-circuit limit: the client sees an
// unlimited connection and every protocol works over it unchanged. What
// relaying costs us is capped as a whole instead: a bandwidth cap shared
// by every circuit (RelayConfig.Rate), a cap on the circuits open at once
// (RelayConfig.MaxCircuits) and on the circuits per friend, and a 32 KiB
// copy buffer per direction.

// ErrRelayFull means the relay carries as many circuits as it allows.
var ErrRelayFull = errors.New("relay carries its maximum of circuits")

// RelayConfig says how much relaying for friends may cost the node.
type RelayConfig struct {
	// Rate caps the bytes per second relayed for all circuits together;
	// 0 means DefaultRelayRate, negative means no cap.
	Rate int64
	// MaxCircuits caps the circuits open at once; 0 means
	// DefaultRelayCircuits.
	MaxCircuits int
	// Unreachable, if set, reports that friends found the node behind a
	// NAT: it then refuses new reservations, since circuit addresses
	// through it would reach no one outside its network.
	Unreachable func() bool
	// Log receives refusals at Debug.
	Log *slog.Logger
}

// RelayStats counts what the relay did for friends.
type RelayStats struct {
	// Reservations is how many friends hold a reservation with us now.
	Reservations int64 `json:"reservations"`
	// ReservationsRefused counts reservation requests refused (a
	// stranger, a relayed connection, over a limit).
	ReservationsRefused uint64 `json:"reservations_refused"`
	// Circuits is how many circuits we relay now.
	Circuits int64 `json:"circuits"`
	// CircuitsTotal counts the circuits we relayed since start.
	CircuitsTotal uint64 `json:"circuits_total"`
	// CircuitsRefused counts circuit requests refused (an end that is
	// not our friend, no reservation, over a cap).
	CircuitsRefused uint64 `json:"circuits_refused"`
	// RefusedNotFriend counts reservations and circuits refused because
	// a peer was not our friend (the ACL).
	RefusedNotFriend uint64 `json:"refused_not_friend"`
	// Bytes counts the bytes relayed, both directions.
	Bytes uint64 `json:"bytes"`
	// Rate is the bandwidth cap in effect, bytes per second (0: none).
	Rate int64 `json:"rate"`
	// MaxCircuits is the circuit cap in effect.
	MaxCircuits int `json:"max_circuits"`
}

// Relay is the node's relay service for friends. It is safe for
// concurrent use.
type Relay struct {
	svc         *relay.Relay
	friends     Allowlist
	unreachable func() bool
	log         *slog.Logger
	max         int
	lim         *rate.Limiter // nil: no cap
	rateVal     atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	circuits                                      atomic.Int64
	reservations                                  atomic.Int64
	resRefused, circRefused, circTotal, notFriend atomic.Uint64
	bytes                                         atomic.Uint64
}

// StartRelay serves circuit relay v2 on h for friends only: a reservation
// only from a friend, a circuit only between two friends. Close stops it.
func StartRelay(h host.Host, friends Allowlist, cfg RelayConfig) (*Relay, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxCircuits <= 0 {
		cfg.MaxCircuits = DefaultRelayCircuits
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRelayRate
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{friends: friends, log: cfg.Log, max: cfg.MaxCircuits, ctx: ctx, cancel: cancel, unreachable: cfg.Unreachable}
	if cfg.Rate > 0 {
		r.lim = rate.NewLimiter(rate.Limit(cfg.Rate), max(RelayRateBurst, int(min(cfg.Rate, 1<<30))/10))
		r.rateVal.Store(cfg.Rate)
	}
	res := relay.DefaultResources()
	res.Limit = nil // no per-circuit limit: see the package comment above
	res.ReservationTTL = RelayReservationTTL
	res.MaxReservations = RelayReservations
	res.MaxCircuits = RelayCircuitsPerPeer
	res.BufferSize = RelayBufferSize
	res.MaxReservationsPerIP = RelayReservationsPerIP
	res.MaxReservationsPerASN = RelayReservations
	svc, err := relay.New(relayHost{Host: h, r: r},
		relay.WithResources(res),
		relay.WithACL(relayACL{r}),
		relay.WithMetricsTracer(relayTracer{r}),
		// Circuit addresses are built from the relay's own public
		// addresses, never from its circuit addresses (no chains).
		relay.WithReservationAddressFilter(func(a ma.Multiaddr) bool { return manet.IsPublicAddr(a) && !isCircuit(a) }),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting relay for friends: %w", err)
	}
	r.svc = svc
	return r, nil
}

// Close stops relaying; circuits in progress are cut. Safe to call more
// than once.
func (r *Relay) Close() error {
	var err error
	r.once.Do(func() {
		err = r.svc.Close()
		r.cancel()
	})
	return err
}

// SetRate changes the bandwidth cap (bytes per second; negative: none)
// for the circuits open and to come. A relay started without a cap keeps
// none.
func (r *Relay) SetRate(bps int64) {
	if r.lim == nil {
		return
	}
	if bps < 0 {
		r.lim.SetLimit(rate.Inf)
		r.rateVal.Store(0)
		return
	}
	if bps == 0 {
		bps = DefaultRelayRate
	}
	r.lim.SetLimit(rate.Limit(bps))
	r.rateVal.Store(bps)
}

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	return RelayStats{
		Reservations: max(r.reservations.Load(), 0), ReservationsRefused: r.resRefused.Load(),
		Circuits: r.circuits.Load(), CircuitsTotal: r.circTotal.Load(), CircuitsRefused: r.circRefused.Load(),
		RefusedNotFriend: r.notFriend.Load(), Bytes: r.bytes.Load(), Rate: r.rateVal.Load(), MaxCircuits: r.max,
	}
}

// relayACL admits reservations from friends and circuits between friends.
type relayACL struct{ r *Relay }

func (a relayACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	if !a.r.friends.IsFriend(p) {
		a.r.notFriend.Add(1)
		a.r.log.Debug("relay: refused a reservation from a non-friend", slog.String("peer", p.ShortString()))
		return false
	}
	if a.r.unreachable != nil && a.r.unreachable() {
		a.r.log.Debug("relay: refused a reservation: we are behind a NAT ourselves", slog.String("peer", p.ShortString()))
		return false
	}
	return true
}

func (a relayACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dst peer.ID) bool {
	if src != dst && a.r.friends.IsFriend(src) && a.r.friends.IsFriend(dst) {
		return true
	}
	a.r.notFriend.Add(1)
	a.r.log.Debug("relay: refused a circuit with a non-friend end", slog.String("src", src.ShortString()), slog.String("dst", dst.ShortString()))
	return false
}

// relayTracer counts what the relay service reports.
type relayTracer struct{ r *Relay }

func (t relayTracer) RelayStatus(bool)               {}
func (t relayTracer) ConnectionOpened()              {}
func (t relayTracer) ConnectionClosed(time.Duration) {}
func (t relayTracer) ReservationClosed(cnt int)      { t.r.reservations.Add(-int64(cnt)) }
func (t relayTracer) BytesTransferred(cnt int)       { t.r.bytes.Add(uint64(cnt)) }
func (t relayTracer) ReservationAllowed(renew bool) {
	if !renew {
		t.r.reservations.Add(1)
	}
}

func (t relayTracer) ConnectionRequestHandled(st pbv2.Status) {
	if st == pbv2.Status_OK {
		t.r.circTotal.Add(1)
	} else {
		t.r.circRefused.Add(1)
	}
}

func (t relayTracer) ReservationRequestHandled(st pbv2.Status) {
	if st != pbv2.Status_OK {
		t.r.resRefused.Add(1)
	}
}

// relayHost is the host the relay service sees: the streams it relays
// are metered (the bandwidth cap) and each circuit's stop stream holds
// one of the relay's circuits (the circuit cap).
type relayHost struct {
	host.Host
	r *Relay
}

func (h relayHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(&meteredStream{Stream: s, r: h.r}) })
}

// NewStream is how the relay opens the stop stream of a circuit to its
// destination; it is the only stream the relay opens.
func (h relayHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if n := h.r.circuits.Add(1); n > int64(h.r.max) {
		h.r.circuits.Add(-1)
		h.r.log.Debug("relay: refused a circuit over the cap", slog.Int("max", h.r.max))
		return nil, ErrRelayFull
	}
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		h.r.circuits.Add(-1)
		return nil, err
	}
	return &meteredStream{Stream: s, r: h.r, circuit: true}, nil
}

// meteredStream is a stream the relay reads from: reads wait for the
// bandwidth cap's tokens. A circuit's stop stream gives its circuit back
// when it is closed or reset.
type meteredStream struct {
	network.Stream
	r       *Relay
	circuit bool
	done    atomic.Bool
}

func (s *meteredStream) Read(p []byte) (int, error) {
	lim := s.r.lim
	if lim != nil && len(p) > lim.Burst() {
		p = p[:lim.Burst()]
	}
	n, err := s.Stream.Read(p)
	if n > 0 && lim != nil {
		if werr := lim.WaitN(s.r.ctx, n); werr != nil && err == nil {
			err = fmt.Errorf("relay closing: %w", werr)
		}
	}
	return n, err
}

func (s *meteredStream) release() {
	if s.circuit && s.done.CompareAndSwap(false, true) {
		s.r.circuits.Add(-1)
	}
}

func (s *meteredStream) Close() error {
	s.release()
	return s.Stream.Close()
}

func (s *meteredStream) Reset() error {
	s.release()
	return s.Stream.Reset()
}

func (s *meteredStream) ResetWithError(code network.StreamErrorCode) error {
	s.release()
	return s.Stream.ResetWithError(code)
}
