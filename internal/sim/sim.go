package sim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"kith/tunnels"
)

// simLinkRetry is how often routers retry a missing link: shorter than
// the default, since a mocknet connection is up at once.
const simLinkRetry = 500 * time.Millisecond

// Run builds cfg's friend graph on a mocknet, runs the workload on a real
// tunnels.Router per node and returns what it measured. Every host and
// router is closed before Run returns. ctx bounds the whole run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("checking simulation: %w", err)
	}
	g, err := NewGraph(cfg.Graph, cfg.Nodes, cfg.Degree, cfg.Rewire, cfg.Seed)
	if err != nil {
		return nil, err
	}
	base := heapInUse()
	t0 := time.Now()
	fab, err := NewMockFabric(g, cfg.Seed, mocknet.LinkOptions{Latency: cfg.Latency, Bandwidth: cfg.Bandwidth})
	if err != nil {
		return nil, err
	}
	defer fab.Close()
	progress(cfg, "started %d mocknet hosts and %d links in %v", g.N(), len(g.Edges()), time.Since(t0).Round(time.Millisecond))
	return run(ctx, cfg, g, fab, base, t0)
}

// RunOn runs cfg's workload on fab, whose node i is vertex i of g (cfg's
// Nodes, Degree, Graph and Rewire are not used), and returns what it
// measured. The routers are closed before RunOn returns; fab is the
// caller's to close.
func RunOn(ctx context.Context, cfg Config, g *Graph, fab Fabric) (*Report, error) {
	cfg.Nodes = g.N()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("checking simulation: %w", err)
	}
	if len(fab.Hosts()) != g.N() {
		return nil, fmt.Errorf("running simulation: %d hosts for %d nodes", len(fab.Hosts()), g.N())
	}
	return run(ctx, cfg, g, fab, heapInUse(), time.Now())
}

func progress(cfg Config, format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "sim: "+format+"\n", args...)
	}
}

// node is one simulated kith node.
type node struct {
	i       int
	h       host.Host
	r       *tunnels.Router
	friends *friendSet
	share   *share
}

// friendSet is a node's friend list: the tunnels.Friends of its router.
// Friends are added (probers) only before the router starts.
type friendSet struct {
	ids []peer.ID
	set map[peer.ID]bool
}

func (f *friendSet) IsFriend(p peer.ID) bool { return f.set[p] }
func (f *friendSet) IDs() []peer.ID          { return f.ids }

func (f *friendSet) add(p peer.ID) {
	f.ids = append(f.ids, p)
	f.set[p] = true
}

// share is what a node shares anonymously: the tunnels.Searcher and
// tunnels.Holder of its router. Results are named "f<file>-n<node>" so
// the searcher learns which holder answered.
type share struct {
	byHash   map[[tunnels.SearchHashLen]byte]tunnels.Result
	byTarget map[[32]byte][32]byte
}

func (s *share) Search(q tunnels.Query) []tunnels.Result {
	if r, ok := s.byHash[q.RootHash]; ok {
		return []tunnels.Result{r}
	}
	return nil
}

func (s *share) HoldsTarget(t [32]byte) ([32]byte, bool) {
	root, ok := s.byTarget[t]
	return root, ok
}

// fileRoot is the made-up root of file k.
func fileRoot(seed uint64, k int) [32]byte {
	return sha256.Sum256([]byte(fmt.Sprintf("kith sim file %d seed %d", k, seed)))
}

// holderOf parses the node out of a result name "f<file>-n<node>".
func holderOf(name string) int {
	_, after, ok := strings.Cut(name, "-n")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(after)
	if err != nil {
		return -1
	}
	return n
}

// placement says who holds which file.
type placement struct {
	roots   [][32]byte
	holders [][]int // per file, sorted by placement order
	holds   []map[int]bool
}

// placeFiles puts file 0 on one node and file k >= 1 on
// ceil(n*PopularShare/k) nodes, all chosen at random.
func placeFiles(cfg Config, n int, rng *mrand.Rand) placement {
	p := placement{roots: make([][32]byte, cfg.Files), holders: make([][]int, cfg.Files), holds: make([]map[int]bool, cfg.Files)}
	for k := range cfg.Files {
		p.roots[k] = fileRoot(cfg.Seed, k)
		copies := 1
		if k > 0 {
			copies = int(math.Ceil(float64(n) * cfg.PopularShare / float64(k)))
			copies = max(1, min(copies, n-1))
		}
		p.holds[k] = make(map[int]bool, copies)
		for _, v := range rng.Perm(n)[:copies] {
			p.holders[k] = append(p.holders[k], v)
			p.holds[k][v] = true
		}
	}
	return p
}

// search is one planned search of the workload.
type search struct {
	origin, file int
}

// planSearches draws the workload: the file of each search (the rare
// file with probability TargetShare, else Zipf) and an origin that does
// not hold it.
func planSearches(cfg Config, n int, p placement, rng *mrand.Rand) []search {
	var zipfTotal float64
	for k := 1; k < cfg.Files; k++ {
		zipfTotal += 1 / float64(k)
	}
	out := make([]search, cfg.Searches)
	for i := range out {
		file := 0
		if cfg.Files > 1 && rng.Float64() >= cfg.TargetShare {
			u := rng.Float64() * zipfTotal
			for file = 1; file < cfg.Files-1; file++ {
				u -= 1 / float64(file)
				if u < 0 {
					break
				}
			}
		}
		o := rng.IntN(n)
		for p.holds[file][o] {
			o = rng.IntN(n)
		}
		out[i] = search{origin: o, file: file}
	}
	return out
}

// run is Run and RunOn after the fabric is up.
func run(ctx context.Context, cfg Config, g *Graph, fab Fabric, baseHeap uint64, t0 time.Time) (*Report, error) {
	n := g.N()
	hosts := fab.Hosts()
	obs := newObserver(n)
	for i, h := range hosts {
		obs.peers[h.ID()] = i
	}
	rng := mrand.New(mrand.NewPCG(cfg.Seed, 1))
	place := placeFiles(cfg, n, rng)
	plan := planSearches(cfg, n, place, rng)
	// The probes' files and neighbours, from randomness of their own so
	// that the workload stays what it was without them.
	neighbors, cases := planProbes(cfg, g, &place, mrand.New(mrand.NewPCG(cfg.Seed, 3)))

	nodes := make([]*node, n)
	for i := range nodes {
		fs := &friendSet{set: make(map[peer.ID]bool)}
		for _, j := range g.Adj[i] {
			fs.ids = append(fs.ids, hosts[j].ID())
			fs.set[hosts[j].ID()] = true
		}
		sh := &share{byHash: make(map[[tunnels.SearchHashLen]byte]tunnels.Result), byTarget: make(map[[32]byte][32]byte)}
		for k, holds := range place.holds {
			if holds[i] {
				root := place.roots[k]
				sh.byHash[tunnels.SearchHash(root)] = tunnels.Result{Name: fmt.Sprintf("f%d-n%d", k, i), Size: 1, Root: root}
				sh.byTarget[tunnels.TargetForRoot(root)] = root
			}
		}
		nodes[i] = &node{i: i, h: hosts[i], friends: fs, share: sh}
	}
	probers, err := startProbers(fab, nodes, neighbors)
	if err != nil {
		return nil, err
	}
	for _, p := range probers {
		obs.probers[p.h.ID()] = true
	}
	for _, c := range cases {
		c.p = probers[c.nb]
	}
	defer closeRouters(nodes)
	for i, nd := range nodes {
		rc := tunnels.DefaultRouterConfig()
		rc.Searcher, rc.Holder = nd.share, nd.share
		rc.OnTunnel = func(t *tunnels.Tunnel) {
			io.Copy(io.Discard, t)
			t.Close()
		}
		rc.Tap = obs.tap(i)
		rc.LinkRetry = simLinkRetry
		rc.HolderDelay = cfg.HolderDelay
		rc.Secret = sha256.Sum256(fmt.Appendf(nil, "kith sim router secret %d seed %d", i, cfg.Seed))
		if cfg.Rand != nil {
			rc.Rand = cfg.Rand(i)
		} else {
			rc.Rand = &lockedSource{src: mrand.NewPCG(cfg.Seed, uint64(i)+1<<32)}
		}
		r, err := tunnels.NewRouter(nd.h, nd.friends, rc)
		if err != nil {
			return nil, fmt.Errorf("starting router of node %d: %w", i, err)
		}
		nd.r = r
	}

	rep := &Report{Config: reportConfig(cfg, g)}
	if err := connectAll(ctx, cfg, g, fab); err != nil {
		return nil, err
	}
	rep.Timing.ConnectSeconds = time.Since(t0).Seconds()
	progress(cfg, "connected %d friend pairs in %v", len(g.Edges()), time.Since(t0).Round(time.Millisecond))
	if err := waitLinks(ctx, cfg, g, nodes); err != nil {
		return nil, err
	}
	rep.Timing.LinksUpSeconds = time.Since(t0).Seconds()
	progress(cfg, "all %d router links up after %v", 2*len(g.Edges()), time.Since(t0).Round(time.Millisecond))
	if h := heapInUse(); h > baseHeap {
		rep.Cost.HeapPerNodeKiB = float64(h-baseHeap) / 1024 / float64(n)
	}
	rep.Cost.Goroutines = runtime.NumGoroutine()

	recs, err := runSearches(ctx, cfg, nodes, place, plan, obs, rep)
	if err != nil {
		return nil, err
	}
	progress(cfg, "%d searches done after %v", len(plan), time.Since(t0).Round(time.Millisecond))
	tuns := runTunnels(ctx, cfg, nodes, place, obs, rng)
	rep.Timing.TunnelSeconds = sumSetup(tuns)
	progress(cfg, "%d tunnels done after %v", len(tuns), time.Since(t0).Round(time.Millisecond))
	if len(probers) > 0 {
		t1 := time.Now()
		if err := runProbes(ctx, cfg, fab, nodes, probers, cases, place); err != nil {
			return nil, err
		}
		rep.Privacy.Probing = probeReport(cases)
		rep.Timing.ProbeSeconds = time.Since(t1).Seconds()
		progress(cfg, "%d probing friends asked about %d files after %v", len(probers), len(cases), time.Since(t0).Round(time.Millisecond))
	}
	if cfg.Lobby {
		t1 := time.Now()
		lr, err := runLobby(ctx, cfg, g, nodes, obs.peers, obs.now)
		if err != nil {
			return nil, err
		}
		rep.Lobby = lr
		rep.Timing.LobbySeconds = time.Since(t1).Seconds()
	}

	for _, nd := range nodes {
		st := nd.r.Stats()
		rep.Search.SearchesDropped += st.SearchesDropped
		rep.Search.MessagesDropped += st.MessagesDropped
		rep.Tunnels.RequestsDropped += st.TunnelsDropped
		rep.FriendsDisconnected += st.FriendsDisconnected
	}
	rep.Undecoded = obs.undecoded.Load()
	analyse(cfg, g, recs, tuns, rep)
	rep.Timing.TotalSeconds = time.Since(t0).Seconds()
	return rep, nil
}

// closeRouters closes every router, a few at a time.
func closeRouters(nodes []*node) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, nd := range nodes {
		if nd == nil || nd.r == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			nd.r.Close()
		})
	}
	wg.Wait()
}

// connectAll connects every friend pair, cfg.ConnectWorkers at a time.
func connectAll(ctx context.Context, cfg Config, g *Graph, fab Fabric) error {
	edges := g.Edges()
	ch := make(chan Edge)
	errs := make(chan error, cfg.ConnectWorkers)
	var wg sync.WaitGroup
	for range cfg.ConnectWorkers {
		wg.Go(func() {
			for e := range ch {
				if err := fab.Connect(ctx, e.A, e.B); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, e := range edges {
		ch <- e
	}
	close(ch)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// waitLinks waits until every router has a control stream to each friend.
func waitLinks(ctx context.Context, cfg Config, g *Graph, nodes []*node) error {
	deadline := time.Now().Add(cfg.LinkWait)
	for {
		missing := 0
		for i, nd := range nodes {
			missing += len(g.Adj[i]) - len(nd.r.Links())
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for router links: %d of %d still down after %v", missing, 2*len(g.Edges()), cfg.LinkWait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for router links: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runSearches starts the planned searches at cfg.SearchRate and collects
// their results for cfg.SearchWindow each.
func runSearches(ctx context.Context, cfg Config, nodes []*node, place placement, plan []search, obs *observer, rep *Report) ([]*searchRec, error) {
	recs := make([]*searchRec, len(plan))
	before, bytes0, links0 := obs.sentSnapshot(), obs.bytesSnapshot(), obs.linkSearches()
	answers0 := obs.answerSnapshot()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	for k, s := range plan {
		at := start.Add(time.Duration(float64(k) / cfg.SearchRate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("running searches: %w", ctx.Err())
		case <-time.After(time.Until(at)):
		}
		rec := &searchRec{k: k, origin: s.origin, file: s.file, firstHolder: -1, holders: make(map[int]bool)}
		rec.start = obs.now()
		obs.expect(rec)
		sctx, cancel := context.WithTimeout(ctx, cfg.SearchWindow)
		ch, err := nodes[s.origin].r.Search(sctx, tunnels.Query{RootHash: tunnels.SearchHash(place.roots[s.file])})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("starting search %d from node %d: %w", k, s.origin, err)
		}
		recs[k] = rec
		wg.Go(func() {
			defer cancel()
			for res := range ch {
				h := holderOf(res.Name)
				at := obs.now() - rec.start
				rec.mu.Lock()
				if !rec.found {
					rec.found, rec.firstResult, rec.firstHolder = true, at, h
				}
				rec.holders[h] = true
				rec.mu.Unlock()
			}
		})
	}
	wg.Wait()
	rep.Timing.SearchSeconds = time.Since(start).Seconds()
	rep.Cost.CPUPerSearchMs = float64(cpuTime()-cpu0) / float64(time.Millisecond) / float64(max(1, len(plan)))
	after := obs.sentSnapshot()
	per := make([]float64, len(after))
	for i := range after {
		per[i] = float64(after[i] - before[i])
	}
	rep.Search.MessagesPerNode = summarize(per)
	// Traffic at the load of one search per node per SearchEvery: what
	// each node wrote per search of the phase, times the searches per
	// second of the whole network at that load.
	bytes1, links1, answers1 := obs.bytesSnapshot(), obs.linkSearches(), obs.answerSnapshot()
	perSecond := float64(len(nodes)) / cfg.SearchEvery.Seconds() / float64(max(1, len(plan)))
	load, loadAnswers := make([]float64, len(bytes1)), make([]float64, len(bytes1))
	for i := range bytes1 {
		load[i] = float64(bytes1[i]-bytes0[i]) * perSecond
		loadAnswers[i] = float64(answers1[i]-answers0[i]) * perSecond
	}
	rep.Search.LoadAnswerBytesPerNode = summarize(loadAnswers)
	rep.Search.LoadSearchesPerSecond = float64(len(nodes)) / cfg.SearchEvery.Seconds()
	rep.Search.LoadBytesPerNode = summarize(load)
	var linkRate []float64
	for k, c := range links1 {
		linkRate = append(linkRate, float64(c-links0[k])*perSecond)
	}
	rep.Search.LoadLinkSearchRate = summarize(linkRate)
	return recs, nil
}

// tunnelRec is one tunnel the workload tried to open.
type tunnelRec struct {
	origin int
	ok     bool
	setup  time.Duration
	relays int
	err    string
}

// runTunnels opens cfg.Tunnels tunnels to the rare file's holder, one at
// a time so that the relays of each can be told by which nodes moved
// tunnel bytes while it came up.
func runTunnels(ctx context.Context, cfg Config, nodes []*node, place placement, obs *observer, rng *mrand.Rand) []tunnelRec {
	holder := place.holders[0][0]
	settle := 20*cfg.Latency + 100*time.Millisecond
	var out []tunnelRec
	for range cfg.Tunnels {
		if ctx.Err() != nil {
			break
		}
		o := rng.IntN(len(nodes))
		for o == holder {
			o = rng.IntN(len(nodes))
		}
		before := obs.dataSnapshot()
		tctx, cancel := context.WithTimeout(ctx, cfg.TunnelTimeout)
		t0 := time.Now()
		ts, err := nodes[o].r.OpenTunnels(tctx, place.roots[0], 1)
		rec := tunnelRec{origin: o, setup: time.Since(t0)}
		cancel()
		if err != nil {
			rec.err = err.Error()
			if errors.Is(err, tunnels.ErrNoTunnel) {
				rec.err = "no tunnel"
			}
		} else {
			rec.ok = true
			after := obs.dataSnapshot()
			for i := range after {
				if after[i] != before[i] && i != o && i != holder {
					rec.relays++
				}
			}
			for _, t := range ts {
				t.Close()
			}
		}
		out = append(out, rec)
		time.Sleep(settle)
	}
	return out
}

func sumSetup(ts []tunnelRec) float64 {
	var s time.Duration
	for _, t := range ts {
		s += t.setup
	}
	return s.Seconds()
}

// lockedSource makes a math/rand/v2 Source safe for the router's
// concurrent goroutines.
type lockedSource struct {
	mu  sync.Mutex
	src mrand.Source
}

func (l *lockedSource) Uint64() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.src.Uint64()
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
