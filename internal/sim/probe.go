package sim

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/flynn/noise"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"kith/tunnels"
)

// Probe case kinds: who holds the file a prober asks its neighbour about.
const (
	// probeOwn: the neighbour holds it.
	probeOwn = "own"
	// probeNextHop: one of the neighbour's friends holds it, one hop
	// behind it.
	probeNextHop = "next hop"
	// probeFarther: a node two or more hops from the neighbour holds it.
	probeFarther = "farther"
)

// probeThresholds are the answer times the timing rule tries, in ms.
var probeThresholds = []float64{25, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000}

// probeFixedMs is the threshold of the review's attacker: own answers came
// in 1-4 ms, those from the next hop after 132 ms.
const probeFixedMs = 100

// prober is a probing friend: a host outside the graph that only one node,
// its neighbour, befriends. It runs no router; it writes hand-made probes
// on its router stream and reads the answers.
type prober struct {
	h        host.Host
	neighbor int

	held chan network.Stream // the router stream the neighbour opens
	s    network.Stream
	wmu  sync.Mutex
	mw   *tunnels.MessageWriter

	mu      sync.Mutex
	keys    map[tunnels.SearchID]noise.DHKey
	sent    map[any]time.Time // SearchID or TunnelID -> when sent
	answers map[any]time.Duration
	done    chan struct{}
}

// probeCase is one file a prober asks its neighbour about, and what came
// back.
type probeCase struct {
	nb   int // index of the prober among the neighbours
	p    *prober
	file int
	kind string
	// Probes sent: a search and a tunnel request at depth 0 and at
	// MaxDepth (zero ids if not sent).
	s0, sMax tunnels.SearchID
	t0, tMax tunnels.TunnelID
}

// planProbes picks cfg.Probers distinct neighbours and, for each, three
// files: one the neighbour holds, one a random friend of it holds, one a
// random node at two hops or more from it holds. It appends the files to
// place and returns the neighbours and the cases (probers unset).
func planProbes(cfg Config, g *Graph, place *placement, rng *mrand.Rand) ([]int, []*probeCase) {
	n := g.N()
	count := min(cfg.Probers, n)
	neighbors := rng.Perm(n)[:count]
	var cases []*probeCase
	add := func(nb, holder int, kind string) {
		k := len(place.roots)
		place.roots = append(place.roots, fileRoot(cfg.Seed, k))
		place.holders = append(place.holders, []int{holder})
		place.holds = append(place.holds, map[int]bool{holder: true})
		cases = append(cases, &probeCase{nb: nb, file: k, kind: kind})
	}
	for j, h := range neighbors {
		add(j, h, probeOwn)
		add(j, g.Adj[h][rng.IntN(len(g.Adj[h]))], probeNextHop)
		var far []int
		for v, d := range g.Distances(h) {
			if d >= 2 {
				far = append(far, v)
			}
		}
		if len(far) > 0 {
			add(j, far[rng.IntN(len(far))], probeFarther)
		}
	}
	return neighbors, cases
}

// startProbers starts a prober host per neighbour, befriended by that
// node only.
func startProbers(fab Fabric, nodes []*node, neighbors []int) ([]*prober, error) {
	out := make([]*prober, len(neighbors))
	for j, nb := range neighbors {
		h, err := fab.AddLeaf(nb)
		if err != nil {
			return nil, fmt.Errorf("starting prober %d: %w", j, err)
		}
		nodes[nb].friends.add(h.ID())
		p := &prober{h: h, neighbor: nb, keys: map[tunnels.SearchID]noise.DHKey{},
			sent: map[any]time.Time{}, answers: map[any]time.Duration{}, done: make(chan struct{})}
		held := make(chan network.Stream, 1)
		h.SetStreamHandler(tunnels.RouterProtocol, func(s network.Stream) {
			select {
			case held <- s:
			default:
				s.Reset()
			}
		})
		p.held = held
		out[j] = p
	}
	return out, nil
}

// link connects p to its neighbour and takes its router stream: the one p
// opens when its peer ID makes it the opener (with a first message, since
// the protocol is negotiated on the first write), else the one the
// neighbour's router opens.
func (p *prober) link(ctx context.Context, fab Fabric, nb *node) error {
	if err := fab.ConnectLeaf(ctx, p.h, p.neighbor); err != nil {
		return err
	}
	if p.h.ID() < nb.h.ID() {
		s, err := p.h.NewStream(ctx, nb.h.ID(), tunnels.RouterProtocol)
		if err != nil {
			return fmt.Errorf("opening the router stream of a prober: %w", err)
		}
		p.s = s
		p.mw = tunnels.NewMessageWriter(s)
		p.write(&tunnels.TunnelClose{ID: 1}) // does nothing
	} else {
		select {
		case p.s = <-p.held:
			p.mw = tunnels.NewMessageWriter(p.s)
		case <-ctx.Done():
			return fmt.Errorf("waiting for a prober's router stream: %w", ctx.Err())
		}
	}
	go p.read()
	return nil
}

func (p *prober) write(m tunnels.Message) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.s.SetWriteDeadline(time.Now().Add(tunnels.LinkWriteTimeout))
	p.mw.Write(m) // a failed write shows as a probe without answer
}

// read records the first answer to each probe: a search answer that
// opens, or a TunnelOK, which it closes at once (a prober opens no
// tunnel). It answers tunnel requests of others with TunnelFail, as a
// node with no other friend does, and drops searches.
func (p *prober) read() {
	defer close(p.done)
	mr := tunnels.NewMessageReader(p.s)
	for {
		m, err := mr.Read()
		if errors.Is(err, tunnels.ErrUnknownMessage) {
			continue
		}
		if err != nil {
			return
		}
		now := time.Now()
		var key any
		switch m := m.(type) {
		case *tunnels.SearchResult:
			p.mu.Lock()
			priv, ok := p.keys[m.SearchID]
			p.mu.Unlock()
			if !ok {
				continue
			}
			if _, err := tunnels.Open(priv, m.Sealed); err != nil {
				continue
			}
			key = m.SearchID
		case *tunnels.TunnelOK:
			key = m.ID
			p.write(&tunnels.TunnelClose{ID: m.ID})
		case *tunnels.TunnelRequest:
			p.write(&tunnels.TunnelFail{ID: m.ID, Code: tunnels.FailNoRoute})
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

// search sends a search for root at depth and returns its id.
func (p *prober) search(root [32]byte, depth int) tunnels.SearchID {
	priv, err := tunnels.GenerateKey()
	if err != nil {
		return tunnels.SearchID{}
	}
	m := &tunnels.Search{Depth: depth, RootHash: tunnels.SearchHash(root), ReplyKey: [32]byte(priv.Public)}
	crandRead(m.ID[:])
	p.mu.Lock()
	p.keys[m.ID] = priv
	p.sent[m.ID] = time.Now()
	p.mu.Unlock()
	p.write(m)
	return m.ID
}

// tunnel sends a tunnel request for root at depth and returns its id.
func (p *prober) tunnel(root [32]byte, depth int) tunnels.TunnelID {
	var b [8]byte
	for b == ([8]byte{}) {
		crandRead(b[:])
	}
	m := &tunnels.TunnelRequest{ID: tunnels.TunnelID(binary.BigEndian.Uint64(b[:])), Depth: depth, Target: tunnels.TargetForRoot(root)}
	crandRead(m.RequestID[:])
	p.mu.Lock()
	p.sent[m.ID] = time.Now()
	p.mu.Unlock()
	p.write(m)
	return m.ID
}

// pace calls each of sends in turn, rate a second, until ctx ends.
func pace(ctx context.Context, rate float64, sends []func()) {
	start := time.Now()
	for k, send := range sends {
		at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(at)):
		}
		send()
	}
}

// crandRead fills b from crypto/rand.
func crandRead(b []byte) { crand.Read(b) }

// answer returns the time to the first answer to a probe, if one came.
func (p *prober) answer(probe any) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.answers[probe]
	return d, ok
}

// close ends p's stream and waits for its reader.
func (p *prober) close() {
	if p.s != nil {
		p.s.Reset()
		<-p.done
	}
}

// runProbes links the probers, sends every case's probes (searches at
// cfg.SearchRate a second across all probers, tunnel requests at 0.9 of
// tunnels.TunnelRequestsPerSecond: every probe may cross every link) and
// waits cfg.ProbeWindow for the last answers.
func runProbes(ctx context.Context, cfg Config, fab Fabric, nodes []*node, probers []*prober, cases []*probeCase, place placement) error {
	for _, p := range probers {
		if err := p.link(ctx, fab, nodes[p.neighbor]); err != nil {
			return err
		}
	}
	defer func() {
		for _, p := range probers {
			p.close()
		}
	}()
	// Wait until every neighbour's router has its link to its prober.
	deadline := time.Now().Add(cfg.LinkWait)
	for _, p := range probers {
		for !slices.Contains(nodes[p.neighbor].r.Links(), p.h.ID()) {
			if time.Now().After(deadline) {
				return fmt.Errorf("waiting for the probers' router links: still down after %v", cfg.LinkWait)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for the probers' router links: %w", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	var searches, requests []func()
	for _, c := range cases {
		root := place.roots[c.file]
		searches = append(searches,
			func() { c.s0 = c.p.search(root, 0) },
			func() { c.sMax = c.p.search(root, tunnels.MaxDepth) })
		if c.kind != probeFarther {
			requests = append(requests,
				func() { c.t0 = c.p.tunnel(root, 0) },
				func() { c.tMax = c.p.tunnel(root, tunnels.MaxDepth) })
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { pace(ctx, cfg.SearchRate, searches) })
	wg.Go(func() { pace(ctx, 0.9*tunnels.TunnelRequestsPerSecond, requests) })
	wg.Wait()
	select {
	case <-ctx.Done():
		return fmt.Errorf("probing: %w", ctx.Err())
	case <-time.After(cfg.ProbeWindow):
	}
	return nil
}

// ProbeRule is how well one rule of the probing friend names its
// neighbour as the holder, in one population of cases.
type ProbeRule struct {
	// Probe is "search" or "tunnel"; Population "next hop" (the file is
	// the neighbour's or one of its friends') or "farther" (the
	// neighbour's or a node's two hops or more from it).
	Probe      string `json:"probe"`
	Population string `json:"population"`
	// Cases counts the cases in which the full-depth probe was answered:
	// those the prober can judge. BaseRate is the share of them in which
	// the neighbour holds the file: the precision of guessing "the
	// neighbour" every time.
	Cases    int     `json:"cases"`
	BaseRate float64 `json:"base_rate"`
	RuleResult
}

// ProbeReport is what probing friends learn about which files their
// neighbour holds.
type ProbeReport struct {
	Probers int `json:"probers"`
	// Rules, per probe and population: "depth 0 answered", "within
	// 100ms" (the review's attacker), and "best within T", the threshold
	// of the grid with the best precision among those with at least 5
	// guesses (an upper bound: the prober does not know the truth to
	// pick it).
	Rules []ProbeRule `json:"rules"`
	// AnswerMs is the time to the first answer of the full-depth probe,
	// by probe and case kind ("search own", "tunnel next hop", ...).
	AnswerMs map[string]Summary `json:"answer_ms"`
}

// probeReport judges the cases with the probing friend's rules.
func probeReport(cases []*probeCase) *ProbeReport {
	rep := &ProbeReport{AnswerMs: map[string]Summary{}}
	probers := map[*prober]bool{}
	times := map[string][]float64{}
	type obs struct {
		own, zero bool
		ms        float64
	}
	for _, probe := range []string{"search", "tunnel"} {
		byPop := map[string][]obs{}
		for _, c := range cases {
			probers[c.p] = true
			var zero, full any = c.s0, c.sMax
			if probe == "tunnel" {
				if c.t0 == 0 {
					continue // farther cases get no tunnel probes
				}
				zero, full = c.t0, c.tMax
			}
			d, ok := c.p.answer(full)
			if !ok {
				continue
			}
			_, z := c.p.answer(zero)
			o := obs{own: c.kind == probeOwn, zero: z, ms: ms(d)}
			times[probe+" "+c.kind] = append(times[probe+" "+c.kind], o.ms)
			if c.kind == probeOwn {
				byPop[probeNextHop] = append(byPop[probeNextHop], o)
				byPop[probeFarther] = append(byPop[probeFarther], o)
			} else {
				byPop[c.kind] = append(byPop[c.kind], o)
			}
		}
		for _, pop := range []string{probeNextHop, probeFarther} {
			os := byPop[pop]
			if len(os) == 0 {
				continue
			}
			positives := 0
			for _, o := range os {
				if o.own {
					positives++
				}
			}
			if positives == len(os) {
				continue // no case of this population was probed this way
			}
			judge := func(rule string, accuse func(obs) bool) ProbeRule {
				r := ProbeRule{Probe: probe, Population: pop, Cases: len(os), BaseRate: ratio(positives, len(os)),
					RuleResult: RuleResult{Rule: rule, Positives: positives}}
				for _, o := range os {
					if accuse(o) {
						r.Guesses++
						if o.own {
							r.Correct++
						}
					}
				}
				r.finish()
				return r
			}
			rep.Rules = append(rep.Rules, judge("depth 0 answered", func(o obs) bool { return o.zero }))
			rep.Rules = append(rep.Rules, judge(fmt.Sprintf("within %dms", probeFixedMs), func(o obs) bool { return o.ms < probeFixedMs }))
			var best *ProbeRule
			for _, th := range probeThresholds {
				r := judge(fmt.Sprintf("best within T (T=%.0fms)", th), func(o obs) bool { return o.ms < th })
				if r.Guesses >= 5 && (best == nil || r.Precision > best.Precision) {
					best = &r
				}
			}
			if best != nil {
				rep.Rules = append(rep.Rules, *best)
			}
		}
	}
	for k, xs := range times {
		rep.AnswerMs[k] = summarize(xs)
	}
	rep.Probers = len(probers)
	return rep
}
