package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"kith/chat"
	"kith/internal/store"
)

// presenceBucket is the span over which the presence frames written on
// each link are counted, for the busiest window of each link.
const presenceBucket = 10 * time.Second

// joinLookAhead is how far down the join order the pacer looks for a
// member that already sees the lobby announced.
const joinLookAhead = 64

// announcedTo reports whether a friend announces lobby id to lob.
func announcedTo(lob *chat.Lobbies, id chat.LobbyID) bool {
	info, err := lob.Lobby(id)
	return err == nil && len(info.Friends) > 0
}

// lobbySettle is how long a join may take to reach every member that
// joined before it before the join pacer stops waiting for it.
const lobbySettle = 5 * time.Second

// The simulator's lobby.
const (
	lobbyName  = "sim"
	lobbyTopic = "the simulator's lobby"
)

// establishedLobby is a lobby that exists when the services start: the
// nodes in member were in it, knowing it at size members.
type establishedLobby struct {
	id     chat.LobbyID
	member map[int]bool
	size   int
}

// lobbyNode is one node's lobby service and the bbolt file it keeps.
type lobbyNode struct {
	peer peer.ID
	db   *bolt.DB
	lob  *chat.Lobbies // nil until started
}

// lobbyNet is the lobby service of every node, each with its own bbolt
// file under dir.
type lobbyNet struct {
	dir   string
	nodes []*lobbyNode
}

// startLobbies starts a chat.Lobbies on every host, each with a bbolt
// file (without fsync: the files are thrown away) in a new temporary
// folder and one chat identity. Close stops them and removes the folder.
// verify, if set, is every service's LobbyConfig.Verify.
// est, if set, is a lobby some nodes were in when they last stopped.
func startLobbies(hosts []host.Host, friends []*friendSet, obs *lobbyObserver, presenceRate float64, verify chat.Verifier, est *establishedLobby) (*lobbyNet, error) {
	dir, err := os.MkdirTemp("", "kith-sim-lobbies-")
	if err != nil {
		return nil, fmt.Errorf("starting lobbies: %w", err)
	}
	ln := &lobbyNet{dir: dir, nodes: make([]*lobbyNode, len(hosts))}
	// Every identity is known to the observer before any service runs.
	ids := make([]*chat.Identities, len(hosts))
	for i, h := range hosts {
		nd := &lobbyNode{peer: h.ID()}
		if nd.db, err = store.Open(filepath.Join(dir, fmt.Sprintf("node%d.db", i)), store.Options{NoSync: true}); err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting lobbies of node %d: %w", i, err)
		}
		ln.nodes[i] = nd
		if ids[i], err = chat.OpenIdentities(nd.db); err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting lobbies of node %d: %w", i, err)
		}
		as, err := ids[i].New(fmt.Sprintf("n%d", i))
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting lobbies of node %d: %w", i, err)
		}
		obs.authors[as.ID] = i
		if est != nil && est.member[i] {
			if err := chat.StoreJoinedLobby(nd.db, est.id, lobbyName, lobbyTopic, as.ID, est.size); err != nil {
				ln.Close()
				return nil, fmt.Errorf("starting lobbies of node %d: %w", i, err)
			}
		}
	}
	for i, h := range hosts {
		nd := ln.nodes[i]
		nd.lob, err = chat.NewLobbies(chat.LobbyConfig{
			Host: h, DB: nd.db, Friends: friends[i], Identities: ids[i],
			Events:       obs.events(i),
			OnRelay:      obs.relay(i),
			LinkRetry:    simLinkRetry,
			PresenceRate: presenceRate,
			Verify:       verify,
		})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting lobbies of node %d: %w", i, err)
		}
	}
	return ln, nil
}

// Close stops every lobby service, a few at a time, then closes the
// bbolt files and removes their folder.
func (ln *lobbyNet) Close() error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, nd := range ln.nodes {
		if nd == nil || nd.lob == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			nd.lob.Close()
		})
	}
	wg.Wait()
	var errs []error
	for _, nd := range ln.nodes {
		if nd != nil {
			errs = append(errs, nd.db.Close())
		}
	}
	errs = append(errs, os.RemoveAll(ln.dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing lobbies: %w", err)
	}
	return nil
}

// lobbyMsg is what was seen of one lobby message.
type lobbyMsg struct {
	idx       int // its bit in the per-link sets
	kind      atomic.Uint32
	crossings atomic.Int64 // frames written, all links
	dups      atomic.Int64 // (link, direction) crossings after the first

	// Text messages only.
	twice   atomic.Int64 // (member, message) stored more than once
	mu      sync.Mutex
	k       int // index in the workload, -1 until Send returned
	author  int
	sent    time.Duration // just before Send, since the epoch
	at      []time.Duration
	history []bool
}

// lobbyObserver records what the lobby services of all nodes relay and
// deliver: every message frame written on a link (LobbyConfig.OnRelay)
// and every message a node stores (LobbyConfig.Events). A message's id is
// known to the workload only once Send returns, so records are keyed by
// id and made by whichever sees an id first.
type lobbyObserver struct {
	now     func() time.Duration
	n       int
	peers   map[peer.ID]int     // read-only once the services start
	slots   []map[int]int       // per node, friend -> its place in Adj
	authors map[chat.ChatID]int // filled before each service starts

	mu   sync.RWMutex
	msgs map[chat.MsgID]*lobbyMsg

	links []linkSets // per node

	// Join pacing: pos[i] is node i's place in the join order (-1 if not
	// a member, set just before it joins); earlier[a] counts the members
	// that joined before a and got a's JOIN.
	pos     []atomic.Int32
	earlier []atomic.Int32

	// presStart is when presence counting starts (the first join); the
	// frames of each kind written on all links.
	presStart                 atomic.Int64 // a time.Duration since the epoch; 0 not yet
	keepAlives, joins, leaves atomic.Int64
}

// linkSets records, per friend link of one node, which messages the
// node wrote on it.
type linkSets struct {
	mu   sync.Mutex
	bits [][]uint64 // per slot, one bit per message
	// pres counts, per slot, the presence frames (keep-alives, joins,
	// leaves) written in each presenceBucket since presStart.
	pres [][]uint32
	in   atomic.Int64
}

func newLobbyObserver(g *Graph, peers map[peer.ID]int, now func() time.Duration) *lobbyObserver {
	n := g.N()
	o := &lobbyObserver{
		now: now, n: n, peers: peers, slots: make([]map[int]int, n), authors: make(map[chat.ChatID]int, n),
		msgs: make(map[chat.MsgID]*lobbyMsg), links: make([]linkSets, n),
		pos: make([]atomic.Int32, n), earlier: make([]atomic.Int32, n),
	}
	for i, adj := range g.Adj {
		o.slots[i] = make(map[int]int, len(adj))
		for s, j := range adj {
			o.slots[i][j] = s
		}
		o.links[i].bits = make([][]uint64, len(adj))
		o.links[i].pres = make([][]uint32, len(adj))
		o.pos[i].Store(-1)
	}
	return o
}

// msg returns the record of id, making it on first sight.
func (o *lobbyObserver) msg(id chat.MsgID) *lobbyMsg {
	o.mu.RLock()
	m := o.msgs[id]
	o.mu.RUnlock()
	if m != nil {
		return m
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if m = o.msgs[id]; m == nil {
		m = &lobbyMsg{idx: len(o.msgs), k: -1, author: -1}
		o.msgs[id] = m
	}
	return m
}

// relay returns node i's LobbyConfig.OnRelay: a written frame sets the
// message's bit on the link, and a bit already set is a duplicate.
func (o *lobbyObserver) relay(i int) func(peer.ID, bool, chat.MsgID, chat.LobbyKind) {
	return func(p peer.ID, out bool, id chat.MsgID, kind chat.LobbyKind) {
		if !out {
			o.links[i].in.Add(1)
			return
		}
		j, ok := o.peers[p]
		if !ok {
			return
		}
		slot, ok := o.slots[i][j]
		if !ok {
			return
		}
		ls := &o.links[i]
		if kind == chat.LobbyKindKeepAlive {
			// Counted per link only: a record and a bit per link for each
			// of the tens of thousands of keep-alives would cost the
			// simulator more than the lobby.
			o.keepAlives.Add(1)
			ls.mu.Lock()
			o.countPresenceLocked(ls, slot)
			ls.mu.Unlock()
			return
		}
		m := o.msg(id)
		m.crossings.Add(1)
		word, bit := m.idx/64, uint64(1)<<(m.idx%64)
		ls.mu.Lock()
		b := ls.bits[slot]
		if len(b) <= word {
			b = append(b, make([]uint64, word+1-len(b))...)
			ls.bits[slot] = b
		}
		dup := b[word]&bit != 0
		b[word] |= bit
		if kind == chat.LobbyKindJoin || kind == chat.LobbyKindLeave {
			o.countPresenceLocked(ls, slot)
		}
		ls.mu.Unlock()
		switch kind {
		case chat.LobbyKindJoin:
			o.joins.Add(1)
		case chat.LobbyKindLeave:
			o.leaves.Add(1)
		}
		if dup {
			m.dups.Add(1)
		}
	}
}

// countPresenceLocked counts a presence frame written on ls's slot, in
// its presenceBucket. Called with ls.mu held.
func (o *lobbyObserver) countPresenceLocked(ls *linkSets, slot int) {
	t0 := time.Duration(o.presStart.Load())
	if t0 <= 0 {
		return
	}
	k := int(max(0, o.now()-t0) / presenceBucket)
	c := ls.pres[slot]
	if len(c) <= k {
		c = append(c, make([]uint32, k+1-len(c))...)
		ls.pres[slot] = c
	}
	c[k]++
}

// events returns node i's LobbyConfig.Events: it records when each text
// message reached the node, and which joins reached it.
func (o *lobbyObserver) events(i int) func(string, any) {
	return func(typ string, data any) {
		ev, ok := data.(chat.LobbyEvent)
		if typ != "lobby.message" || !ok {
			return
		}
		switch ev.Message.Kind {
		case chat.LobbyKindText:
			at := o.now()
			m := o.msg(ev.Message.ID)
			m.kind.Store(uint32(chat.LobbyKindText))
			m.mu.Lock()
			if m.at == nil {
				m.at = make([]time.Duration, o.n)
				m.history = make([]bool, o.n)
				for k := range m.at {
					m.at[k] = -1
				}
			}
			if m.at[i] < 0 {
				m.at[i], m.history[i] = at, ev.History
			} else {
				m.twice.Add(1)
			}
			m.mu.Unlock()
		case chat.LobbyKindJoin:
			o.msg(ev.Message.ID).kind.Store(uint32(chat.LobbyKindJoin))
			a, ok := o.authors[ev.Message.Author]
			if !ok || a == i {
				return
			}
			if pi, pa := o.pos[i].Load(), o.pos[a].Load(); pi >= 0 && pi < pa {
				o.earlier[a].Add(1)
			}
		}
	}
}

// lobbyMembers returns the lobby's members in join order: the creator,
// then the nearest nodes in a breadth-first walk from it (friends in a
// random order), count in all. Each member after the creator has a
// friend that joined before it, the only way it can learn of the lobby.
func lobbyMembers(g *Graph, creator, count int, rng *mrand.Rand) []int {
	seen := make([]bool, g.N())
	seen[creator] = true
	order := []int{creator}
	for head := 0; head < len(order) && len(order) < count; head++ {
		adj := slices.Clone(g.Adj[order[head]])
		rng.Shuffle(len(adj), func(a, b int) { adj[a], adj[b] = adj[b], adj[a] })
		for _, w := range adj {
			if !seen[w] && len(order) < count {
				seen[w] = true
				order = append(order, w)
			}
		}
	}
	return order
}

// lobbyPlan is who says what when in the message phase.
type lobbyPlan struct {
	authors []int
	at      []time.Duration // from the start of the phase
}

// planLobbyMessages draws an author among members for each of cfg's
// messages, sent LobbyMessageRate a second, so that no author runs short
// of chat.LobbyAuthorRate tokens at any relay: an author is picked only
// if its bucket (which the JOIN drew on) holds two tokens at the time,
// one spare for messages that bunch on the way; when none does, the
// message waits.
func planLobbyMessages(cfg Config, members []int, rng *mrand.Rand) lobbyPlan {
	const rate, burst = float64(chat.LobbyAuthorRate), float64(chat.LobbyAuthorBurst)
	tokens := make(map[int]float64, len(members))
	last := make(map[int]time.Duration, len(members))
	step := time.Duration(float64(time.Second) / cfg.LobbyMessageRate)
	var p lobbyPlan
	at := time.Duration(0)
	for len(p.authors) < cfg.LobbyMessages {
		have := func(a int) float64 {
			t, ok := tokens[a]
			if !ok {
				return burst - 1
			}
			return min(burst, t+rate*(at-last[a]).Seconds())
		}
		a := -1
		for range 100 {
			if c := members[rng.IntN(len(members))]; have(c) >= 2 {
				a = c
				break
			}
		}
		if a < 0 {
			at += time.Duration(float64(time.Second) / rate)
			continue
		}
		tokens[a], last[a] = have(a)-1, at
		p.authors = append(p.authors, a)
		p.at = append(p.at, at)
		at += step
	}
	return p
}

// lobbyRun is what the lobby phase did, for analyseLobby.
type lobbyRun struct {
	members     []int // in join order
	memberLinks int
	inLobby     []bool // per node: created or joined the lobby
	earlierN    []int  // per node in the lobby: members in it before it joined
	notJoined   int
	joinTime    time.Duration
	joinCPU     time.Duration
	// established counts the members in the lobby from the start
	// (Config.LobbyEstablished): the first, in join order.
	established int
	msgCPU      time.Duration
	sendErrs    map[string]int
	texts       []*lobbyMsg // by workload index; nil if Send failed
	stats       []chat.LobbyStats
	// presEnd is when presence counting ended; sizes and every each
	// member's estimate of the lobby's size and its keep-alive interval
	// (seconds) then.
	presEnd      time.Duration
	sizes, every []float64
	presenceRate float64 // the links' budget, 0 for chat's
	isMember     []bool
	adj          [][]int
}

// runLobby runs the lobby phase on the routers' hosts: a lobby service
// per node, one public lobby created by a random node, joined by the
// members in breadth-first order, then cfg.LobbyMessages messages from
// random members. A lobby of fewer than two members is skipped.
func runLobby(ctx context.Context, cfg Config, g *Graph, nodes []*node, peers map[peer.ID]int, now func() time.Duration) (*LobbyReport, error) {
	n := g.N()
	count := int(math.Round(cfg.LobbyMembers * float64(n)))
	if count < 2 {
		return &LobbyReport{Skipped: fmt.Sprintf("%d member(s) (%g of %d nodes): no one to deliver to", count, cfg.LobbyMembers, n)}, nil
	}
	rng := mrand.New(mrand.NewPCG(cfg.Seed, 2))
	members := lobbyMembers(g, rng.IntN(n), count, rng)
	plan := planLobbyMessages(cfg, members, rng)

	obs := newLobbyObserver(g, peers, now)
	hosts := make([]host.Host, n)
	friends := make([]*friendSet, n)
	for i, nd := range nodes {
		hosts[i], friends[i] = nd.h, nd.friends
	}
	var sigs *sigCache
	var verify chat.Verifier
	if !cfg.LobbyEachVerifies {
		sigs = newSigCache(sigCacheEntries)
		verify = sigs.verify
	}
	// In an established lobby, members[:inside] are in it from the start.
	inside := 0
	var est *establishedLobby
	if cfg.LobbyEstablished {
		inside = max(1, len(members)-cfg.LobbyJoiners)
		est = &establishedLobby{id: chat.NewLobbyID(), member: make(map[int]bool, inside), size: inside}
		for k, v := range members[:inside] {
			est.member[v] = true
			obs.pos[v].Store(int32(k))
		}
	}
	t0 := time.Now()
	ln, err := startLobbies(hosts, friends, obs, cfg.LobbyPresenceRate, verify, est)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := ln.Close(); err != nil {
			progress(cfg, "%v", err)
		}
	}()
	if err := waitLobbyLinks(ctx, cfg, g, ln); err != nil {
		return nil, err
	}
	progress(cfg, "%d lobby services and all %d lobby links up in %v", n, 2*len(g.Edges()), time.Since(t0).Round(time.Millisecond))

	run := &lobbyRun{members: members, inLobby: make([]bool, n), earlierN: make([]int, n), sendErrs: map[string]int{}, adj: g.Adj, presenceRate: cfg.LobbyPresenceRate}
	isMember := make([]bool, n)
	run.isMember = isMember
	for _, v := range members {
		isMember[v] = true
	}
	for _, e := range g.Edges() {
		if isMember[e.A] && isMember[e.B] {
			run.memberLinks++
		}
	}
	cpu0, t1 := cpuTime(), time.Now()
	obs.presStart.Store(int64(max(1, now())))
	run.established = inside
	id, err := joinLobby(ctx, cfg, g, ln, obs, run, est)
	if err != nil {
		return nil, err
	}
	run.joinTime, run.joinCPU = time.Since(t1), cpuTime()-cpu0
	progress(cfg, "%d of %d members joined the lobby in %v", len(members)-run.notJoined, len(members), run.joinTime.Round(time.Millisecond))

	cpu0 = cpuTime()
	if err := sendLobbyMessages(ctx, cfg, ln, obs, id, plan, run); err != nil {
		return nil, err
	}
	run.msgCPU = cpuTime() - cpu0
	if cfg.LobbyHold > 0 {
		progress(cfg, "holding the lobby %v for keep-alives", cfg.LobbyHold)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("holding the lobby: %w", ctx.Err())
		case <-time.After(cfg.LobbyHold):
		}
	}
	run.presEnd = now()
	if cfg.HeapProfile != "" {
		if err := writeHeapProfile(cfg.HeapProfile); err != nil {
			return nil, err
		}
	}
	for _, nd := range ln.nodes {
		run.stats = append(run.stats, nd.lob.Stats())
	}
	for _, v := range members {
		if info, err := ln.nodes[v].lob.Lobby(id); err == nil && info.Joined {
			run.sizes = append(run.sizes, float64(info.Size))
			run.every = append(run.every, info.KeepAlive.Seconds())
		}
	}
	rep := analyseLobby(cfg, obs, run)
	if sigs != nil {
		rep.Signatures = SignatureChecks{Shared: true, Asked: sigs.asked.Load(), Computed: sigs.computed.Load()}
	}
	progress(cfg, "%d lobby messages done after %v", len(plan.authors), time.Since(t0).Round(time.Millisecond))
	return rep, nil
}

// writeHeapProfile writes the heap's live objects to file path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the heap profile: %w", err)
	}
	runtime.GC() // the live heap, not what the last cycle left
	err = pprof.WriteHeapProfile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the heap profile: %w", err)
	}
	return nil
}

// waitLobbyLinks waits until every node has a lobby link to each friend.
func waitLobbyLinks(ctx context.Context, cfg Config, g *Graph, ln *lobbyNet) error {
	return poll(ctx, cfg.LinkWait, "waiting for lobby links", func() (bool, string) {
		missing := 0
		for i, nd := range ln.nodes {
			missing += len(g.Adj[i]) - len(nd.lob.Links())
		}
		return missing == 0, fmt.Sprintf("%d of %d still down", missing, 2*len(g.Edges()))
	})
}

// errPollTimeout is poll's error when limit passes.
var errPollTimeout = errors.New("timed out")

// poll calls done every 5 ms until it reports true, ctx ends or limit
// passes; the error then wraps ctx's or errPollTimeout, with what and
// done's description of the state. It gives up only after a call of
// done that started once limit had passed: on a process short of CPU
// one call (a look at every member's links) can outlast the limit, and
// what it saw at its start is not the state at the end.
func poll(ctx context.Context, limit time.Duration, what string, done func() (bool, string)) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		began := time.Now()
		ok, state := done()
		if ok {
			return nil
		}
		if began.After(deadline) {
			return fmt.Errorf("%s: %w after %v: %s", what, errPollTimeout, limit, state)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// joinLobby has the first member create a public lobby and the others
// join it in order, each once a friend announces it to it; in an
// established lobby (est), the members in it from the start do not
// join, and the others join it in order. Joins are
// paced: every JOIN is flooded to the members and crosses every link
// between them, so at most LobbyJoinRate a second start (under each
// link's chat.LobbyFriendRate), and at most LobbyJoinWindow may still be
// on their way to the members that joined before them. The window is
// for the simulator's two cores: when they fall behind, relays read
// bunched frames late and drop them over the friend rate, which no
// network of separate machines would do. joinLobby returns once every
// join has spread and every link between members carries the lobby
// both ways.
func joinLobby(ctx context.Context, cfg Config, g *Graph, ln *lobbyNet, obs *lobbyObserver, run *lobbyRun, est *establishedLobby) (chat.LobbyID, error) {
	members := run.members
	joined := make([]time.Time, len(members)) // when each started to join; zero if it did not
	var id chat.LobbyID
	inside := 1
	if est != nil {
		id, inside = est.id, run.established
		for _, v := range members[:inside] {
			run.inLobby[v] = true
		}
	} else {
		creator := members[0]
		obs.pos[creator].Store(0)
		li, err := ln.nodes[creator].lob.Create(lobbyName, lobbyTopic, false, "")
		if err != nil {
			return chat.LobbyID{}, fmt.Errorf("creating the lobby at node %d: %w", creator, err)
		}
		id = li.ID
		run.inLobby[creator] = true
		joined[0] = time.Now()
	}
	first := inside // the first member to join
	// settled reports whether the member at place k has its links to
	// the members before it carrying the lobby (each of them has it
	// subscribed), or had its time. Its JOIN need not have reached every
	// member: presence waits for each link's budget
	// (chat.LobbyPresenceRate), so in a lobby joined faster than that a
	// JOIN reaches only the members near its author, and the join phase
	// is not slowed down to the budget.
	done := make([]bool, len(members)) // settled, once and for all
	settled := func(k int, now time.Time) bool {
		if done[k] {
			return true
		}
		v := members[k]
		if joined[k].IsZero() || now.Sub(joined[k]) > lobbySettle {
			done[k] = true
			return true
		}
		for _, w := range g.Adj[v] {
			if run.inLobby[w] && !ln.nodes[w].lob.Subscribed(ln.nodes[v].peer, id) {
				return false
			}
		}
		done[k] = true
		return true
	}
	oldest := 0 // every join before it is settled
	open := func(upTo int) int {
		now := time.Now()
		for oldest < upTo && settled(oldest, now) {
			oldest++
		}
		n := 0
		for j := oldest; j < upTo; j++ {
			if !settled(j, now) {
				n++
			}
		}
		return n
	}
	start := time.Now()
	burst := chat.LobbyFriendBurst / 2
	if est != nil {
		burst = 1 // joins into a running lobby: paced from the first
	}
	for k := first; k < len(members); k++ {
		at := start.Add(time.Duration(float64(max(0, k-first+1-burst)) / cfg.LobbyJoinRate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return id, fmt.Errorf("joining the lobby: %w", ctx.Err())
		case <-time.After(time.Until(at)):
		}
		err := poll(ctx, 2*lobbySettle, "waiting for joins to spread", func() (bool, string) {
			n := open(k)
			return n < cfg.LobbyJoinWindow, fmt.Sprintf("%d joins on their way", n)
		})
		if err != nil {
			return id, err
		}
		// The next member a friend already announces the lobby to joins
		// first: waiting, one member after the other, for the
		// announcement of a friend that has just joined serialized the
		// join phase on a busy process.
		for j := k; j < min(len(members), k+joinLookAhead); j++ {
			if announcedTo(ln.nodes[members[j]].lob, id) {
				members[k], members[j] = members[j], members[k]
				break
			}
		}
		v := members[k]
		lob := ln.nodes[v].lob
		err = poll(ctx, lobbySettle, "waiting for a friend to announce the lobby", func() (bool, string) {
			info, err := lob.Lobby(id)
			return err == nil && len(info.Friends) > 0, "not announced"
		})
		if errors.Is(err, errPollTimeout) {
			run.notJoined++
			continue
		}
		if err != nil {
			return id, err
		}
		obs.pos[v].Store(int32(k))
		run.earlierN[v] = inside
		joined[k] = time.Now()
		if _, err := lob.Join(id, ""); err != nil {
			return id, fmt.Errorf("joining the lobby at node %d: %w", v, err)
		}
		run.inLobby[v] = true
		inside++
	}
	// Every join settled and every link between members subscribed both
	// ways, or the messages would find the lobby still forming.
	var looked time.Time
	var state string
	err := poll(ctx, lobbySettle+cfg.LobbyWait, "waiting for the lobby to form", func() (bool, string) {
		if time.Since(looked) < 100*time.Millisecond {
			return false, state // every link's lock, but not every 5 ms
		}
		looked = time.Now()
		n := open(len(members))
		missing := 0
		for _, a := range members {
			for _, b := range g.Adj[a] {
				if run.inLobby[a] && run.inLobby[b] && !ln.nodes[a].lob.Subscribed(ln.nodes[b].peer, id) {
					missing++
				}
			}
		}
		state = fmt.Sprintf("%d joins on their way, %d member links not subscribed", n, missing)
		return n == 0 && missing == 0, state
	})
	if err != nil {
		return id, err
	}
	// The JOINs still waiting for the links' presence budgets go out
	// before the messages, so that the messages' figures are theirs: no
	// JOIN frame for a second, or LobbyWait.
	last, still := obs.joins.Load(), time.Now()
	err = poll(ctx, cfg.LobbyWait, "waiting for the joins to drain", func() (bool, string) {
		if n := obs.joins.Load(); n != last {
			last, still = n, time.Now()
		}
		return time.Since(still) > time.Second, fmt.Sprintf("%d join frames", last)
	})
	if errors.Is(err, errPollTimeout) {
		err = nil
	}
	return id, err
}

// sendLobbyMessages sends the planned messages, then waits until each
// has reached every member or LobbyWait has passed since the last, and
// a few latencies more for late duplicates.
func sendLobbyMessages(ctx context.Context, cfg Config, ln *lobbyNet, obs *lobbyObserver, id chat.LobbyID, plan lobbyPlan, run *lobbyRun) error {
	run.texts = make([]*lobbyMsg, len(plan.authors))
	start := time.Now()
	for k, a := range plan.authors {
		select {
		case <-ctx.Done():
			return fmt.Errorf("sending lobby messages: %w", ctx.Err())
		case <-time.After(time.Until(start.Add(plan.at[k]))):
		}
		sent := obs.now()
		m, err := ln.nodes[a].lob.Send(id, fmt.Sprintf("sim message %d from node %d", k, a))
		if err != nil {
			run.sendErrs[err.Error()]++
			continue
		}
		rec := obs.msg(m.ID)
		rec.mu.Lock()
		rec.k, rec.author, rec.sent = k, a, sent
		rec.mu.Unlock()
		run.texts[k] = rec
	}
	want := len(run.members) - run.notJoined
	err := poll(ctx, cfg.LobbyWait, "waiting for lobby messages", func() (bool, string) {
		for _, m := range run.texts {
			if m != nil && m.reached() < want {
				return false, ""
			}
		}
		return true, ""
	})
	if err != nil && !errors.Is(err, errPollTimeout) {
		return err // a message short of members after LobbyWait is what the report shows
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("sending lobby messages: %w", ctx.Err())
	case <-time.After(10*cfg.Latency + 200*time.Millisecond):
	}
	return nil
}

// reached counts the nodes that stored a text message, its author too.
func (m *lobbyMsg) reached() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, at := range m.at {
		if at >= 0 {
			n++
		}
	}
	return n
}

// analyseLobby turns what the lobby phase saw into the report's figures.
func analyseLobby(cfg Config, obs *lobbyObserver, run *lobbyRun) *LobbyReport {
	inside := len(run.members) - run.notJoined
	rep := &LobbyReport{
		Members: len(run.members), NotJoined: run.notJoined, MemberLinks: run.memberLinks,
		Messages: len(run.texts), MessageRate: cfg.LobbyMessageRate, JoinRate: cfg.LobbyJoinRate,
		FloodMessages: 2*run.memberLinks - (inside - 1),
		JoinSeconds:   run.joinTime.Seconds(),
		Dropped:       map[string]uint64{},
	}
	if len(run.sendErrs) > 0 {
		rep.SendErrors = run.sendErrs
	}
	joins := inside - 1 // all but the creator
	if run.established > 0 {
		joins = inside - run.established
	}
	rep.Established, rep.Joins = run.established, joins
	rep.CPUPerJoinMs = float64(run.joinCPU) / float64(time.Millisecond) / float64(max(1, joins))
	var reachAll, delivery, frames []float64
	sent, complete := 0, 0
	for k, m := range run.texts {
		if m == nil {
			continue
		}
		sent++
		m.mu.Lock()
		row := LobbyRow{K: k, Author: m.author, SentMs: ms(m.sent), ReachAllMs: -1,
			Frames: int(m.crossings.Load()), Duplicates: int(m.dups.Load())}
		var last time.Duration
		for i, at := range m.at {
			if i == m.author || !run.inLobby[i] {
				continue
			}
			rep.ExpectedPairs++
			if at < 0 {
				continue
			}
			row.Reached++
			if m.history[i] {
				row.ByHistory++
			}
			delivery = append(delivery, ms(at-m.sent))
			last = max(last, at-m.sent)
		}
		if m.at == nil { // not even its author's event: nothing reached
			rep.ExpectedPairs += inside - 1
		}
		m.mu.Unlock()
		rep.DeliveredPairs += row.Reached
		rep.ByHistory += row.ByHistory
		if row.Reached == inside-1 {
			complete++
			row.ReachAllMs = ms(last)
			reachAll = append(reachAll, row.ReachAllMs)
		}
		frames = append(frames, float64(row.Frames))
		rep.TextDuplicates += int64(row.Duplicates)
		rep.Rows = append(rep.Rows, row)
	}
	rep.Delivered = ratio(rep.DeliveredPairs, rep.ExpectedPairs)
	rep.Complete = ratio(complete, sent)
	rep.ReachAllMs = summarize(reachAll)
	rep.DeliveryMs = summarize(delivery)
	rep.MessagesPerMessage = summarize(frames)
	rep.CPUPerMessageMs = float64(run.msgCPU) / float64(time.Millisecond) / float64(max(1, sent))

	obs.mu.RLock()
	var joinFrames []float64
	for _, m := range obs.msgs {
		rep.Frames += m.crossings.Load()
		rep.SameDirectionDuplicates += m.dups.Load()
		if chat.LobbyKind(m.kind.Load()) == chat.LobbyKindJoin {
			joinFrames = append(joinFrames, float64(m.crossings.Load()))
		}
	}
	obs.mu.RUnlock()
	rep.MessagesPerJoin = summarize(joinFrames)
	rep.Frames += obs.keepAlives.Load()
	var got, want int
	for _, v := range run.members[1:] {
		if run.inLobby[v] {
			got += int(obs.earlier[v].Load())
			want += run.earlierN[v]
		}
	}
	rep.JoinDelivered = ratio(got, want)
	for i := range obs.links {
		rep.FramesUnread += obs.links[i].in.Load()
	}
	rep.FramesUnread = rep.Frames - rep.FramesUnread
	for _, st := range run.stats {
		for reason, c := range st.Dropped {
			if reason == chat.DropDuplicate {
				rep.RedundantDrops += c
			} else {
				rep.Dropped[reason] += c
			}
		}
		rep.LinksReset += st.Disconnected
	}
	rep.Presence = analysePresence(obs, run)
	rep.Presence.Dropped = rep.Dropped[chat.DropPresenceRate]
	for _, m := range run.texts {
		if m != nil {
			rep.Presence.TextTwice += m.twice.Load()
		}
	}
	return rep
}

// LobbyPresence is the presence traffic (keep-alives, joins and leaves)
// on the directed links between members, from the first join to the end
// of the lobby phase (LobbyHold included), against each link's budget,
// chat.LobbyPresenceRate: a quarter of chat.LobbyFriendRate.
type LobbyPresence struct {
	// Seconds is the span counted; Limit chat.LobbyPresenceRate.
	Seconds float64 `json:"seconds"`
	Limit   float64 `json:"limit_per_s"`
	// PerLink is the mean presence messages a second of each directed
	// link over Seconds; Peak each link's busiest presenceBucket (10 s).
	PerLink Summary `json:"per_link_per_s"`
	Peak    Summary `json:"peak_10s_per_s"`
	// KeepAlives, Joins and Leaves count the frames of each kind written
	// on all links; Dropped the presence frames not written for a link's
	// budget (chat.DropPresenceRate).
	KeepAlives int64  `json:"keepalives"`
	Joins      int64  `json:"joins"`
	Leaves     int64  `json:"leaves"`
	Dropped    uint64 `json:"dropped"`
	// TextTwice counts (member, text message) pairs stored more than
	// once: must be 0.
	TextTwice int64 `json:"text_twice"`
	// Size is the members' estimates of the lobby's size at the end, and
	// KeepAliveSeconds their keep-alive intervals.
	Size             Summary `json:"size_estimate"`
	KeepAliveSeconds Summary `json:"keepalive_s"`
}

// analysePresence sums up the presence frames of every directed link
// between members.
func analysePresence(obs *lobbyObserver, run *lobbyRun) LobbyPresence {
	span := run.presEnd - time.Duration(obs.presStart.Load())
	pr := LobbyPresence{Seconds: span.Seconds(), Limit: cmp.Or(run.presenceRate, chat.LobbyPresenceRate),
		KeepAlives: obs.keepAlives.Load(), Joins: obs.joins.Load(), Leaves: obs.leaves.Load(),
		Size: summarize(run.sizes), KeepAliveSeconds: summarize(run.every)}
	if span <= 0 {
		return pr
	}
	var mean, peak []float64
	for i := range obs.links {
		if !run.isMember[i] {
			continue
		}
		ls := &obs.links[i]
		ls.mu.Lock()
		for slot, j := range run.adj[i] {
			if !run.isMember[j] {
				continue
			}
			total, most := 0, uint32(0)
			for _, c := range ls.pres[slot] {
				total += int(c)
				most = max(most, c)
			}
			mean = append(mean, float64(total)/span.Seconds())
			peak = append(peak, float64(most)/min(presenceBucket, span).Seconds())
		}
		ls.mu.Unlock()
	}
	pr.PerLink, pr.Peak = summarize(mean), summarize(peak)
	return pr
}

// write prints the presence lines of the LOBBIES section.
func (pr LobbyPresence) write(p func(string, ...any)) {
	p("presence per member link\tmean p50 %.2f, p99 %.2f, max %.2f /s; busiest 10 s p50 %.2f, p99 %.2f, max %.2f /s (limit %.2f/s; chat's is a quarter of the friend rate %d/s), over %.0f s",
		pr.PerLink.P50, pr.PerLink.P99, pr.PerLink.Max, pr.Peak.P50, pr.Peak.P99, pr.Peak.Max, pr.Limit, chat.LobbyFriendRate, pr.Seconds)
	p("presence frames\t%d keep-alives, %d joins, %d leaves written; %d dropped over a link's budget", pr.KeepAlives, pr.Joins, pr.Leaves, pr.Dropped)
	p("members' size estimate, keep-alive interval\tp50 %.0f, p99 %.0f, max %.0f members; every p50 %.0f s, max %.0f s", pr.Size.P50, pr.Size.P99, pr.Size.Max, pr.KeepAliveSeconds.P50, pr.KeepAliveSeconds.Max)
	p("text stored twice by a member\t%d", pr.TextTwice)
}
