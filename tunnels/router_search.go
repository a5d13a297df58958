package tunnels

import (
	"container/list"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flynn/noise"
	"github.com/libp2p/go-libp2p/core/peer"
)

// searchEntry remembers a search id: for dropping duplicates and, while
// ReversePathTTL lasts, for routing its answers back.
type searchEntry struct {
	id   SearchID
	from *link // nil for this node's own searches
	seen time.Time
	elem *list.Element
	// budgets has one entry per link the search was sent on: answers
	// come back only from those, each within its own budget.
	budgets []answerBudget
	// share is how many answers a relay takes from each link (see
	// answerShare).
	share int
	// answers is how many answers a relay may send back in all, its own
	// included (Search.Answers, see searchAnswers); back counts those it
	// sent.
	answers, back int
	// walks counts the walking copies this node sent on (MaxWalkRepeats).
	walks int
	// heard lists the links that sent this node a copy: a copy not yet
	// sent to one of them is not sent (see sendSearch).
	heard []*link
}

// answerBudget counts the answers to one search taken from one link: for
// a relay, those relayed; for the search's origin, those that opened
// (good) and those that did not (bad).
type answerBudget struct {
	l         *link
	good, bad int
}

// budget returns l's budget, or nil if the search was not sent on l.
func (e *searchEntry) budget(l *link) *answerBudget {
	for i := range e.budgets {
		if e.budgets[i].l == l {
			return &e.budgets[i]
		}
	}
	return nil
}

// sentOn records that the search goes out on links, whose answers it then
// takes, besides those of the links it went out on before. Guarded by
// Router.mu.
func (e *searchEntry) sentOn(links []*link) {
	for _, l := range links {
		if e.budget(l) == nil {
			e.budgets = append(e.budgets, answerBudget{l: l})
		}
	}
	e.share = answerShare(e.answers, len(e.budgets))
}

// takeAnswers takes up to n of the answers a relay may still send back
// for the search and returns how many it took. Guarded by Router.mu.
func (e *searchEntry) takeAnswers(n int) int {
	n = max(0, min(n, e.answers-e.back))
	e.back += n
	return n
}

// hear records that l sent a copy of the search. Guarded by Router.mu.
func (e *searchEntry) hear(l *link) {
	if len(e.heard) < MaxHeardLinks && !slices.Contains(e.heard, l) {
		e.heard = append(e.heard, l)
	}
}

// answerShare is the answers a relay whose budget is answers takes for
// one search from each of the n links it sent the search on, and the
// budget it gives each of them (Search.Answers): an equal share, at
// least 1, so that one link's flood cannot use up the answers of the
// others, and a friend is told how many of its answers will be taken.
func answerShare(answers, n int) int {
	return max(1, answers/max(1, n))
}

// searchAnswers is the budget of answers a search received as m gives
// its receiver: Search.Answers within 1 and MaxResultsPerSearch, and
// MaxResultsPerSearch when unset (a sender that does not know the field).
func searchAnswers(m *Search) int {
	if m.Answers <= 0 {
		return MaxResultsPerSearch
	}
	return min(m.Answers, MaxResultsPerSearch)
}

// searchCache is bounded by SearchCacheSize and SearchCacheTTL; the
// oldest entries go first. Guarded by Router.mu.
type searchCache struct {
	m     map[SearchID]*searchEntry
	order *list.List // of *searchEntry, oldest first
}

func newSearchCache() searchCache {
	return searchCache{m: make(map[SearchID]*searchEntry), order: list.New()}
}

// add records id if it is new and reports whether it was.
func (c *searchCache) add(id SearchID, from *link, now time.Time) bool {
	if _, ok := c.m[id]; ok {
		return false
	}
	for c.order.Len() >= SearchCacheSize {
		c.remove(c.order.Front().Value.(*searchEntry))
	}
	e := &searchEntry{id: id, from: from, seen: now}
	e.elem = c.order.PushBack(e)
	c.m[id] = e
	return true
}

func (c *searchCache) remove(e *searchEntry) {
	c.order.Remove(e.elem)
	delete(c.m, e.id)
}

func (c *searchCache) expire(now time.Time) {
	for c.order.Len() > 0 {
		e := c.order.Front().Value.(*searchEntry)
		if now.Sub(e.seen) < SearchCacheTTL {
			return
		}
		c.remove(e)
	}
}

// searchSub is one of this node's own searches.
type searchSub struct {
	priv   noise.DHKey
	mu     sync.Mutex
	ch     chan Result
	closed bool
}

func (s *searchSub) deliver(rs []Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, res := range rs {
		if s.closed {
			return
		}
		select {
		case s.ch <- res:
		default: // the caller does not keep up: drop
		}
	}
}

func (s *searchSub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// Search sends q out and returns the results as they arrive, opened from
// their sealed form. The search first walks: this node sends it to one
// friend, and each node that gets a walking copy sends it on to one
// friend, walking on with probability SearchWalkKeep (these choices are
// drawn for the search's id); the node that ends the walk spreads it,
// and so does every node a spreading copy reaches, to SearchFanout of its
// other friends (see Router.forwards). A node with SearchFanout other
// friends or fewer ends a walk at once: it spreads to all of them, as a
// flood would. Copies of a spreading search met again are dropped by id.
// The channel is closed when ctx ends or the router closes; results the caller does not read in time
// (beyond SearchResultQueue) are dropped. A Search is never answered by
// this node itself.
func (r *Router) Search(ctx context.Context, q Query) (<-chan Result, error) {
	if q.Keywords == "" && q.RootHash == ([SearchHashLen]byte{}) {
		return nil, fmt.Errorf("searching: %w: empty query", ErrInvalidMessage)
	}
	priv, err := GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("searching: %w", err)
	}
	m := Search{Keywords: q.Keywords, RootHash: q.RootHash, ReplyKey: [32]byte(priv.Public)}
	if q.Keywords != "" {
		m.RootHash = [SearchHashLen]byte{}
	}
	rand.Read(m.ID[:])
	if _, err := m.toWire(); err != nil {
		return nil, fmt.Errorf("searching: %w", err)
	}
	sub := &searchSub{priv: priv, ch: make(chan Result, SearchResultQueue)}
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("searching: %w", ErrRouterClosed)
	}
	r.searches.add(m.ID, nil, time.Now())
	r.mine[m.ID] = sub
	self := r.h.ID()
	// The origin forwards its search as a relay that keeps a walk going
	// would one it received at depth v (see OriginDepth).
	links, d := r.otherLinks(nil), OriginDepth(r.cfg.Rand)
	// A walk carries no answer budget (MaxResultsPerSearch); an origin
	// that spreads at once gives each friend OriginSpreadAnswers, what
	// relays far from a walk's end give theirs (see answerShare).
	var fs []forward
	if len(links) > SearchFanout {
		m.Walk = true
		fs = r.walkForwards(self, links, d, m.ID[:])
	} else {
		m.Answers = OriginSpreadAnswers
		fs = r.forwards(self, links, d, queryKey(&m), 1)
	}
	e := r.searches.m[m.ID]
	e.answers = MaxResultsPerSearch
	e.sentOn(linksOf(fs))
	if !r.track(1) {
		delete(r.mine, m.ID)
		r.mu.Unlock()
		return nil, fmt.Errorf("searching: %w", ErrRouterClosed)
	}
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		select {
		case <-ctx.Done():
		case <-r.ctx.Done():
		}
		r.mu.Lock()
		delete(r.mine, m.ID)
		r.mu.Unlock()
		sub.close()
	}()
	r.sendSearches(self, fs, &m, r.cfg.SearchDelay, false)
	return sub.ch, nil
}

// queryKey names what a search asks for, for the router's fixed choices:
// the root hash, or the keywords lower-cased, sorted and without repeats,
// so that a friend cannot get a new draw by reordering its words.
func queryKey(m *Search) []byte {
	if m.Keywords == "" {
		return append([]byte("h"), m.RootHash[:]...)
	}
	words := strings.Fields(strings.ToLower(m.Keywords))
	slices.Sort(words)
	return []byte("k" + strings.Join(slices.Compact(words), " "))
}

// walkForwards is forwards for a search that walks on: the one link of
// walkNext, with the depth a relay forwards d with.
func (r *Router) walkForwards(from peer.ID, links []*link, d int, key []byte) []forward {
	next := r.walkNext(from, links, key)
	if next == nil {
		return nil
	}
	if d > 0 {
		d, _ = ForwardDepth(r.cfg.Rand, d)
	}
	return []forward{{next, d}}
}

// sendSearches sends m, which came from peer from (this node's own ID for
// its own searches), on to each of fs with its depth, walking or not as
// m.Walk says, each after a delay of up to maxDelay (see sendSearch);
// spreading copies are not sent to friends that sent the search
// meanwhile, nor at all, if stopAtHeard, once SpreadHeardStop did.
// Each depth is encoded once, here, for all the links that get it.
func (r *Router) sendSearches(from peer.ID, fs []forward, m *Search, maxDelay time.Duration, stopAtHeard bool) {
	qk := queryKey(m)
	var enc [MaxDepth + 1][]byte
	for _, f := range fs {
		if enc[f.depth] == nil {
			c := *m
			c.Depth = f.depth
			b, err := appendMessage(nil, &c)
			if err != nil {
				r.log.Debug("not forwarding an invalid search", slog.Any("err", err))
				return
			}
			enc[f.depth] = b
		}
		skip := skipNone
		switch {
		case m.Walk:
		case stopAtHeard:
			skip = skipHeardOrStop
		default:
			skip = skipHeard
		}
		r.sendSearch(from, f.l, qk, enc[f.depth], m.ID, skip, maxDelay)
	}
}

// sendSearch sends an encoded search that came from peer from to friend l
// after a delay of up to maxDelay: RouterConfig.SearchDelay for the
// copies an origin may send (walking copies, and spreading ones from a
// node with SearchFanout other friends or fewer, which spreads its own
// searches too), RouterConfig.SpreadDelay for the spreading copies of
// other nodes (see spreadDelay). Without it, the first copy of a search that a friend of
// the origin receives comes straight from the origin, so friends
// comparing arrival times could name the origin; with it, a copy that
// went round through a common friend often arrives first. The delay is
// fixed per (from, l, query) by the router's secret, like the holder's
// own answer delay, so that a friend probing the same query again sees
// the same timing whether the answer is this node's or a node's behind it.
//
// Searches to one friend are also paced below the rate the friend accepts
// (SearchSendRate of SearchesPerSecond, bursts of SearchSendBurst): a
// burst of them, which the fixed delays would keep together from hop to
// hop, goes out spread, at most SearchSendWait late; one that would wait
// longer is dropped here rather than by the friend.
//
// A spreading copy (skip other than skipNone) is not sent, when its time
// comes, to a friend that sent this node a copy of search id meanwhile
// (that friend has it, and would drop it), nor at all with
// skipHeardOrStop once SpreadHeardStop friends did (skipSpread).
func (r *Router) sendSearch(from peer.ID, l *link, qk, b []byte, id SearchID, skip spreadSkip, maxDelay time.Duration) {
	var delay time.Duration
	if maxDelay > 0 {
		delay = time.Duration(r.draw("search delay", []byte(from), []byte(l.peer), qk) * float64(maxDelay))
	}
	at := time.Now().Add(delay)
	res := l.searchOut.ReserveN(at, 1)
	wait := res.DelayFrom(at)
	if !res.OK() || wait > SearchSendWait {
		res.CancelAt(at)
		r.searchesDropped.Add(1)
		return
	}
	delay += wait
	if delay <= 0 {
		l.SendEncoded(b)
		return
	}
	if !r.track(1) {
		return
	}
	time.AfterFunc(delay, func() {
		defer r.wg.Done()
		if r.ctx.Err() == nil && (skip == skipNone || !r.skipSpread(id, l, skip == skipHeardOrStop)) {
			l.SendEncoded(b)
		}
	})
}

// spreadDelay is the longest delay before a node with others friends
// besides a search's sender sends a spreading copy on: when it has more
// than SearchFanout, RouterConfig.SpreadDelay, short, since such a node
// never spreads a search of its own (it walks it), so the timing of its
// spreading copies says nothing about an origin: the delay is there so
// that copies from friends arrive meanwhile and the copies to them are
// not sent (skipSpread); RouterConfig.SearchDelay otherwise.
func (r *Router) spreadDelay(others int) time.Duration {
	if others > SearchFanout {
		return r.cfg.SpreadDelay
	}
	return r.cfg.SearchDelay
}

// sealAnswers seals results to reply in at most MaxResultsPerSearch
// answers: for a search by root (byRoot), one file per answer in one
// SealRootPad block (SealForRoot); else up to MaxFilesPerResult files per
// answer, fewer where long names need it. Results that cannot be sealed
// are left out.
func sealAnswers(reply [32]byte, byRoot bool, results []Result) [][]byte {
	var out [][]byte
	for n := 0; len(results) > 0 && n < MaxResultsPerSearch; n++ {
		k := 1
		var sealed []byte
		var err error
		if byRoot {
			sealed, err = SealForRoot(reply, results[0])
		} else {
			k = min(len(results), MaxFilesPerResult)
			sealed, err = Seal(reply, results[:k])
			for err != nil && k > 1 { // names too long for one result: halve
				k /= 2
				sealed, err = Seal(reply, results[:k])
			}
		}
		results = results[k:]
		if err == nil {
			out = append(out, sealed)
		}
	}
	return out
}

// spreadSkip says which copies of a search sendSearch leaves unsent.
type spreadSkip int

const (
	// skipNone sends the copy whatever came meanwhile (walking copies).
	skipNone spreadSkip = iota
	// skipHeard leaves out the copy to a friend that sent the search.
	skipHeard
	// skipHeardOrStop also leaves out every copy once SpreadHeardStop
	// friends besides the first sender sent the search.
	skipHeardOrStop
)

// skipSpread reports whether a spreading copy of search id, due now,
// should not go to l: l sent this node a copy, so it has the search, or,
// if stop is set, SpreadHeardStop friends besides its first sender did,
// so the search is all around this node already and its friends most
// likely have it too (a counter-based broadcast: Ni et al., MobiCom 1999).
func (r *Router) skipSpread(id SearchID, l *link, stop bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.searches.m[id]
	return e != nil && ((stop && len(e.heard) >= SpreadHeardStop) || slices.Contains(e.heard, l))
}

func (r *Router) handleSearch(l *link, m *Search) {
	if !l.searchLim.Allow() {
		r.searchesDropped.Add(1)
		return
	}
	r.searchesReceived.Add(1)
	received := time.Now()
	qk := queryKey(m)
	r.mu.Lock()
	fresh := r.searches.add(m.ID, l, received)
	e := r.searches.m[m.ID]
	if fresh {
		e.answers = searchAnswers(m)
	}
	others := r.otherLinks(l)
	var fs []forward
	switch {
	case m.Walk && fresh && len(others) == 0:
		// A dead end: the walk goes back, and its sender walks it on to
		// another friend (below), since a walk that ends here ends the
		// search.
		r.mu.Unlock()
		r.sendSearches(l.peer, []forward{{l, m.Depth}}, m, r.cfg.SearchDelay, false)
		r.answer(l, m, qk, received, r.cfg.SearchDelay)
		return
	case m.Walk && fresh && len(others) > SearchFanout && r.draw("walk keep", []byte(l.peer), m.ID[:]) < SearchWalkKeep:
		fs = r.walkForwards(l.peer, others, m.Depth, m.ID[:])
	case m.Walk && !fresh && e.walks < MaxWalkRepeats:
		// A walk that came back to a node that saw it (round a loop, or
		// from a dead end) goes on too, a few times, to a friend it has
		// not gone to from here: dropping it would end the search.
		var untried []*link
		for _, o := range others {
			if e.budget(o) == nil {
				untried = append(untried, o)
			}
		}
		fs = r.walkForwards(l.peer, untried, m.Depth, append(m.ID[:], byte(e.walks)))
		e.walks++
	case fresh:
		m.Walk = false // the walk ends here, or never was: spread
		fs = r.forwards(l.peer, others, m.Depth, qk, 1)
		// Each friend may send back its share of this node's answers.
		m.Answers = answerShare(e.answers, len(fs))
	default:
		e.hear(l)
	}
	e.sentOn(linksOf(fs))
	r.mu.Unlock()
	r.searchesForwarded.Add(uint64(len(fs)))
	maxDelay := r.cfg.SearchDelay // a walk's, and the answer's to a walking copy
	if !m.Walk {
		maxDelay = r.spreadDelay(len(others))
	}
	// Only a node that picks SearchFanout friends among more stops at
	// SpreadHeardStop: one with fewer sends to each, and a friend of it
	// may have no other way to the search (a small group of friends).
	r.sendSearches(l.peer, fs, m, maxDelay, len(others) > SearchFanout)
	if fresh {
		r.answer(l, m, qk, received, maxDelay)
	}
}

// answer answers m, received from l at received, from this node's
// Searcher, if it has any results. linkDelay is the longest delay this
// node puts before spreading a search from l (spreadDelay): its answer
// waits as long as a copy it sent on would have.
func (r *Router) answer(l *link, m *Search, qk []byte, received time.Time, linkDelay time.Duration) {
	if r.cfg.Searcher == nil {
		return
	}
	q := Query{Keywords: m.Keywords, RootHash: m.RootHash}
	reply := m.ReplyKey
	id := m.ID
	// This node's own answer leaves as late as one from a node behind it
	// could: after a per-link part like the search delay it would have
	// waited before sending the search on, and the holder's delay, both
	// fixed for the query (see holderDelay).
	r.goFn(func() {
		results := r.cfg.Searcher.Search(q)
		if len(results) == 0 {
			return
		}
		at := received.Add(time.Duration(r.draw("answer link", []byte(l.peer), qk)*float64(linkDelay)) +
			r.holderDelay("answer", qk))
		if !r.sleepUntil(at, l.Done()) {
			return
		}
		var out []*SearchResult
		for _, sealed := range sealAnswers(reply, q.Keywords == "", results) {
			out = append(out, &SearchResult{SearchID: id, Sealed: sealed})
		}
		// This node's answers come out of the budget it was given, like
		// those it relays: answers from behind it that came first leave
		// less for its own, which would be dropped further on.
		r.mu.Lock()
		if e := r.searches.m[id]; e != nil && e.from == l {
			out = out[:e.takeAnswers(len(out))]
		}
		r.mu.Unlock()
		if len(out) == 0 {
			return
		}
		r.searchesAnswered.Add(1)
		for _, m := range out {
			l.Send(m)
		}
	})
}

// handleSearchResult routes an answer back towards where its search came
// from. A relay takes from each link it sent the search on its share of
// its answer budget (answerShare): the first answer of each link always,
// more while the budget (Search.Answers as it got it, its own answers
// included) is not spent; it forwards those and cannot read them. The
// budget shrinks as a search spreads, so far from where the walk ended a
// relay sends back about one answer however many nodes behind it hold
// the file. The origin opens each answer and counts, per link, those that
// open and those that do not, each up to MaxResultsPerSearch: garbage
// costs a friend its own link's budget and never the others'.
func (r *Router) handleSearchResult(l *link, m *SearchResult) {
	r.mu.Lock()
	e, ok := r.searches.m[m.SearchID]
	if !ok || time.Since(e.seen) > ReversePathTTL {
		r.mu.Unlock()
		return
	}
	b := e.budget(l)
	if b == nil { // not sent on l: no answer can come from it
		r.mu.Unlock()
		return
	}
	if from := e.from; from != nil {
		// A link's first answer is always taken, so that a friend that
		// answers every search at once cannot use up the budget of the
		// others; more only while the budget lasts.
		if b.good >= e.share || (b.good > 0 && e.back >= e.answers) {
			r.mu.Unlock()
			r.resultsDropped.Add(1)
			return
		}
		b.good++
		e.back++
		r.mu.Unlock()
		from.Send(m)
		return
	}
	sub := r.mine[m.SearchID]
	if sub == nil || b.good >= MaxResultsPerSearch || b.bad >= MaxResultsPerSearch {
		r.mu.Unlock()
		r.resultsDropped.Add(1)
		return
	}
	r.mu.Unlock()
	// Answers from one link are handled one at a time by its read loop,
	// so b cannot change for l while the lock is released.
	rs, err := Open(sub.priv, m.Sealed)
	r.mu.Lock()
	if err != nil {
		b.bad++
	} else {
		b.good++
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Debug("dropping search result that does not open", slog.String("peer", l.peer.ShortString()), slog.Any("err", err))
		return
	}
	sub.deliver(rs)
}
