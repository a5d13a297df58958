package tunnels

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/internal/seen"
)

// Route states.
const (
	// routePending: the request was forwarded; no TunnelOK yet.
	routePending = iota
	// routeAwaitLeft: TunnelOK came back (or this node holds the target);
	// the stream to the right is open and the stream from the left is
	// awaited.
	routeAwaitLeft
	// routeActive: both streams are joined (relay) or handed over
	// (holder).
	routeActive
)

// linkKey names a tunnel on one friend link.
type linkKey struct {
	p  peer.ID
	id TunnelID
}

// route is the routing entry of one tunnel at this hop: (left link, left
// id) <-> (right link, right id). The origin's route has no left; a
// holder's has no right.
type route struct {
	left   *link
	leftID TunnelID
	target [32]byte
	state  int

	holder bool
	// endpoint marks a holder's route that RouterConfig.Endpoint serves
	// (a chat identity), not a file.
	endpoint bool
	root     [32]byte
	origin   *originReq

	branches map[linkKey]*link // forwarded, not yet answered
	right    *link
	rightID  TunnelID

	rightStream network.Stream
	leftStream  network.Stream
	expires     time.Time
}

// originReq is a tunnel request of this node's own.
type originReq struct {
	results chan io.ReadWriteCloser // one value per branch, nil for none
	want    int
	got     int
	closed  bool
}

// tunnelTable holds the routing entries. Guarded by Router.mu.
type tunnelTable struct {
	byLeft  map[linkKey]*route
	byRight map[linkKey]*route
	seen    *seen.Set[RequestID] // requests forwarded or sent lately
	perLink map[peer.ID]int      // routes counted on their left link
	total   int
}

func newTunnelTable() tunnelTable {
	return tunnelTable{
		byLeft:  make(map[linkKey]*route),
		byRight: make(map[linkKey]*route),
		seen:    seen.New[RequestID](RequestCacheSize, RequestCacheTTL),
		perLink: make(map[peer.ID]int),
	}
}

// outMsg is a message to send once Router.mu is released.
type outMsg struct {
	l *link
	m Message
}

// flush sends out. A TunnelRequest that a full send queue drops is
// failed at once, as if the friend had answered FailLimit, so the
// request's sender learns now instead of when TunnelRequestTTL ends.
func (r *Router) flush(out []outMsg) {
	for _, o := range out {
		if o.l.Send(o.m) {
			continue
		}
		if req, ok := o.m.(*TunnelRequest); ok {
			r.handleTunnelFail(o.l, &TunnelFail{ID: req.ID, Code: FailLimit})
		}
	}
}

// remove deletes rt and tells its neighbours that still know it, except
// the link skip. It returns messages to send and streams to reset.
func (t *tunnelTable) remove(rt *route, skip *link, out []outMsg) ([]outMsg, []network.Stream) {
	var streams []network.Stream
	if rt.left != nil {
		k := linkKey{rt.left.peer, rt.leftID}
		if t.byLeft[k] != rt {
			return out, nil // already removed
		}
		delete(t.byLeft, k)
		t.perLink[rt.left.peer]--
		if t.perLink[rt.left.peer] <= 0 {
			delete(t.perLink, rt.left.peer)
		}
		t.total--
		if rt.left != skip && rt.state != routeActive {
			if rt.state == routePending {
				out = append(out, outMsg{rt.left, &TunnelFail{ID: rt.leftID, Code: FailNoRoute}})
			} else {
				out = append(out, outMsg{rt.left, &TunnelClose{ID: rt.leftID}})
			}
		}
	}
	for k, l := range rt.branches {
		delete(t.byRight, k)
		if l != skip {
			out = append(out, outMsg{l, &TunnelClose{ID: k.id}})
		}
	}
	rt.branches = nil
	if rt.right != nil {
		delete(t.byRight, linkKey{rt.right.peer, rt.rightID})
		if rt.right != skip && rt.state != routeActive {
			out = append(out, outMsg{rt.right, &TunnelClose{ID: rt.rightID}})
		}
	}
	for _, s := range []network.Stream{rt.leftStream, rt.rightStream} {
		if s != nil {
			streams = append(streams, s)
		}
	}
	rt.leftStream, rt.rightStream = nil, nil
	return out, streams
}

// dropBranch removes the unanswered branch k of rt; a relay whose
// branches all failed fails its request towards the left, and an origin
// is told the branch gave nothing.
func (t *tunnelTable) dropBranch(rt *route, k linkKey, code FailCode, out []outMsg) ([]outMsg, []network.Stream) {
	if _, ok := rt.branches[k]; !ok {
		return out, nil
	}
	delete(rt.branches, k)
	delete(t.byRight, k)
	if rt.origin != nil {
		if !rt.origin.closed {
			rt.origin.results <- nil // capacity is one per branch
		}
		return out, nil
	}
	if len(rt.branches) > 0 {
		return out, nil
	}
	if rt.left != nil {
		out = append(out, outMsg{rt.left, &TunnelFail{ID: rt.leftID, Code: code}})
	}
	return t.remove(rt, rt.left, out)
}

// dropLink removes what depends on l's control stream: routes whose
// request came from l and are not active, and unanswered branches on l.
func (t *tunnelTable) dropLink(r *Router, l *link) []network.Stream {
	var out []outMsg
	var streams []network.Stream
	for k, rt := range t.byRight {
		if k.p != l.peer {
			continue
		}
		var s []network.Stream
		if _, ok := rt.branches[k]; ok {
			out, s = t.dropBranch(rt, k, FailNoRoute, out)
		} else if rt.state != routeActive {
			out, s = t.remove(rt, l, out)
		}
		streams = append(streams, s...)
	}
	for _, rt := range t.byLeft {
		if rt.left == l && rt.state != routeActive {
			var s []network.Stream
			out, s = t.remove(rt, l, out)
			streams = append(streams, s...)
		}
	}
	r.goFn(func() { r.flush(out) })
	return streams
}

// expire drops requests and half-made tunnels older than
// TunnelRequestTTL.
func (t *tunnelTable) expire(now time.Time) ([]outMsg, []network.Stream) {
	t.seen.Expire(now)
	var out []outMsg
	var streams []network.Stream
	for _, rt := range t.byLeft {
		if rt.state != routeActive && now.After(rt.expires) {
			var s []network.Stream
			out, s = t.remove(rt, nil, out)
			streams = append(streams, s...)
		}
	}
	return out, streams
}

// closeAll drops every route, for Router.Close.
func (t *tunnelTable) closeAll() []network.Stream {
	var streams []network.Stream
	for _, m := range []map[linkKey]*route{t.byLeft, t.byRight} {
		for _, rt := range m {
			for _, s := range []network.Stream{rt.leftStream, rt.rightStream} {
				if s != nil {
					streams = append(streams, s)
				}
			}
			rt.leftStream, rt.rightStream = nil, nil
			if rt.origin != nil && !rt.origin.closed {
				rt.origin.closed = true
				close(rt.origin.results)
			}
		}
	}
	t.byLeft, t.byRight = map[linkKey]*route{}, map[linkKey]*route{}
	return streams
}

func (r *Router) handleTunnelRequest(l *link, m *TunnelRequest) {
	if !l.tunnelLim.Allow() {
		r.tunnelsDropped.Add(1)
		return
	}
	r.tunnelsRequested.Add(1)
	var root [32]byte
	holds := false
	if r.cfg.Holder != nil && r.cfg.OnTunnel != nil {
		root, holds = r.cfg.Holder.HoldsTarget(m.Target)
	}
	endpoint := !holds && r.cfg.Endpoint != nil && r.cfg.Endpoint.AcceptsTarget(m.Target)
	var out []outMsg
	defer func() { r.flush(out) }()
	fail := func(c FailCode) { out = append(out, outMsg{l, &TunnelFail{ID: m.ID, Code: c}}) }
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &r.tun
	key := linkKey{l.peer, m.ID}
	switch {
	case t.byLeft[key] != nil:
		fail(FailDuplicate)
		return
	case t.perLink[l.peer] >= MaxTunnelsPerFriend || t.total >= MaxTunnels:
		fail(FailLimit)
		return
	}
	rt := &route{left: l, leftID: m.ID, target: m.Target, expires: time.Now().Add(TunnelRequestTTL)}
	if holds || endpoint {
		rt.holder, rt.endpoint, rt.root, rt.state = true, endpoint, root, routeAwaitLeft
		t.byLeft[key] = rt
		t.perLink[l.peer]++
		t.total++
		// The TunnelOK leaves as late as one from a holder behind this
		// node could: after the holder delay, fixed for the target.
		delay := r.holderDelay("tunnel ok", m.Target[:])
		at := time.Now().Add(delay)
		r.log.Debug("tunnel request for a held target", slog.Duration("ok_in", delay))
		id := m.ID
		r.goFn(func() {
			if !r.sleepUntil(at, l.Done()) {
				return
			}
			r.mu.Lock()
			live := r.tun.byLeft[key] == rt && rt.state == routeAwaitLeft
			r.mu.Unlock()
			if live {
				l.Send(&TunnelOK{ID: id})
			}
		})
		return
	}
	if t.seen.Has(m.RequestID) {
		// A copy of a request forwarded already, by another path or
		// round a loop: refuse it fast, so a request floods each link
		// at most once.
		fail(FailDuplicate)
		return
	}
	pendingHere := 0
	for _, p := range t.byLeft {
		if p.left == l && p.state == routePending {
			pendingHere++
		}
	}
	if pendingHere >= MaxPendingTunnelRequests {
		fail(FailLimit)
		return
	}
	rt.branches = make(map[linkKey]*link)
	for _, f := range r.forwards(l.peer, r.otherLinks(l), m.Depth, m.Target[:], 1) {
		id := newTunnelID()
		rt.branches[linkKey{f.l.peer, id}] = f.l
		out = append(out, outMsg{f.l, &TunnelRequest{ID: id, Depth: f.depth, Target: m.Target, RequestID: m.RequestID}})
	}
	if len(rt.branches) == 0 {
		fail(FailNoRoute)
		return
	}
	r.tunnelsForwarded.Add(uint64(len(rt.branches)))
	for k := range rt.branches {
		t.byRight[k] = rt
	}
	t.byLeft[key] = rt
	t.seen.Add(m.RequestID, time.Now())
	t.perLink[l.peer]++
	t.total++
}

func (r *Router) handleTunnelOK(l *link, m *TunnelOK) {
	var out []outMsg
	var streams []network.Stream
	defer func() {
		r.flush(out)
		resetAll(streams)
	}()
	key := linkKey{l.peer, m.ID}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &r.tun
	rt := t.byRight[key]
	if rt == nil {
		out = append(out, outMsg{l, &TunnelClose{ID: m.ID}})
		return
	}
	if _, ok := rt.branches[key]; !ok {
		return // a repeated OK
	}
	if o := rt.origin; o != nil {
		delete(rt.branches, key)
		delete(t.byRight, key)
		if o.got >= o.want {
			out = append(out, outMsg{l, &TunnelClose{ID: m.ID}})
			o.results <- nil
			return
		}
		o.got++
		r.goFn(func() { r.openOriginStream(rt, l, m.ID) })
		return
	}
	// A relay: the first answer wins, the other branches are closed.
	delete(rt.branches, key)
	for k, o := range rt.branches {
		delete(t.byRight, k)
		out = append(out, outMsg{o, &TunnelClose{ID: k.id}})
	}
	rt.branches = nil
	rt.state = routeAwaitLeft
	rt.right, rt.rightID = l, m.ID
	rt.expires = time.Now().Add(TunnelRequestTTL)
	r.goFn(func() { r.openRelayStream(rt, l, m.ID) })
}

// openRelayStream opens the stream to the right hop of rt and then passes
// the TunnelOK on to the left, so the left's stream arrives after it.
func (r *Router) openRelayStream(rt *route, right *link, id TunnelID) {
	s, err := r.openTunnelStream(right.peer, id)
	var out []outMsg
	var streams []network.Stream
	r.mu.Lock()
	switch {
	case err != nil:
		if r.tun.byLeft[linkKey{rt.left.peer, rt.leftID}] == rt {
			out, streams = r.tun.remove(rt, nil, out)
		}
	case r.tun.byLeft[linkKey{rt.left.peer, rt.leftID}] != rt:
		streams = append(streams, s) // torn down meanwhile
	default:
		rt.rightStream = s
		out = append(out, outMsg{rt.left, &TunnelOK{ID: rt.leftID}})
	}
	r.mu.Unlock()
	r.flush(out)
	resetAll(streams)
}

// openOriginStream opens the first stream of one of this node's own
// tunnels and hands it to the waiting RequestTunnels.
func (r *Router) openOriginStream(rt *route, right *link, id TunnelID) {
	s, err := r.openTunnelStream(right.peer, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt.origin.closed {
		if s != nil {
			s.Reset()
		}
		return
	}
	if err != nil {
		rt.origin.results <- nil
		return
	}
	rt.origin.results <- s
}

func (r *Router) handleTunnelFail(l *link, m *TunnelFail) {
	var out []outMsg
	var streams []network.Stream
	key := linkKey{l.peer, m.ID}
	r.mu.Lock()
	if rt := r.tun.byRight[key]; rt != nil {
		if _, ok := rt.branches[key]; ok {
			code := m.Code
			if code != FailLimit {
				code = FailNoRoute
			}
			out, streams = r.tun.dropBranch(rt, key, code, out)
		} else if rt.state != routeActive {
			out, streams = r.tun.remove(rt, l, out)
		}
	}
	r.mu.Unlock()
	r.flush(out)
	resetAll(streams)
}

func (r *Router) handleTunnelClose(l *link, m *TunnelClose) {
	var out []outMsg
	var streams []network.Stream
	key := linkKey{l.peer, m.ID}
	r.mu.Lock()
	if rt := r.tun.byLeft[key]; rt != nil {
		out, streams = r.tun.remove(rt, l, out)
	} else if rt := r.tun.byRight[key]; rt != nil {
		if _, ok := rt.branches[key]; ok {
			out, streams = r.tun.dropBranch(rt, key, FailNoRoute, out)
		} else {
			out, streams = r.tun.remove(rt, l, out)
		}
	}
	r.mu.Unlock()
	r.flush(out)
	resetAll(streams)
}

func resetAll(streams []network.Stream) {
	for _, s := range streams {
		s.Reset()
	}
}

// RequestTunnels sends a TunnelRequest for target to friends (those
// forwards picks, at least n; relays spread it like a search) and
// returns the raw ends of up to n tunnels set up before ctx ends, without
// the end-to-end session: OpenTunnel is what most callers want. If that
// round gives none before every path failed, it asks again, with a new
// request id, through the friends the first round left out: a round
// whose friends were all dead ends (friends with no other friend) fails
// at once. It blocks until n tunnels are up, every path failed, or ctx
// ends; it fails with ErrNoTunnel if none came up. The caller owns the
// returned streams.
func (r *Router) RequestTunnels(ctx context.Context, target [32]byte, n int) ([]io.ReadWriteCloser, error) {
	if n <= 0 {
		n = 1
	}
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("requesting tunnel: %w", ErrRouterClosed)
	}
	// The origin forwards its request as a relay would one it received at
	// depth v (see OriginDepth).
	all, v := r.otherLinks(nil), OriginDepth(r.cfg.Rand)
	fs := r.forwards(r.h.ID(), all, v, target[:], n)
	var rest []forward
	for _, l := range all {
		if !slices.ContainsFunc(fs, func(f forward) bool { return f.l == l }) {
			d := v
			if v > 0 {
				d, _ = ForwardDepth(r.cfg.Rand, v)
			}
			rest = append(rest, forward{l, d})
		}
	}
	got, err := r.requestRound(ctx, target, n, fs)
	if len(got) > 0 || len(rest) == 0 || ctx.Err() != nil || errors.Is(err, ErrRouterClosed) {
		return got, err
	}
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("requesting tunnel: %w", ErrRouterClosed)
	}
	return r.requestRound(ctx, target, n, rest)
}

// requestRound is one round of RequestTunnels, through fs. It is called
// with r.mu held and releases it.
func (r *Router) requestRound(ctx context.Context, target [32]byte, n int, fs []forward) ([]io.ReadWriteCloser, error) {
	links := linksOf(fs)
	o := &originReq{results: make(chan io.ReadWriteCloser, len(links)), want: n}
	rt := &route{target: target, origin: o, branches: make(map[linkKey]*link)}
	var out []outMsg
	var reqID RequestID
	rand.Read(reqID[:])
	r.tun.seen.Add(reqID, time.Now()) // copies that come back round a loop are refused
	for _, f := range fs {
		id := newTunnelID()
		k := linkKey{f.l.peer, id}
		rt.branches[k] = f.l
		r.tun.byRight[k] = rt
		out = append(out, outMsg{f.l, &TunnelRequest{ID: id, Depth: f.depth, Target: target, RequestID: reqID}})
	}
	r.mu.Unlock()
	r.flush(out)

	var got []io.ReadWriteCloser
	for left := len(links); left > 0 && len(got) < n; left-- {
		select {
		case s, ok := <-o.results:
			if !ok {
				left = 0
			} else if s != nil {
				got = append(got, s)
			}
		case <-ctx.Done():
			left = 0
		}
	}
	r.mu.Lock()
	out = out[:0]
	for k, l := range rt.branches {
		delete(r.tun.byRight, k)
		out = append(out, outMsg{l, &TunnelClose{ID: k.id}})
	}
	rt.branches = nil
	if !o.closed {
		o.closed = true
		// Streams already delivered but not taken are the caller's no more.
		for len(got) < n {
			select {
			case s := <-o.results:
				if s != nil {
					got = append(got, s)
				}
				continue
			default:
			}
			break
		}
	}
	r.mu.Unlock()
	r.flush(out)
	if len(got) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("requesting tunnel: %w: %w", ErrNoTunnel, err)
		}
		return nil, fmt.Errorf("requesting tunnel: %w", ErrNoTunnel)
	}
	return got, nil
}

// OpenTunnel sets up a tunnel to a holder of the file with root and runs
// the downloader's side of the session over it (OpenFileSession). It
// blocks until the session is up or ctx ends.
func (r *Router) OpenTunnel(ctx context.Context, root [32]byte) (*Tunnel, error) {
	ts, err := r.OpenTunnels(ctx, root, 1)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// StartTunnels sets up to n tunnels to holders of the file with root, as
// OpenTunnels does, but returns each as soon as it is set up, its session
// started with StartFileSession: the first Write rides in the handshake,
// and a tunnel whose holder fails the handshake fails its first Read.
func (r *Router) StartTunnels(ctx context.Context, root [32]byte, n int) ([]*Tunnel, error) {
	raws, err := r.RequestTunnels(ctx, TargetForRoot(root), n)
	if err != nil {
		return nil, err
	}
	out := make([]*Tunnel, 0, len(raws))
	for _, rw := range raws {
		s, err := StartFileSession(rw, root)
		if err != nil {
			for _, t := range out {
				t.Reset()
			}
			return nil, fmt.Errorf("starting tunnel: %w", err)
		}
		out = append(out, &Tunnel{Session: s, Root: root})
	}
	return out, nil
}

// OpenTunnels is OpenTunnel for up to n tunnels at once, which come
// through different first hops or paths. It returns those whose session
// came up, or an error if none did.
func (r *Router) OpenTunnels(ctx context.Context, root [32]byte, n int) ([]*Tunnel, error) {
	raws, err := r.RequestTunnels(ctx, TargetForRoot(root), n)
	if err != nil {
		return nil, err
	}
	type res struct {
		t   *Tunnel
		err error
	}
	ch := make(chan res, len(raws))
	for _, rw := range raws {
		go func() {
			s, err := OpenFileSession(ctx, rw, root)
			if err != nil {
				ch <- res{err: err}
				return
			}
			ch <- res{t: &Tunnel{Session: s, Root: root}}
		}()
	}
	var out []*Tunnel
	var firstErr error
	for range raws {
		x := <-ch
		if x.err != nil {
			firstErr = x.err
			continue
		}
		out = append(out, x.t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("opening tunnel: %w", firstErr)
	}
	return out, nil
}
