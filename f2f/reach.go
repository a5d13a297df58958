package f2f

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/time/rate"

	"kith/f2f/pb"
	"kith/internal/frame"
)

// ReachProtocol is the protocol of dial-back requests among friends.
const ReachProtocol protocol.ID = "/kith/reach/1"

// Reachability says whether the node is directly reachable, as friends
// found: libp2p's AutoNAT dials back from a fresh key, which every
// friend's gater refuses, so it would always answer "unreachable". Here a
// friend dials back with its own key (so our gater admits it) from a
// fresh port (so that the NAT mapping our own connection to it made does
// not let it in), and only at the IP our connection to it comes from (so
// a friend cannot be made to dial elsewhere).
//
// The candidates are the node's public addresses: public interface
// addresses, UPnP / NAT-PMP mappings, --announce addresses and the
// addresses friends observe for it (identify). An address one friend
// reached is confirmed; an observed address that ObservedAgree friends
// report and none failed to reach is adopted too, since libp2p would
// need 4 observers. Both are advertised (Traversal). The state decides
// whether the node keeps relay reservations (Reservations.Need).

// Reachability states.
const (
	ReachUnknown = "unknown"
	ReachPublic  = "public"
	ReachPrivate = "private"
)

// ReachState is what the node knows of its reachability.
type ReachState struct {
	// State is ReachPublic (directly reachable), ReachPrivate (behind a
	// NAT or firewall) or ReachUnknown.
	State string `json:"state"`
	// How says how the node knows, in words.
	How string `json:"how"`
	// Reachable are the addresses a friend reached from outside.
	Reachable []string `json:"reachable,omitempty"`
	// Unreachable are the public addresses friends failed to reach.
	Unreachable []string `json:"unreachable,omitempty"`
	// Observed are the addresses friends see us at.
	Observed []string `json:"observed,omitempty"`
	// Checked is when friends last dialled us back (zero: never).
	Checked time.Time `json:"checked,omitzero"`
	// CheckedBy names the friends that did.
	CheckedBy []peer.ID `json:"checked_by,omitempty"`
}

// ReachConfig holds the dependencies of Reach.
type ReachConfig struct {
	Host      host.Host
	Key       crypto.PrivKey // the node key: dial-backs we make are made with it
	Friends   *Friends
	Traversal *Traversal
	Log       *slog.Logger
	// Names, if set, names friends in ReachState.How.
	Names func(peer.ID) string
	// OnChange, if set, is called (on Reach's goroutine) when the state
	// changes: public, private or unknown.
	OnChange func(ReachState)
	// Unanswered, if set, hears of a friend that did not answer a
	// dial-back request (its connection may be dead: the connector
	// probes it).
	Unanswered func(peer.ID)
	// candidate, if set, replaces manet.IsPublicAddr as the test of which
	// of our addresses are worth checking (tests on 127.0.0.1).
	candidate func(ma.Multiaddr) bool
}

// Reach checks the node's reachability with friends and answers their
// dial-back requests. It is safe for concurrent use.
type Reach struct {
	cfg ReachConfig
	h   host.Host
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sub    event.Subscription
	kick   chan struct{}
	sem    chan struct{} // dial-back requests we answer at once
	once   sync.Once

	mu        sync.Mutex
	observed  map[observedKey]observation
	confirmed map[string]time.Time // address -> when a friend reached it
	refuted   map[string]time.Time // address -> when friends failed to
	state     ReachState
	lastCands string
	checkAt   time.Time // zero: no check scheduled
	lastTry   time.Time // when a check last ran
	limits    map[peer.ID]*rate.Limiter
	started   time.Time
}

type observedKey struct {
	by        peer.ID
	transport string
}

type observation struct {
	addr ma.Multiaddr
	from netip.Addr // the friend's IP, so two friends behind one IP count once
	at   time.Time
}

// NewReach starts checking reachability and answering friends. Close
// stops it.
func NewReach(cfg ReachConfig) (*Reach, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.candidate == nil {
		cfg.candidate = func(a ma.Multiaddr) bool { return manet.IsPublicAddr(a) && !isCircuit(a) }
	}
	if cfg.Names == nil {
		cfg.Names = func(p peer.ID) string { return p.String() }
	}
	sub, err := cfg.Host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return nil, fmt.Errorf("starting reachability checks: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reach{
		cfg: cfg, h: cfg.Host, log: cfg.Log, ctx: ctx, cancel: cancel, sub: sub,
		kick: make(chan struct{}, 1), sem: make(chan struct{}, ReachConcurrent),
		observed: map[observedKey]observation{}, confirmed: map[string]time.Time{}, refuted: map[string]time.Time{},
		limits: map[peer.ID]*rate.Limiter{}, started: time.Now(),
		state: ReachState{State: ReachUnknown, How: "not checked yet: no friend online to ask"},
	}
	r.h.SetStreamHandler(ReachProtocol, r.handle)
	if cfg.Traversal != nil {
		cfg.Traversal.AddSource(r.Adopted)
		cfg.Traversal.SetObserved(r.Observed)
	}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// Close stops checking and answering, and waits for its goroutines. Safe
// to call more than once.
func (r *Reach) Close() error {
	r.once.Do(func() {
		r.h.RemoveStreamHandler(ReachProtocol)
		r.cancel()
		r.sub.Close()
		r.wg.Wait()
	})
	return nil
}

// State returns what the node knows of its reachability.
func (r *Reach) State() ReachState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state
	st.Reachable, st.Unreachable, st.CheckedBy = slices.Clone(st.Reachable), slices.Clone(st.Unreachable), slices.Clone(st.CheckedBy)
	for _, o := range r.observedLocked() {
		st.Observed = append(st.Observed, o.String())
	}
	return st
}

// Private reports whether friends found the node unreachable from
// outside (and none reached it).
func (r *Reach) Private() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.State == ReachPrivate
}

// Public reports whether a friend reached the node from outside.
func (r *Reach) Public() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.State == ReachPublic
}

// Recheck asks friends again soon (the node's addresses changed).
func (r *Reach) Recheck() {
	r.mu.Lock()
	r.checkAt = time.Now().Add(ReachSettle)
	r.mu.Unlock()
	r.poke()
}

func (r *Reach) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Adopted returns the addresses friends observe for us that are worth
// advertising: confirmed by a dial-back, or agreed by ObservedAgree
// friends and not refuted.
func (r *Reach) Adopted() []ma.Multiaddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ma.Multiaddr
	count := map[string]map[netip.Addr]bool{}
	addrs := map[string]ma.Multiaddr{}
	for _, o := range r.observed {
		k := o.addr.String()
		if count[k] == nil {
			count[k] = map[netip.Addr]bool{}
		}
		count[k][o.from] = true
		addrs[k] = o.addr
	}
	for k, a := range addrs {
		_, ok := r.confirmed[k]
		_, bad := r.refuted[k]
		if ok || (len(count[k]) >= ObservedAgree && !bad) {
			out = append(out, a)
		}
	}
	for k := range r.confirmed {
		if _, seen := addrs[k]; !seen {
			if a, err := ma.NewMultiaddr(k); err == nil {
				out = append(out, a)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Observed returns the distinct addresses friends observe for us, each
// seen by at least one friend.
func (r *Reach) Observed() []ma.Multiaddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.observedLocked()
}

// observedLocked returns the distinct addresses friends observe for us.
func (r *Reach) observedLocked() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, o := range r.observed {
		if !slices.ContainsFunc(out, o.addr.Equal) {
			out = append(out, o.addr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func (r *Reach) loop() {
	defer r.wg.Done()
	tick := time.NewTicker(ReachTick)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case ev, ok := <-r.sub.Out():
			if !ok {
				return
			}
			r.observe(ev.(event.EvtPeerIdentificationCompleted))
		case <-r.kick:
		case <-tick.C:
		}
		r.maybeCheck()
	}
}

// Started returns when Reach started (Reservations waits a moment for
// a first answer before it reserves).
func (r *Reach) Started() time.Time { return r.started }

// observe records the address a friend sees us at.
func (r *Reach) observe(e event.EvtPeerIdentificationCompleted) {
	if !r.cfg.Friends.IsFriend(e.Peer) || e.Conn == nil || e.ObservedAddr == nil || isCircuit(e.Conn.RemoteMultiaddr()) {
		return
	}
	obs := thinWaist(e.ObservedAddr)
	from, ok := addrIP(e.Conn.RemoteMultiaddr())
	if obs == nil || !ok {
		return
	}
	key := observedKey{by: e.Peer, transport: transportOf(obs)}
	r.mu.Lock()
	if _, had := r.observed[key]; !had && len(r.observed) >= MaxObservedAddrs {
		var oldest observedKey
		var at time.Time
		for k, o := range r.observed {
			if at.IsZero() || o.at.Before(at) {
				oldest, at = k, o.at
			}
		}
		delete(r.observed, oldest)
	}
	r.observed[key] = observation{addr: obs, from: from, at: time.Now()}
	if r.state.State == ReachUnknown && r.checkAt.IsZero() {
		r.checkAt = time.Now().Add(ReachSettle)
	}
	r.mu.Unlock()
}

// thinWaist returns ip/tcp/port or ip/udp/port/quic-v1 of a, or nil.
func thinWaist(a ma.Multiaddr) ma.Multiaddr {
	if len(a) >= 2 && (a[0].Code() == ma.P_IP4 || a[0].Code() == ma.P_IP6) {
		switch {
		case a[1].Code() == ma.P_TCP:
			return a[:2]
		case len(a) >= 3 && a[1].Code() == ma.P_UDP && a[2].Code() == ma.P_QUIC_V1:
			return a[:3]
		}
	}
	return nil
}

func transportOf(a ma.Multiaddr) string {
	if len(a) >= 2 && a[1].Code() == ma.P_TCP {
		return "tcp"
	}
	return "quic"
}

// candidates are our addresses worth a dial-back, at most MaxReachAddrs.
func (r *Reach) candidates() []ma.Multiaddr {
	var all []ma.Multiaddr
	all = append(all, r.h.Addrs()...)
	if tr := r.cfg.Traversal; tr != nil {
		all = append(all, tr.MappedAddrs()...)
		all = append(all, tr.Announced()...)
	}
	r.mu.Lock()
	all = append(all, r.observedLocked()...)
	r.mu.Unlock()
	var out []ma.Multiaddr
	for _, a := range all {
		if isCircuit(a) {
			continue
		}
		a = thinWaist(a)
		if a == nil || !r.cfg.candidate(a) || slices.ContainsFunc(out, a.Equal) {
			continue
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	if len(out) > MaxReachAddrs {
		out = out[:MaxReachAddrs]
	}
	return out
}

// maybeCheck asks friends to dial us back when one is due: the
// candidates changed, nothing is known yet, or ReachRecheck passed.
func (r *Reach) maybeCheck() {
	cands := r.candidates()
	key := fmt.Sprint(cands)
	now := time.Now()
	r.mu.Lock()
	if key != r.lastCands {
		r.lastCands = key
		r.checkAt = now.Add(ReachSettle)
	}
	if !r.state.Checked.IsZero() && now.Sub(r.state.Checked) > ReachRecheck && r.checkAt.IsZero() {
		r.checkAt = now
	}
	if r.state.State == ReachUnknown && r.checkAt.IsZero() && now.Sub(r.lastTry) > ReachUnknownRetry {
		r.checkAt = now
	}
	due := !r.checkAt.IsZero() && !now.Before(r.checkAt)
	if due {
		r.checkAt, r.lastTry = time.Time{}, now
	}
	r.mu.Unlock()
	if due {
		r.check(cands)
	}
}

// checkers are friends that can dial us back: connected directly, not
// from the IP of one of our candidates (a friend behind our own NAT
// would reach us from inside), those we dialled first.
func (r *Reach) checkers(cands []ma.Multiaddr) []peer.ID {
	ours := map[netip.Addr]bool{}
	for _, c := range cands {
		if ip, ok := addrIP(c); ok && !ip.IsLoopback() {
			ours[ip] = true
		}
	}
	type cand struct {
		id  peer.ID
		out bool
	}
	var out []cand
	for _, id := range r.cfg.Friends.IDs() {
		c := directConn(r.h, id)
		if c == nil {
			continue
		}
		if ip, ok := addrIP(c.RemoteMultiaddr()); !ok || ours[ip] {
			continue
		}
		if ok, _ := r.h.Peerstore().SupportsProtocols(id, ReachProtocol); len(ok) == 0 {
			continue
		}
		out = append(out, cand{id, c.Stat().Direction == network.DirOutbound})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].out && !out[j].out })
	ids := make([]peer.ID, 0, len(out))
	for _, c := range out {
		ids = append(ids, c.id)
	}
	return ids
}

// check asks up to ReachCheckers friends to dial us back at cands and
// records what they found.
func (r *Reach) check(cands []ma.Multiaddr) {
	checkers := r.checkers(cands)
	r.log.Debug("checking reachability", slog.Any("candidates", cands), slog.Int("checkers", len(checkers)))
	now := time.Now()
	if len(cands) == 0 {
		r.mu.Lock()
		was := r.state.State
		if len(checkers) > 0 {
			r.state = ReachState{State: ReachPrivate, Checked: now,
				How: "every address of this node is private and no friend sees a public one (a home router's NAT, or only LAN friends online)"}
		} else if r.state.Checked.IsZero() {
			r.state = ReachState{State: ReachUnknown, How: "not checked yet: no friend online to ask"}
		}
		st := r.state
		r.mu.Unlock()
		if st.State != was && r.cfg.OnChange != nil {
			r.cfg.OnChange(st)
		}
		return
	}
	if len(checkers) == 0 {
		r.mu.Lock()
		if r.state.Checked.IsZero() {
			r.state = ReachState{State: ReachUnknown, How: "not checked yet: no friend online outside this network to dial back"}
		}
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	if r.state.Checked.IsZero() {
		r.state.How = fmt.Sprintf("checking: asking %s to dial back", r.cfg.Names(checkers[0]))
	}
	r.mu.Unlock()
	reached := map[string]peer.ID{}
	failed := map[string]bool{}
	var by []peer.ID
	// ReachCheckers friends at once, the next one when one fails; each
	// answer is recorded as it comes, so that a friend whose connection
	// died (it moved, its router forgot us) delays nothing the others
	// said: a verdict of "private" lets relays be reserved at once.
	answers := make(chan reachAnswer)
	pending, next := 0, 0
	for {
		for pending+len(by) < ReachCheckers && next < len(checkers) {
			id := checkers[next]
			next++
			pending++
			r.wg.Go(func() {
				res, err := r.ask(id, cands)
				answers <- reachAnswer{id, res, err}
			})
		}
		if pending == 0 {
			return
		}
		a := <-answers
		pending--
		if a.err != nil {
			r.log.Debug("reachability check failed", slog.String("friend", a.id.ShortString()), slog.Any("err", a.err))
			if r.cfg.Unanswered != nil {
				r.cfg.Unanswered(a.id)
			}
			continue
		}
		by = append(by, a.id)
		for i, v := range a.res {
			k := cands[i].String()
			switch v {
			case pb.ReachAnswer_REACHED:
				reached[k] = a.id
			case pb.ReachAnswer_FAILED:
				failed[k] = true
			}
		}
		r.record(cands, reached, failed, slices.Clone(by))
	}
}

// record sets the state from the answers of the friends by so far:
// reached and failed map candidates to the friend that reached them.
func (r *Reach) record(cands []ma.Multiaddr, reached map[string]peer.ID, failed map[string]bool, by []peer.ID) {
	st := ReachState{Checked: time.Now(), CheckedBy: by}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cands {
		k := c.String()
		if _, ok := reached[k]; ok {
			r.confirmed[k] = st.Checked
			delete(r.refuted, k)
			st.Reachable = append(st.Reachable, k)
		} else if failed[k] {
			delete(r.confirmed, k)
			r.refuted[k] = st.Checked
			st.Unreachable = append(st.Unreachable, k)
		}
	}
	// Addresses no longer among our candidates are forgotten.
	for k := range r.confirmed {
		if !slices.ContainsFunc(cands, func(c ma.Multiaddr) bool { return c.String() == k }) {
			delete(r.confirmed, k)
		}
	}
	for k := range r.refuted {
		if !slices.ContainsFunc(cands, func(c ma.Multiaddr) bool { return c.String() == k }) {
			delete(r.refuted, k)
		}
	}
	names := make([]string, len(by))
	for i, id := range by {
		names[i] = r.cfg.Names(id)
	}
	switch {
	case len(st.Reachable) > 0:
		st.State = ReachPublic
		st.How = fmt.Sprintf("%s reached %s from outside (dial-back)", r.cfg.Names(reached[st.Reachable[0]]), strings.Join(st.Reachable, ", "))
	case len(st.Unreachable) > 0:
		st.State = ReachPrivate
		st.How = fmt.Sprintf("%s could not reach %s from outside (dial-back): behind a NAT or firewall", strings.Join(names, " and "), strings.Join(st.Unreachable, ", "))
	default:
		st.State = r.state.State
		st.How = fmt.Sprintf("%s could not check (none of our public addresses is where our connection to them comes from)", strings.Join(names, " and "))
		if st.State == "" {
			st.State = ReachUnknown
		}
	}
	changed := r.state.State != st.State
	if changed {
		r.log.Info("reachability", slog.String("state", st.State), slog.String("how", st.How))
	}
	r.state = st
	if changed && r.cfg.OnChange != nil {
		r.mu.Unlock()
		r.cfg.OnChange(st)
		r.mu.Lock()
	}
}

// reachAnswer is friend id's answer to a dial-back request.
type reachAnswer struct {
	id  peer.ID
	res []pb.ReachAnswer_Result
	err error
}

// ask sends friend id a dial-back request for cands.
func (r *Reach) ask(id peer.ID, cands []ma.Multiaddr) ([]pb.ReachAnswer_Result, error) {
	ctx, cancel := context.WithTimeout(r.ctx, ReachRequestTimeout)
	defer cancel()
	s, err := r.h.NewStream(network.WithNoDial(ctx, "reachability check"), id, ReachProtocol)
	if err != nil {
		return nil, fmt.Errorf("opening reach stream: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	req := &pb.ReachRequest{}
	for _, c := range cands {
		req.Addrs = append(req.Addrs, c.Bytes())
	}
	if err := frame.NewWriter(s, ReachMaxMessage).WriteMsg(req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("writing reach request: %w", err)
	}
	s.CloseWrite()
	rd := frame.NewReader(s, ReachMaxMessage, frame.Options{FrameTimeout: ReachRequestTimeout, Memory: s.Scope()})
	defer rd.Close()
	b, err := rd.Next()
	var res []pb.ReachAnswer_Result
	if err == nil {
		res, err = readReachAnswer(b, len(cands))
	}
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("reading reach answer: %w", err)
	}
	return res, nil
}

// readReachAnswer decodes the answer to a request of n addresses: at
// most n results, each a known value (others read as SKIPPED).
func readReachAnswer(b []byte, n int) ([]pb.ReachAnswer_Result, error) {
	var ans pb.ReachAnswer
	if err := frame.Unmarshal(b, &ans); err != nil {
		return nil, err
	}
	if len(ans.Results) > n {
		return nil, fmt.Errorf("%w: %d results for %d addresses", errReachRequest, len(ans.Results), n)
	}
	for i, v := range ans.Results {
		if v != pb.ReachAnswer_REACHED && v != pb.ReachAnswer_FAILED {
			ans.Results[i] = pb.ReachAnswer_SKIPPED
		}
	}
	return ans.Results, nil
}

// errReachRequest means a friend sent a malformed dial-back request or
// answer.
var errReachRequest = errors.New("malformed reach request")

// readReachRequest decodes a dial-back request.
func readReachRequest(b []byte) ([]ma.Multiaddr, error) {
	var m pb.ReachRequest
	if err := frame.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m.Addrs) > MaxReachAddrs {
		return nil, fmt.Errorf("%w: %d addresses", errReachRequest, len(m.Addrs))
	}
	out := make([]ma.Multiaddr, 0, len(m.Addrs))
	for _, raw := range m.Addrs {
		a, err := ma.NewMultiaddrBytes(raw)
		if err != nil {
			a = nil // answered SKIPPED
		}
		out = append(out, a)
	}
	return out, nil
}

// takeRequest reports whether a request of friend id is within its rate.
func (r *Reach) takeRequest(id peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	lim, ok := r.limits[id]
	if !ok {
		if len(r.limits) > 4*MaxLookupVerifiers { // forget the idle ones
			for k, l := range r.limits {
				if l.Tokens() >= ReachRequestBurst {
					delete(r.limits, k)
				}
			}
		}
		lim = rate.NewLimiter(ReachRequestRate, ReachRequestBurst)
		r.limits[id] = lim
	}
	return lim.Allow()
}

// handle answers a friend's dial-back request.
func (r *Reach) handle(s network.Stream) {
	asker := s.Conn().RemotePeer()
	if !r.cfg.Friends.IsFriend(asker) || !r.takeRequest(asker) {
		s.Reset()
		return
	}
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	default:
		s.Reset()
		return
	}
	rd := frame.NewReader(s, ReachMaxMessage, frame.Options{FrameTimeout: KadFrameTimeout, IdleTimeout: KadFrameTimeout, Memory: s.Scope()})
	defer rd.Close()
	b, err := rd.Next()
	var addrs []ma.Multiaddr
	if err == nil {
		addrs, err = readReachRequest(b)
	}
	if err != nil {
		r.log.Debug("bad reach request from a friend", slog.String("peer", asker.ShortString()), slog.Any("err", err))
		s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, ReachRequestTimeout-time.Second)
	defer cancel()
	ans := &pb.ReachAnswer{Results: r.dialBack(ctx, asker, addrs)}
	s.SetWriteDeadline(time.Now().Add(KadRequestTimeout))
	if err := frame.NewWriter(s, ReachMaxMessage).WriteMsg(ans); err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// dialBack dials asker at each of addrs that is an address of the
// connection the asker's request came from (same IP) and passes our
// address policy; others are SKIPPED.
func (r *Reach) dialBack(ctx context.Context, asker peer.ID, addrs []ma.Multiaddr) []pb.ReachAnswer_Result {
	out := make([]pb.ReachAnswer_Result, len(addrs))
	from := map[netip.Addr]bool{}
	for _, c := range r.h.Network().ConnsToPeer(asker) {
		if ip, ok := addrIP(c.RemoteMultiaddr()); ok && !isCircuit(c.RemoteMultiaddr()) {
			from[ip] = true
		}
	}
	policy := NewAddrPolicy(r.h.Network().ListenAddresses())
	var todo []int
	for i, a := range addrs {
		if a == nil || thinWaist(a) == nil || len(a) != len(thinWaist(a)) || !policy.Allowed(asker, a) {
			continue
		}
		if ip, ok := addrIP(a); ok && from[ip] {
			todo = append(todo, i)
		}
	}
	// Each address gets a dialler of its own, side by side: a host dials
	// a peer once at a time, and a dial to an address that drops packets
	// takes the whole ReachDialTimeout.
	var wg sync.WaitGroup
	for _, i := range todo {
		out[i] = pb.ReachAnswer_FAILED
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := addrs[i]
			d, err := newDialer(r.cfg.Key, asker, func(a ma.Multiaddr) bool { return target.Equal(thinWaist(a)) })
			if err != nil {
				r.log.Debug("starting dial-back", slog.Any("err", err))
				return
			}
			defer d.Close()
			dctx, cancel := context.WithTimeout(ctx, ReachDialTimeout)
			err = d.Connect(dctx, peer.AddrInfo{ID: asker, Addrs: []ma.Multiaddr{target}})
			cancel()
			if err == nil {
				out[i] = pb.ReachAnswer_REACHED
			}
			r.log.Debug("dialled a friend back", slog.String("peer", asker.ShortString()), slog.String("addr", target.String()), slog.Any("err", err))
		}()
	}
	wg.Wait()
	return out
}

// newDialer builds a short-lived host with our key that listens nowhere
// and dials from fresh ports (TCP without port reuse, QUIC from a new
// socket): only to peer, only at addresses allow admits. It answers no
// protocol (not even identify: the asker must not take its empty address
// list for ours).
func newDialer(key crypto.PrivKey, p peer.ID, allow func(ma.Multiaddr) bool) (host.Host, error) {
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.Ping(false),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.ConnectionGater(dialOnly{p: p, allow: allow}),
	)
	if err != nil {
		return nil, fmt.Errorf("building dial-back host: %w", err)
	}
	h.RemoveStreamHandler(identify.ID)
	h.RemoveStreamHandler(identify.IDPush)
	return h, nil
}

// dialOnly is the dial-back host's gater: out to one peer at approved
// addresses, nothing in.
type dialOnly struct {
	p     peer.ID
	allow func(ma.Multiaddr) bool
}

var _ connmgr.ConnectionGater = dialOnly{}

func (g dialOnly) InterceptPeerDial(p peer.ID) bool { return p == g.p }
func (g dialOnly) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return p == g.p && g.allow(a)
}
func (g dialOnly) InterceptAccept(network.ConnMultiaddrs) bool { return false }
func (g dialOnly) InterceptSecured(d network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return d == network.DirOutbound && p == g.p
}
func (g dialOnly) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
