package tunnels

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
	"lukechampine.com/blake3"

	"kith/internal/frame"
	"kith/internal/friendlink"
)

// Friends is what the Router asks about its links: f2f.Friends implements
// it.
type Friends = friendlink.Friends

// Holder answers tunnel requests: whether this node holds target
// (TargetForRoot of a file it shares anonymously) and, if so, the file's
// root, from which the session's key is derived. It is called from the
// router's goroutines and must not block for long.
type Holder interface {
	HoldsTarget(target [32]byte) (root [32]byte, ok bool)
}

// Endpoint ends tunnels whose target is not a file: the chat identities
// of this node. Its methods are called from the router's goroutines.
type Endpoint interface {
	// AcceptsTarget reports whether this node ends tunnels to target. It
	// must not block for long.
	AcceptsTarget(target [32]byte) bool
	// ServeTunnel takes the raw stream of a tunnel to target once the
	// tunnel is up: it runs its own end-to-end handshake and owns rw. It
	// must return soon, serving rw in a goroutine of its own.
	ServeTunnel(target [32]byte, rw io.ReadWriteCloser)
}

// Query is what a Search asks for: Keywords, or else RootHash, which is
// SearchHash of the root searched for.
type Query struct {
	Keywords string
	RootHash [SearchHashLen]byte
}

// Searcher answers searches from this node's anonymous shares only. It
// is called from the router's goroutines; results beyond
// MaxFilesPerResult*MaxResultsPerSearch are dropped.
type Searcher interface {
	Search(q Query) []Result
}

// Tap sees the bytes a router moves, for byte counters and for tests that
// check what a relay saw. Control is called with the raw bytes read from
// (in) or written to (!in) a friend's router stream; Data with every chunk
// a relayed tunnel forwards. Either may be nil. Both are called from many
// goroutines at once and must not keep p or block for long.
type Tap struct {
	Control func(p peer.ID, in bool, b []byte)
	Data    func(dir int, b []byte)
}

// Tunnel is an end-to-end session over a chain of tunnel streams: the
// downloader's from OpenTunnel, the holder's through RouterConfig.OnTunnel.
// It is an io.ReadWriteCloser with the Session's rules.
type Tunnel struct {
	*Session
	// Root is the root of the file the tunnel is for.
	Root [32]byte
}

// RouterConfig configures a Router. The zero value is a relay that holds
// and finds nothing.
type RouterConfig struct {
	// Holder answers tunnel requests; nil holds nothing.
	Holder Holder
	// Searcher answers searches; nil finds nothing.
	Searcher Searcher
	// OnTunnel receives each tunnel opened to this node as a holder, after
	// the responder's handshake. It is called in its own goroutine and
	// owns t. If nil, the node answers no tunnel requests.
	OnTunnel func(t *Tunnel)
	// Endpoint ends tunnels to targets the Holder does not hold; nil
	// ends none.
	Endpoint Endpoint
	// Log receives the router's events; nil discards them.
	Log *slog.Logger
	// Rand is the randomness of depths; nil means crypto/rand. Ids always
	// come from crypto/rand.
	Rand mrand.Source
	// Tap, if set, sees the bytes the router moves.
	Tap *Tap
	// LinkRetry is how often links to connected friends that have none are
	// (re)opened; 0 means DefaultLinkRetry.
	LinkRetry time.Duration
	// SearchDelay is the longest random delay before a search is sent to
	// a friend (see sendSearch); 0 sends at once.
	SearchDelay time.Duration
	// SpreadDelay is the longest random delay before a node with more
	// than SearchFanout other friends sends a spreading copy on (see
	// spreadDelay); 0 sends at once.
	SpreadDelay time.Duration
	// FrameTimeout bounds the time from the first byte of a control
	// message to its last; a friend that sends one more slowly has broken
	// the protocol (see Router). 0 means DefaultFrameTimeout.
	FrameTimeout time.Duration
	// WriteTimeout bounds one write of a control message and the exchange
	// of a tunnel stream's header; a friend that does not read for that
	// long loses its link. 0 means LinkWriteTimeout.
	WriteTimeout time.Duration
	// HolderDelay is the longest delay before this node answers a search
	// or tunnel request as a holder, beyond the per-link part of up to
	// SearchDelay for searches (see the package documentation); 0 answers
	// at once.
	HolderDelay time.Duration
	// Secret keys the router's fixed random choices: the delays above and
	// which friends get a message it received at depth 0. The same secret
	// makes the same choices, so a friend that repeats a probe learns
	// nothing new; a node passes one derived from its identity key so that
	// the choices survive restarts. The zero value means a random secret
	// for this router.
	Secret [32]byte
}

// DefaultRouterConfig returns a RouterConfig with the defaults.
func DefaultRouterConfig() RouterConfig {
	return RouterConfig{LinkRetry: DefaultLinkRetry, SearchDelay: DefaultSearchDelay, SpreadDelay: DefaultSpreadDelay, HolderDelay: DefaultHolderDelay}
}

// RouterStats counts what a Router dropped.
type RouterStats struct {
	SearchesDropped     uint64 // over a friend's rate, or waiting too long for their turn to a friend (SearchSendWait)
	TunnelsDropped      uint64 // tunnel requests over a friend's rate
	MessagesDropped     uint64 // control messages dropped on a full send queue
	ResultsDropped      uint64 // search answers over a link's budget, or to a search no longer listened to
	FriendsDisconnected uint64 // router links reset, and their friends paused, for an invalid message (see Router)

	SearchesReceived  uint64 // searches taken from friends (within their rate), copies included
	SearchesForwarded uint64 // copies of searches sent on to friends (walks and spreads)
	SearchesAnswered  uint64 // searches this node answered from its anonymous shares
	TunnelsRequested  uint64 // tunnel requests taken from friends (within their rate)
	TunnelsForwarded  uint64 // tunnel requests sent on to friends
	TunnelsRelayed    uint64 // tunnels this node spliced between two friends
	TunnelsServed     uint64 // tunnels that ended here (a file this node holds, or a chat endpoint)
}

// Router is kith's turtle router on one host: it keeps a control stream
// to each connected friend (a kith/internal/friendlink link), walks,
// spreads and answers searches and tunnel requests, relays tunnels, and opens tunnels
// for this node. A friend that sends an invalid, oversized or too slow
// control message falls under friendlink's misbehaviour policy: its
// router link is reset and it is refused one, both ways, for
// friendlink.FaultPause; its connection, its tunnels and its other
// protocols go on. Its methods are safe for concurrent use. Close stops
// it.
type Router struct {
	h       host.Host
	friends Friends
	cfg     RouterConfig
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	lm      *friendlink.Manager[Message]
	once    sync.Once
	wgMu    sync.Mutex // guards closing and wg.Add; taken after mu
	closing bool

	mu       sync.Mutex
	links    map[peer.ID]*link
	searches searchCache
	mine     map[SearchID]*searchSub
	tun      tunnelTable

	// tunnelStreams counts each friend's inbound tunnel streams in the
	// handler (MaxTunnelStreamsPerFriend).
	tunnelStreams streamCounts
	// hashers are BLAKE3 hashers keyed with the secret, for draw.
	hashers sync.Pool

	searchesDropped atomic.Uint64
	// The counters of RouterStats of the same names.
	searchesReceived, searchesForwarded, searchesAnswered atomic.Uint64
	tunnelsRequested, tunnelsForwarded                    atomic.Uint64
	tunnelsRelayed, tunnelsServed                         atomic.Uint64
	tunnelsDropped                                        atomic.Uint64
	resultsDropped                                        atomic.Uint64
}

// NewRouter starts a router on h for the friends in friends. It registers
// the RouterProtocol and TunnelProtocol handlers and opens router streams
// to friends as they connect.
func NewRouter(h host.Host, friends Friends, cfg RouterConfig) (*Router, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LinkRetry <= 0 {
		cfg.LinkRetry = DefaultLinkRetry
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = LinkWriteTimeout
	}
	if cfg.Secret == ([32]byte{}) {
		rand.Read(cfg.Secret[:])
	}
	r := &Router{
		h: h, friends: friends, cfg: cfg, log: cfg.Log,
		links:    make(map[peer.ID]*link),
		searches: newSearchCache(),
		mine:     make(map[SearchID]*searchSub),
		tun:      newTunnelTable(),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	lc := friendlink.Config[Message]{
		Host: h, Friends: friends, Protocol: RouterProtocol, Log: cfg.Log,
		Up: r.linkUp, Encode: appendMessage, Size: maxWireSize,
		PeerFault: func(err error) bool {
			return errors.Is(err, ErrInvalidMessage) || errors.Is(err, ErrMessageTooLarge)
		},
		MaxFrame: MaxControlMsg, Queue: LinkQueue, QueueBytes: LinkQueueBytes,
		MaxInbound: MaxRouterStreamsPerFriend,
		Retry:      cfg.LinkRetry, OpenTimeout: LinkOpenTimeout,
		WriteTimeout: cfg.WriteTimeout, FrameTimeout: cfg.FrameTimeout,
	}
	if cfg.Tap != nil {
		lc.Tap = cfg.Tap.Control
	}
	lm, err := friendlink.New(lc)
	if err != nil {
		r.cancel()
		return nil, fmt.Errorf("starting router: %w", err)
	}
	r.lm = lm
	h.SetStreamHandler(TunnelProtocol, r.handleTunnelStream)
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// Close removes the stream handlers, closes every link and tunnel the
// router relays, and waits for its goroutines. Tunnels already handed out
// stay the caller's. Close is safe to call more than once.
func (r *Router) Close() error {
	r.once.Do(func() {
		r.h.RemoveStreamHandler(TunnelProtocol)
		r.cancel()
		r.wgMu.Lock()
		r.closing = true
		r.wgMu.Unlock()
		r.lm.Close() // the links, and their dropLink
		r.mu.Lock()
		streams := r.tun.closeAll()
		for id, s := range r.mine {
			s.close()
			delete(r.mine, id)
		}
		r.mu.Unlock()
		for _, s := range streams {
			s.Reset()
		}
		r.wg.Wait()
	})
	return nil
}

// Stats returns the router's counters.
func (r *Router) Stats() RouterStats {
	lst := r.lm.Stats()
	return RouterStats{
		SearchesDropped:     r.searchesDropped.Load(),
		TunnelsDropped:      r.tunnelsDropped.Load(),
		MessagesDropped:     lst.QueueDrops,
		ResultsDropped:      r.resultsDropped.Load(),
		FriendsDisconnected: lst.Faults,
		SearchesReceived:    r.searchesReceived.Load(),
		SearchesForwarded:   r.searchesForwarded.Load(),
		SearchesAnswered:    r.searchesAnswered.Load(),
		TunnelsRequested:    r.tunnelsRequested.Load(),
		TunnelsForwarded:    r.tunnelsForwarded.Load(),
		TunnelsRelayed:      r.tunnelsRelayed.Load(),
		TunnelsServed:       r.tunnelsServed.Load(),
	}
}

// Links returns the friends this router has a control stream with.
func (r *Router) Links() []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]peer.ID, 0, len(r.links))
	for p := range r.links {
		out = append(out, p)
	}
	return out
}

// track adds n to the router's goroutines unless it is closing, and
// reports whether it did. It may be called with r.mu held.
func (r *Router) track(n int) bool {
	r.wgMu.Lock()
	defer r.wgMu.Unlock()
	if r.closing {
		return false
	}
	r.wg.Add(n)
	return true
}

// goFn runs f as one of the router's goroutines, unless it is closing. It
// may be called with r.mu held.
func (r *Router) goFn(f func()) {
	if r.track(1) {
		go func() { defer r.wg.Done(); f() }()
	}
}

// loop expires state.
func (r *Router) loop() {
	defer r.wg.Done()
	janitor := time.NewTicker(time.Second)
	defer janitor.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-janitor.C:
			r.expire(now)
		}
	}
}

// linkUp takes a friend's new router link (friendlink.Config.Up); one it
// replaces is dropped when its read loop ends.
func (r *Router) linkUp(fl *friendlink.Link[Message]) friendlink.Handler[Message] {
	l := newLink(r, fl)
	r.mu.Lock()
	r.links[l.peer] = l
	r.mu.Unlock()
	return l
}

// dropLink forgets l, once its read loop ended (Handler.Down).
func (r *Router) dropLink(l *link) {
	r.mu.Lock()
	if r.links[l.peer] == l {
		delete(r.links, l.peer)
	}
	streams := r.tun.dropLink(r, l)
	r.mu.Unlock()
	for _, s := range streams {
		s.Reset()
	}
}

// otherLinks returns the links but except.
func (r *Router) otherLinks(except *link) []*link {
	out := make([]*link, 0, len(r.links))
	for _, l := range r.links {
		if l != except {
			out = append(out, l)
		}
	}
	return out
}

func (r *Router) expire(now time.Time) {
	r.mu.Lock()
	r.searches.expire(now)
	fails, streams := r.tun.expire(now)
	r.mu.Unlock()
	for _, f := range fails {
		f.l.Send(f.m)
	}
	for _, s := range streams {
		s.Reset()
	}
}

// link is the control stream to one friend, a friendlink.Link (Send,
// SendEncoded, Done, Stop), with the router's per-friend rates. Send
// never blocks: a message that does not fit the queue (LinkQueue,
// LinkQueueBytes, charged at maxWireSize to the stream's resource scope)
// is dropped and counted in RouterStats.MessagesDropped; the writer
// encodes queued messages with appendMessage into one reused buffer.
// SendEncoded queues a message encoded with appendMessage already, as a
// relay does with the copies of a search it sends on.
type link struct {
	*friendlink.Link[Message]
	r    *Router
	peer peer.ID

	searchLim *rate.Limiter // searches accepted from the friend
	tunnelLim *rate.Limiter // tunnel requests accepted from the friend
	searchOut *rate.Limiter // searches sent to the friend (see sendSearch)
}

func newLink(r *Router, fl *friendlink.Link[Message]) *link {
	return &link{
		Link: fl, r: r, peer: fl.Peer(),
		searchLim: rate.NewLimiter(SearchesPerSecond, SearchBurst),
		tunnelLim: rate.NewLimiter(TunnelRequestsPerSecond, TunnelRequestBurst),
		searchOut: rate.NewLimiter(SearchSendRate*SearchesPerSecond, SearchSendBurst),
	}
}

// Serve reads the friend's control messages and handles them, skipping
// types this version does not know (friendlink.Handler). An invalid or
// oversized message ends it with an error friendlink takes for a fault.
func (l *link) Serve(fr *frame.Reader) error {
	mr := &MessageReader{r: fr}
	for {
		m, err := mr.Read()
		switch {
		case err == nil:
			l.r.handle(l, m)
		case errors.Is(err, ErrUnknownMessage):
		default:
			return err
		}
	}
}

// Written is called for every message written; the router counts none.
func (l *link) Written(Message) {}

// Down drops what depended on the link.
func (l *link) Down() { l.r.dropLink(l) }

func (r *Router) handle(l *link, m Message) {
	switch m := m.(type) {
	case *Search:
		r.handleSearch(l, m)
	case *SearchResult:
		r.handleSearchResult(l, m)
	case *TunnelRequest:
		r.handleTunnelRequest(l, m)
	case *TunnelOK:
		r.handleTunnelOK(l, m)
	case *TunnelFail:
		r.handleTunnelFail(l, m)
	case *TunnelClose:
		r.handleTunnelClose(l, m)
	}
}

// streamCounts counts streams per friend. The zero value is ready.
type streamCounts struct {
	mu sync.Mutex
	n  map[peer.ID]int
}

// acquire counts one more stream of p unless it has max already, and
// reports whether it did.
func (c *streamCounts) acquire(p peer.ID, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[p] >= max {
		return false
	}
	if c.n == nil {
		c.n = make(map[peer.ID]int)
	}
	c.n[p]++
	return true
}

// release counts one stream of p less.
func (c *streamCounts) release(p peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[p]--; c.n[p] <= 0 {
		delete(c.n, p)
	}
}

// draw returns a number in [0, 1) that the router's secret and what fix:
// the same inputs give the same number, which no one without the secret
// can predict. It is how the router makes the random choices that a
// friend must not be able to average out by asking again.
func (r *Router) draw(what string, parts ...[]byte) float64 {
	h, _ := r.hashers.Get().(*blake3.Hasher)
	if h == nil {
		h = blake3.New(32, r.cfg.Secret[:])
	}
	defer func() { h.Reset(); r.hashers.Put(h) }()
	h.Write([]byte(what))
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) * 0x1p-53
}

// forward is one friend a message goes on to, and with which depth.
type forward struct {
	l     *link
	depth int
}

// forwards decides which of links a message received from peer from at
// depth d goes on to, and at which depth: for d >= 1 the SearchFanout
// links of the lowest draws (all of them if there are fewer), each with
// its own ForwardDepth draw, fixed per (from, link, key), key naming what
// the message asks for (a query or a tunnel target); for d = 0 each link
// with probability DepthKeepAtZero and at least one, fixed per (from,
// link). Either way it picks at least atLeast links (all if there are
// fewer), the lowest draws first. Because the choices are fixed, a friend
// who sends the same message again and again always sees the same choice
// and cannot count how often a node behind you answers. An origin passes
// its own ID as from.
func (r *Router) forwards(from peer.ID, links []*link, d int, key []byte, atLeast int) []forward {
	type drawn struct {
		l    *link
		u    float64
		keep bool
	}
	ds := make([]drawn, len(links))
	for i, o := range links {
		if d > 0 {
			ds[i] = drawn{o, r.draw("spread", []byte(from), []byte(o.peer), key), false}
			continue
		}
		ds[i] = drawn{o, r.draw("depth 0 first", []byte(from), []byte(o.peer)),
			r.draw("depth 0 keep", []byte(from), []byte(o.peer)) < DepthKeepAtZero}
	}
	slices.SortFunc(ds, func(a, b drawn) int { return cmp.Compare(a.u, b.u) })
	fanout := max(atLeast, 1)
	if d > 0 {
		fanout = max(atLeast, SearchFanout)
	}
	out := make([]forward, 0, len(links))
	for i, x := range ds {
		if i >= fanout && !x.keep {
			continue
		}
		depth := d
		if d > 0 {
			depth, _ = ForwardDepth(r.cfg.Rand, d)
		}
		out = append(out, forward{x.l, depth})
	}
	return out
}

// walkNext returns the one of links a walking search received from peer
// from goes on to, fixed per (from, key) like forwards' choices; nil if
// links is empty.
func (r *Router) walkNext(from peer.ID, links []*link, key []byte) *link {
	var next *link
	best := 2.0
	for _, o := range links {
		if u := r.draw("walk next", []byte(from), []byte(o.peer), key); u < best {
			next, best = o, u
		}
	}
	return next
}

// linksOf returns the links of fs.
func linksOf(fs []forward) []*link {
	out := make([]*link, len(fs))
	for i, f := range fs {
		out[i] = f.l
	}
	return out
}

// holderDelay returns how long this node waits before it answers, as a
// holder, the query or target key: two parts, each uniform up to half of
// HolderDelay and fixed by the secret and key, so a friend that asks again
// sees the same delay. Their sum rises slowly from zero, so few of this
// node's own answers come sooner than one from a hop further would.
func (r *Router) holderDelay(what string, key []byte) time.Duration {
	half := float64(r.cfg.HolderDelay) / 2
	return time.Duration(half * (r.draw(what+" a", key) + r.draw(what+" b", key)))
}

// sleepUntil waits until t, the router closing or done closing; it
// reports whether t came.
func (r *Router) sleepUntil(t time.Time, done <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		return r.ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.ctx.Done():
	case <-done:
	}
	return false
}

// newTunnelID returns a random non-zero TunnelID.
func newTunnelID() TunnelID {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := TunnelID(binary.BigEndian.Uint64(b[:])); id != 0 {
			return id
		}
	}
}
