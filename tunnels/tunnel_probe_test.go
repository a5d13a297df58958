package tunnels

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/libp2p/go-libp2p/core/network"
)

// rootSet is a Searcher and Holder of some roots, answering searches by
// root hash only.
type rootSet struct {
	name  string
	roots map[[32]byte]bool
}

func (s *rootSet) Search(q Query) []Result {
	for root := range s.roots {
		if q.RootHash == SearchHash(root) {
			return []Result{{Name: s.name, Size: 1, Root: root}}
		}
	}
	return nil
}

func (s *rootSet) HoldsTarget(target [32]byte) ([32]byte, bool) {
	for root := range s.roots {
		if target == TargetForRoot(root) {
			return root, true
		}
	}
	return [32]byte{}, false
}

// prober plays a friend that probes its neighbour with hand-made searches
// and tunnel requests, and times the answers.
type prober struct {
	t   *testing.T
	s   network.Stream
	wmu sync.Mutex
	mw  *MessageWriter

	mu      sync.Mutex
	keys    map[SearchID]noise.DHKey
	sent    map[any]time.Time // SearchID or TunnelID -> when sent
	answers map[any]time.Duration
	done    chan struct{}
}

func newProber(t *testing.T, s network.Stream) *prober {
	p := &prober{t: t, s: s, mw: NewMessageWriter(s), keys: map[SearchID]noise.DHKey{},
		sent: map[any]time.Time{}, answers: map[any]time.Duration{}, done: make(chan struct{})}
	go p.read()
	t.Cleanup(func() { s.Reset(); <-p.done })
	return p
}

func (p *prober) write(m Message) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if err := p.mw.Write(m); err != nil {
		p.t.Errorf("prober write: %v", err)
	}
}

// read records the first answer to each probe: a search answer that
// opens, or a TunnelOK (closed at once; the prober opens no tunnel).
func (p *prober) read() {
	defer close(p.done)
	mr := NewMessageReader(p.s)
	for {
		m, err := mr.Read()
		if errors.Is(err, ErrUnknownMessage) {
			continue
		}
		if err != nil {
			return
		}
		now := time.Now()
		var key any
		switch m := m.(type) {
		case *SearchResult:
			p.mu.Lock()
			priv, ok := p.keys[m.SearchID]
			p.mu.Unlock()
			if _, err := Open(priv, m.Sealed); !ok || err != nil {
				continue
			}
			key = m.SearchID
		case *TunnelOK:
			key = m.ID
			p.write(&TunnelClose{ID: m.ID})
		case *TunnelRequest:
			p.write(&TunnelFail{ID: m.ID, Code: FailNoRoute})
			continue
		default:
			continue
		}
		p.mu.Lock()
		if at, ok := p.sent[key]; ok {
			if _, seen := p.answers[key]; !seen {
				p.answers[key] = now.Sub(at)
			}
		}
		p.mu.Unlock()
	}
}

// search sends a search for root with depth and returns its id.
func (p *prober) search(root [32]byte, depth int) SearchID {
	priv, err := GenerateKey()
	if err != nil {
		p.t.Fatal(err)
	}
	m := &Search{ID: SearchID(randBytes(16)), Depth: depth, RootHash: SearchHash(root), ReplyKey: [32]byte(priv.Public)}
	p.mu.Lock()
	p.keys[m.ID] = priv
	p.sent[m.ID] = time.Now()
	p.mu.Unlock()
	p.write(m)
	return m.ID
}

// tunnel sends a tunnel request for root with depth and returns its id.
func (p *prober) tunnel(root [32]byte, depth int) TunnelID {
	m := &TunnelRequest{ID: newTunnelID(), Depth: depth, Target: TargetForRoot(root), RequestID: RequestID(randBytes(16))}
	p.mu.Lock()
	p.sent[m.ID] = time.Now()
	p.mu.Unlock()
	p.write(m)
	return m.ID
}

// answer returns the time to the first answer to probe, if any came.
func (p *prober) answer(probe any) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.answers[probe]
	return d, ok
}

// TestProbingFriendCannotTellHolder plays the friend P of a node H that
// wants to know which files are H's own, on a chain P - H - F - G of real
// hosts. Some files are held by H alone, some by F (behind H) alone, some
// by both. For each, P sends a search and a tunnel request at depth 0 and
// at the full depth and classifies: "H holds it" if a depth-0 probe is
// answered, and, by timing, if the full-depth probe is answered within
// 100 ms (the review saw H's own answers in 1-4 ms, those from the next
// hop after 132 ms). The classifier's verdicts must be the same whether
// H, F or both hold the file.
func TestProbingFriendCannotTellHolder(t *testing.T) {
	const perCase, fast = 4, 100 * time.Millisecond
	cases := []string{"H", "F", "both"}
	files := map[string][][32]byte{}
	hset := &rootSet{name: "held.bin", roots: map[[32]byte]bool{}}
	fset := &rootSet{name: "held.bin", roots: map[[32]byte]bool{}}
	for _, c := range cases {
		for range perCase {
			root := [32]byte(randBytes(32))
			files[c] = append(files[c], root)
			if c != "F" {
				hset.roots[root] = true
			}
			if c != "H" {
				fset.roots[root] = true
			}
		}
	}
	// 0 H, 1 F, 2 G: real routers at their defaults (holder delays on).
	nodes := newNet(t, 3, chainEdges(3), func(i int, c *RouterConfig) {
		c.Tap = nil
		var s *rootSet
		switch i {
		case 0:
			s = hset
		case 1:
			s = fset
		default:
			return
		}
		c.Searcher, c.Holder = s, s
		c.OnTunnel = func(tn *Tunnel) { tn.Close() }
	})
	_, ps := hostileFriend(t, nodes[0])
	p := newProber(t, ps)

	type probes struct {
		s0, sMax SearchID
		t0, tMax TunnelID
	}
	sent := map[[32]byte]*probes{}
	var all [][32]byte
	for _, c := range cases {
		all = append(all, files[c]...)
	}
	for _, root := range all {
		sent[root] = &probes{}
	}
	// Searches and tunnel requests go out side by side, each within H's
	// rate for P and F's for H (SearchesPerSecond, TunnelRequestsPerSecond).
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, root := range all {
			sent[root].s0 = p.search(root, 0)
			sent[root].sMax = p.search(root, MaxDepth)
			time.Sleep(time.Second / SearchesPerSecond)
		}
	})
	wg.Go(func() {
		for i, root := range all {
			sent[root].t0 = p.tunnel(root, 0)
			sent[root].tMax = p.tunnel(root, MaxDepth)
			if 2*(i+1) >= TunnelRequestBurst/2 { // then below the rate, with room for jitter
				time.Sleep(1200 * time.Millisecond)
			}
		}
	})
	wg.Wait()
	// The slowest answer: the holder delay, the search delays of two
	// hops and of the holder's link, and the network.
	time.Sleep(DefaultHolderDelay + 3*DefaultSearchDelay + time.Second)

	type verdicts struct{ depth0, fastSearch, fastTunnel, answered int }
	got := map[string]*verdicts{}
	for _, c := range cases {
		v := &verdicts{}
		got[c] = v
		for _, root := range files[c] {
			pr := sent[root]
			_, s0 := p.answer(pr.s0)
			_, t0 := p.answer(pr.t0)
			ds, sOK := p.answer(pr.sMax)
			dt, tOK := p.answer(pr.tMax)
			t.Logf("%-4s depth-0 search answered %v, tunnel %v; full depth: search in %v (%v), tunnel in %v (%v)",
				c, s0, t0, ds.Round(time.Millisecond), sOK, dt.Round(time.Millisecond), tOK)
			if s0 {
				v.depth0++
			}
			if t0 {
				v.depth0++
			}
			if sOK && tOK {
				v.answered++
			}
			if sOK && ds < fast {
				v.fastSearch++
			}
			if tOK && dt < fast {
				v.fastTunnel++
			}
		}
	}
	t.Logf("verdicts by case: H %+v, F %+v, both %+v", *got["H"], *got["F"], *got["both"])
	for _, c := range cases {
		v := got[c]
		if v.answered != perCase {
			t.Errorf("case %s: %d of %d files answered at the full depth: the test proves nothing", c, v.answered, perCase)
		}
		// Depth: every depth-0 probe is answered, whoever holds the
		// file, so "answered at depth 0" says nothing.
		if v.depth0 != 2*perCase {
			t.Errorf("case %s: %d of %d depth-0 probes answered; the depth-0 classifier tells the holders apart", c, v.depth0, 2*perCase)
		}
	}
	for _, what := range []string{"search", "tunnel"} {
		h, f := got["H"].fastSearch, got["F"].fastSearch
		if what == "tunnel" {
			h, f = got["H"].fastTunnel, got["F"].fastTunnel
		}
		if h-f > 1 || f-h > 1 {
			t.Errorf("%s answers within %v: %d of %d when H holds the file, %d when F does: the timing classifier tells them apart",
				what, fast, h, perCase, f)
		}
	}
}
