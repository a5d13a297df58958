package sim

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"kith/f2f"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// constSource returns the same value for every draw: uniform() is always
// u. With u = 0.5 an origin starts at depth 3 and every hop decrements
// (0.5 is below the keep probability at MaxDepth only), so a search
// reaches exactly the nodes within 3 hops whatever order copies arrive in.
type constSource struct{ u float64 }

func (c constSource) Uint64() uint64 { return uint64(c.u*(1<<53)) << 11 }

// testConfig is a small, fast run.
func testConfig(n, degree int, graph string) Config {
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Degree, cfg.Graph = n, degree, graph
	cfg.Latency = 5 * time.Millisecond
	cfg.Bandwidth = 0
	cfg.Searches = 12
	cfg.SearchRate = 5
	cfg.SearchWindow = 700 * time.Millisecond
	cfg.Tunnels = 3
	cfg.TunnelTimeout = time.Second
	cfg.Files = 4
	cfg.Seed = 42
	cfg.Progress = nil
	return cfg
}

// TestSimSmall runs a small simulation with full-depth searches (every
// draw keeps the depth), so every search must reach every node, and
// checks the report's invariants and files.
func TestSimSmall(t *testing.T) {
	cfg := testConfig(30, 4, GraphSmallWorld)
	cfg.Rand = func(int) mrand.Source { return constSource{0} }
	cfg.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tunnels: %+v dropped %d", rep.TunnelRows, rep.Tunnels.RequestsDropped)
	s := rep.Search
	if s.Searches != cfg.Searches || s.AnyFound != 1 || s.Reach.P50 != 1 || s.Reach.Mean != 1 {
		t.Errorf("full-depth searches: %d searches, found %.2f, reach %+v; want all found, reach 1", s.Searches, s.AnyFound, s.Reach)
	}
	if s.SameDirectionDuplicates != 0 {
		t.Errorf("%d searches crossed a link twice the same way", s.SameDirectionDuplicates)
	}
	// Every node but the origin forwards to all friends but one: the
	// flood costs the sum of degrees minus (n-1), plus the results.
	want := float64(2*rep.Config.Edges - (cfg.Nodes - 1))
	if s.MessagesPerSearch.P50 < want || s.MessagesPerSearch.P50 > want+10 {
		t.Errorf("messages per search %.0f, want %.0f plus a few results", s.MessagesPerSearch.P50, want)
	}
	if s.Hops.N == 0 || s.Hops.Max > float64(cfg.Nodes) || s.FirstResultMs.P50 <= 0 {
		t.Errorf("hops %+v, first result %+v", s.Hops, s.FirstResultMs)
	}
	if rep.Tunnels.Tried != cfg.Tunnels || rep.Tunnels.Success == 0 || rep.Tunnels.PathLength.Mean < 1 {
		t.Errorf("tunnels %+v", rep.Tunnels)
	}
	if rep.Undecoded != 0 || rep.FriendsDisconnected != 0 {
		t.Errorf("%d undecoded writes, %d friends disconnected", rep.Undecoded, rep.FriendsDisconnected)
	}
	p := rep.Privacy
	if p.Observations == 0 || len(p.Colluders) != len(cfg.Colluders) || len(p.Single) < 2 {
		t.Errorf("privacy %+v", p)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !bytes.Contains(table.Bytes(), []byte("rare file found")) {
		t.Errorf("table: %v\n%s", err, table.String())
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"report.json", "searches.csv", "tunnels.csv", "reach.csv", "reach.svg", "latency.svg", "messages.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSimRepeatable checks that a seed fixes the graph, the placement
// and the workload.
func TestSimRepeatable(t *testing.T) {
	cfg := testConfig(16, 2, GraphRing)
	cfg.Rand = func(int) mrand.Source { return constSource{0.5} }
	cfg.Tunnels = 0
	var runs [2]*Report
	for i := range runs {
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = rep
	}
	for i := range runs[0].SearchRows {
		a, b := runs[0].SearchRows[i], runs[1].SearchRows[i]
		if a.Origin != b.Origin || a.File != b.File || a.Found != b.Found || a.Reached != b.Reached {
			t.Errorf("search %d differs: %+v vs %+v", i, a, b)
		}
	}
}

// TestSimMatchesRealHosts runs one scenario twice, on the mocknet and on
// real libp2p hosts over 127.0.0.1 TCP with kith's gater, and checks that
// the same origins find the same files: the simulator runs the real
// router, and the mocknet changes nothing it decides. The ring and the
// constant depth draw make reach exact (every node within 3 hops), so
// the two runs must agree search by search and tunnel by tunnel.
func TestSimMatchesRealHosts(t *testing.T) {
	cfg := testConfig(16, 2, GraphRing)
	cfg.Rand = func(int) mrand.Source { return constSource{0.5} }
	g, err := NewGraph(cfg.Graph, cfg.Nodes, cfg.Degree, 0, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	simRep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fab := newTCPFabric(t, g)
	realRep, err := RunOn(ctx, cfg, g, fab)
	if err != nil {
		t.Fatal(err)
	}
	if len(simRep.SearchRows) != len(realRep.SearchRows) {
		t.Fatalf("%d vs %d searches", len(simRep.SearchRows), len(realRep.SearchRows))
	}
	found := 0
	for i, s := range simRep.SearchRows {
		r := realRep.SearchRows[i]
		if s.Origin != r.Origin || s.File != r.File {
			t.Fatalf("search %d: workloads differ: %+v vs %+v", i, s, r)
		}
		if s.Found != r.Found || s.Reached != r.Reached {
			t.Errorf("search %d from node %d for file %d: mocknet found=%v reached %d, real hosts found=%v reached %d",
				i, s.Origin, s.File, s.Found, s.Reached, r.Found, r.Reached)
		}
		if s.Reached != 6 { // 3 hops each way round the ring
			t.Errorf("search %d reached %d nodes, want 6", i, s.Reached)
		}
		if s.Found {
			found++
		}
	}
	if found == 0 || found == len(simRep.SearchRows) {
		t.Errorf("%d of %d searches found a holder: the scenario should tell near from far", found, len(simRep.SearchRows))
	}
	for i, s := range simRep.TunnelRows {
		r := realRep.TunnelRows[i]
		if s.Origin != r.Origin || s.OK != r.OK || s.Path != r.Path {
			t.Errorf("tunnel %d: mocknet %+v, real hosts %+v", i, s, r)
		}
	}
}

// TestSimSmallWorldAgreesWithRealHosts compares seeded random depths on a
// small world: copies race, so single searches can differ, but the share
// of searches that find the one holder must agree within 0.3 (about 2.5
// standard deviations of the difference of two runs of 30 searches).
func TestSimSmallWorldAgreesWithRealHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	cfg := testConfig(20, 4, GraphSmallWorld)
	cfg.Searches, cfg.TargetShare, cfg.Tunnels = 30, 1, 0
	g, err := NewGraph(cfg.Graph, cfg.Nodes, cfg.Degree, cfg.Rewire, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	simRep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	realRep, err := RunOn(ctx, cfg, g, newTCPFabric(t, g))
	if err != nil {
		t.Fatal(err)
	}
	a, b := simRep.Search.TargetFound, realRep.Search.TargetFound
	t.Logf("found: mocknet %.2f, real hosts %.2f; reach %.2f vs %.2f", a, b, simRep.Search.Reach.Mean, realRep.Search.Reach.Mean)
	if math.Abs(a-b) > 0.3 {
		t.Errorf("mocknet found %.2f, real hosts %.2f", a, b)
	}
}

// tcpFabric is real kith hosts on 127.0.0.1 with the f2f gater, each
// admitting only its friends in the graph.
type tcpFabric struct {
	hosts []host.Host
}

type allowlist struct {
	mu  sync.Mutex
	ids map[peer.ID]bool
}

func (a *allowlist) IsFriend(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[p]
}

func newTCPFabric(t *testing.T, g *Graph) Fabric {
	t.Helper()
	f := &tcpFabric{hosts: make([]host.Host, g.N())}
	lists := make([]*allowlist, g.N())
	for i := range f.hosts {
		key, _, err := crypto.GenerateEd25519Key(crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		lists[i] = &allowlist{ids: make(map[peer.ID]bool)}
		h, err := f2f.NewHost(f2f.HostConfig{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Gater: f2f.NewGater(lists[i], nil)})
		if err != nil {
			t.Fatal(err)
		}
		f.hosts[i] = h
	}
	t.Cleanup(func() { f.Close() })
	for i, adj := range g.Adj {
		for _, j := range adj {
			lists[i].ids[f.hosts[j].ID()] = true
		}
	}
	return f
}

func (f *tcpFabric) Hosts() []host.Host { return f.hosts }

func (f *tcpFabric) Connect(ctx context.Context, a, b int) error {
	hb := f.hosts[b]
	if err := f.hosts[a].Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		return fmt.Errorf("connecting %d to %d: %w", a, b, err)
	}
	return nil
}

func (f *tcpFabric) Close() error {
	for _, h := range f.hosts {
		h.Close()
	}
	return nil
}

// testWriter sends progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}
