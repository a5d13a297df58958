package tunnels

import (
	"container/list"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/flynn/noise"
)

// searchEntry remembers a search id: for dropping duplicates and, while
// ReversePathTTL lasts, for routing its answers back.
type searchEntry struct {
	id      SearchID
	from    *link // nil for this node's own searches
	seen    time.Time
	results int
	elem    *list.Element
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

// Search floods q to every friend and returns the results as they
// arrive, opened from their sealed form. The channel is closed when ctx
// ends or the router closes; results the caller does not read in time
// (beyond SearchResultQueue) are dropped. A Search is never answered by
// this node itself.
func (r *Router) Search(ctx context.Context, q Query) (<-chan Result, error) {
	if q.Keywords == "" && q.RootHash == ([32]byte{}) {
		return nil, fmt.Errorf("searching: %w: empty query", ErrInvalidMessage)
	}
	priv, err := GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("searching: %w", err)
	}
	m := Search{Keywords: q.Keywords, RootHash: q.RootHash, ReplyKey: [32]byte(priv.Public)}
	if q.Keywords != "" {
		m.RootHash = [32]byte{}
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
	links := r.otherLinks(nil)
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
	v := OriginDepth(r.cfg.Rand)
	for _, l := range links {
		d, _ := ForwardDepth(r.cfg.Rand, v)
		c := m
		c.Depth = d
		r.sendSearch(l, &c)
	}
	return sub.ch, nil
}

// sendSearch sends a search to friend l after a random delay of up to
// RouterConfig.SearchDelay, drawn anew for every link, for a relay's
// copies and an origin's own alike. Without it, the first copy of a search
// that a friend of the origin receives comes straight from the origin, so
// friends comparing arrival times could name the origin; with it, a copy
// that went round through a common friend often arrives first.
func (r *Router) sendSearch(l *link, m *Search) {
	if r.cfg.SearchDelay <= 0 {
		l.send(m)
		return
	}
	delay := time.Duration(mrand.Int64N(int64(r.cfg.SearchDelay) + 1))
	if !r.track(1) {
		return
	}
	time.AfterFunc(delay, func() {
		defer r.wg.Done()
		if r.ctx.Err() == nil {
			l.send(m)
		}
	})
}

func (r *Router) handleSearch(l *link, m *Search) {
	if !l.searchLim.Allow() {
		r.searchesDropped.Add(1)
		return
	}
	r.mu.Lock()
	fresh := r.searches.add(m.ID, l, time.Now())
	var links []*link
	if fresh && m.Depth > 0 {
		links = r.otherLinks(l)
	}
	r.mu.Unlock()
	if !fresh {
		return
	}
	for _, o := range links {
		d, _ := ForwardDepth(r.cfg.Rand, m.Depth)
		c := *m
		c.Depth = d
		r.sendSearch(o, &c)
	}
	if r.cfg.Searcher == nil {
		return
	}
	q := Query{Keywords: m.Keywords, RootHash: m.RootHash}
	reply := m.ReplyKey
	id := m.ID
	r.goFn(func() {
		results := r.cfg.Searcher.Search(q)
		for n := 0; len(results) > 0 && n < MaxResultsPerSearch; n++ {
			k := min(len(results), MaxFilesPerResult)
			sealed, err := Seal(reply, results[:k])
			for err != nil && k > 1 { // names too long for one result: halve
				k /= 2
				sealed, err = Seal(reply, results[:k])
			}
			results = results[k:]
			if err != nil {
				continue
			}
			l.send(&SearchResult{SearchID: id, Sealed: sealed})
		}
	})
}

func (r *Router) handleSearchResult(l *link, m *SearchResult) {
	r.mu.Lock()
	e, ok := r.searches.m[m.SearchID]
	if !ok || e.from == l || time.Since(e.seen) > ReversePathTTL || e.results >= MaxResultsPerSearch {
		r.mu.Unlock()
		return
	}
	e.results++
	from := e.from
	sub := r.mine[m.SearchID]
	r.mu.Unlock()
	if from != nil {
		from.send(m)
		return
	}
	if sub == nil {
		return
	}
	rs, err := Open(sub.priv, m.Sealed)
	if err != nil {
		r.log.Debug("dropping search result that does not open", "err", err)
		return
	}
	sub.deliver(rs)
}
