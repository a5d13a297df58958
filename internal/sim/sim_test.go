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
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"kith/chat"
	"kith/f2f"
	"kith/tunnels"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// constSource returns the same value for every draw: uniform() is always
// u. With u = 0 every relay keeps the depth: searches flood everything.
type constSource struct{ u float64 }

func (c constSource) Uint64() uint64 { return uint64(c.u*(1<<53)) << 11 }

// threeHops returns the constSource with which an origin starts at depth
// 3 and every hop decrements, so every search carries the same depths
// whatever order copies arrive in: the middle of the range of u that does
// so under the router's current depth rule. (Depth 0 goes on too, by the
// router's fixed choice of links, so on a ring a search still reaches
// every node.)
func threeHops(t *testing.T) constSource {
	t.Helper()
	lo, hi := -1.0, -1.0
	for i := range 10000 {
		c := constSource{float64(i) / 10000}
		ok := tunnels.OriginDepth(c) == 3
		for d := 1; d <= 3 && ok; d++ {
			next, _ := tunnels.ForwardDepth(c, d)
			ok = next == d-1
		}
		if ok {
			if lo < 0 {
				lo = c.u
			}
			hi = c.u
		}
	}
	if lo < 0 {
		t.Fatal("no constant draw makes an origin start at depth 3 and every hop decrement")
	}
	return constSource{(lo + hi) / 2}
}

// testConfig is a small, fast run.
func testConfig(n, degree int, graph string) Config {
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Degree, cfg.Graph = n, degree, graph
	cfg.Latency = 5 * time.Millisecond
	cfg.Bandwidth = 0
	cfg.Searches = 12
	cfg.SearchRate = 5
	cfg.SearchWindow = 2500 * time.Millisecond
	cfg.Tunnels = 3
	cfg.TunnelTimeout = 2 * time.Second
	cfg.HolderDelay = 100 * time.Millisecond
	cfg.Probers = 0 // on in the test that checks them
	cfg.ProbeWindow = 2 * time.Second
	cfg.Files = 4
	cfg.Seed = 42
	cfg.Progress = nil
	cfg.Lobby = false // on in the tests that check lobbies
	cfg.LobbyMessages = 10
	cfg.LobbyMessageRate = 10
	cfg.LobbyWait = 5 * time.Second
	// One join at a time, so that the tests' "every join everywhere"
	// holds: a JOIN that crosses an earlier member's own join reaches it
	// only where that member's links were subscribed already, and since
	// history replies carry text only (27a35d8) nothing replays it (the
	// member hears of the later one from its keep-alives instead).
	cfg.LobbyJoinWindow = 1
	return cfg
}

// checkLobby checks the invariants of a lobby phase in which every member
// must get every message: all delivered, no link carrying a message twice
// the same way, nothing dropped, and each message costing exactly a flood
// (every member sends it once to each member friend but its sender).
func checkLobby(t *testing.T, l *LobbyReport, members, messages int) {
	t.Helper()
	if l == nil || l.Skipped != "" {
		t.Fatalf("lobby phase did not run: %+v", l)
	}
	t.Logf("lobby: %d members, %d links, delivered %.3f, reach all %+v, frames/msg %+v (flood %d), %d redundant, drops %v, join %.1fs",
		l.Members, l.MemberLinks, l.Delivered, l.ReachAllMs, l.MessagesPerMessage, l.FloodMessages, l.RedundantDrops, l.Dropped, l.JoinSeconds)
	if l.Members != members || l.NotJoined != 0 || l.Messages != messages || len(l.SendErrors) > 0 {
		t.Errorf("%d members (%d not joined), %d messages, send errors %v; want %d members, %d messages",
			l.Members, l.NotJoined, l.Messages, l.SendErrors, members, messages)
	}
	if l.Delivered != 1 || l.Complete != 1 || l.ExpectedPairs != messages*(members-1) || l.JoinDelivered != 1 {
		t.Errorf("delivered %.3f of %d pairs (%.3f of messages complete), joins %.3f: want every message and join everywhere",
			l.Delivered, l.ExpectedPairs, l.Complete, l.JoinDelivered)
	}
	if l.SameDirectionDuplicates != 0 || l.TextDuplicates != 0 {
		t.Errorf("%d lobby messages crossed a link twice the same way", l.SameDirectionDuplicates)
	}
	if l.MessagesPerMessage.N != messages || l.MessagesPerMessage.Mean != float64(l.FloodMessages) || l.MessagesPerMessage.Max != float64(l.FloodMessages) {
		t.Errorf("frames per message %+v, want exactly the flood's %d", l.MessagesPerMessage, l.FloodMessages)
	}
	if len(l.Dropped) > 0 || l.LinksReset != 0 || l.FramesUnread != 0 {
		t.Errorf("dropped %v, %d links reset, %d frames unread", l.Dropped, l.LinksReset, l.FramesUnread)
	}
	if l.ReachAllMs.N != messages || l.ReachAllMs.P50 <= 0 || l.DeliveryMs.P50 > l.ReachAllMs.P95 {
		t.Errorf("reach all %+v, delivery %+v", l.ReachAllMs, l.DeliveryMs)
	}
}

// TestSimSmall runs a small simulation with full-depth searches (every
// draw keeps the depth), so every search must reach every node, and
// checks the report's invariants and files.
func TestSimSmall(t *testing.T) {
	cfg := testConfig(30, 4, GraphSmallWorld)
	cfg.Rand = func(int) mrand.Source { return constSource{0} }
	cfg.Progress = testWriter{t}
	cfg.Lobby = true
	cfg.Probers = 3
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
	// A node sends a search on to at most all its friends but one (those
	// with more than tunnels.SearchFanout others to SearchFanout of them,
	// or, walking, to one): a search costs at most a flood, the sum of
	// degrees minus (n-1), plus the results, and at least a message to
	// every node but the origin.
	flood := float64(2*rep.Config.Edges - (cfg.Nodes - 1))
	if s.MessagesPerSearch.P50 < float64(cfg.Nodes-1) || s.MessagesPerSearch.Max > flood+20 {
		t.Errorf("messages per search %+v, want at least %d and at most the flood's %.0f plus a few results", s.MessagesPerSearch, cfg.Nodes-1, flood)
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
	checkLobby(t, rep.Lobby, cfg.Nodes, cfg.LobbyMessages)
	// Probing friends: a depth-0 probe is answered whether the neighbour
	// holds the file or a node behind it does (always the former, nearly
	// always the latter: depth 0 goes on to each friend with probability
	// one half and to at least one), so the depth rule is about as good
	// as the base rate.
	if pb := p.Probing; pb == nil || pb.Probers != cfg.Probers || len(pb.Rules) == 0 {
		t.Errorf("probing %+v", pb)
	} else {
		for _, r := range pb.Rules {
			t.Logf("probing %s %s %s: precision %.2f base %.2f recall %.2f", r.Probe, r.Population, r.Rule, r.Precision, r.BaseRate, r.Recall)
			if r.Rule == "depth 0 answered" && (r.Recall != 1 || r.Precision > r.BaseRate+0.2 || r.Cases == 0) {
				t.Errorf("%s probes, %s: depth-0 rule %+v, want every own file's probe answered and precision within 0.2 of the base rate",
					r.Probe, r.Population, r)
			}
		}
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !bytes.Contains(table.Bytes(), []byte("rare file found")) ||
		!bytes.Contains(table.Bytes(), []byte("probing, search, next hop")) ||
		!bytes.Contains(table.Bytes(), []byte("time to reach all subscribers")) {
		t.Errorf("table: %v\n%s", err, table.String())
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"report.json", "searches.csv", "tunnels.csv", "reach.csv", "reach.svg", "latency.svg", "messages.svg", "lobby.csv", "lobby.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSimLobbyPart runs the lobby phase alone with half of a scale-free
// graph in the lobby: the members nearest the creator, whose traffic
// must stay on the links between them.
func TestSimLobbyPart(t *testing.T) {
	cfg := testConfig(40, 4, GraphScaleFree)
	cfg.Searches, cfg.Tunnels = 0, 0
	cfg.Lobby, cfg.LobbyMembers = true, 0.5
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkLobby(t, rep.Lobby, 20, cfg.LobbyMessages)
	if rep.Search.Searches != 0 || rep.Tunnels.Tried != 0 {
		t.Errorf("searches %d, tunnels %d; want none", rep.Search.Searches, rep.Tunnels.Tried)
	}
}

// TestSimLobbyEstablished starts the lobby phase in a lobby that exists:
// all but three members start in it without a JOIN, the three join it
// live. Every message still reaches every member once, each costing
// exactly a flood; the three JOINs reach every earlier member and are
// the only JOINs; and the members start from the lobby's size, not 1.
func TestSimLobbyEstablished(t *testing.T) {
	const members, joiners = 40, 3
	cfg := testConfig(members, 4, GraphSmallWorld)
	cfg.Searches, cfg.Tunnels = 0, 0
	cfg.Lobby, cfg.LobbyEstablished, cfg.LobbyJoiners = true, true, joiners
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Lobby
	checkLobby(t, l, members, cfg.LobbyMessages)
	if l.Established != members-joiners || l.Joins != joiners || l.MessagesPerJoin.N != joiners {
		t.Errorf("%d established, %d joins, %d JOINs seen; want %d, %d, %d", l.Established, l.Joins, l.MessagesPerJoin.N, members-joiners, joiners, joiners)
	}
	if l.Presence.Size.P50 < members-joiners {
		t.Errorf("members' size estimate p50 %.0f, want at least the %d established", l.Presence.Size.P50, members-joiners)
	}
}

// TestSimLobbyOffAndSkipped checks that the lobby phase can be turned
// off and that a lobby of fewer than two members is skipped cleanly.
func TestSimLobbyOffAndSkipped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lobby   bool
		members float64
		want    string
	}{
		{"off", false, 1, "LOBBIES  off"},
		{"one member", true, 0.05, "LOBBIES  skipped: 1 member(s)"},
		{"none", true, 0, "LOBBIES  skipped: 0 member(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(10, 2, GraphRing)
			cfg.Searches, cfg.Tunnels = 0, 0
			cfg.Lobby, cfg.LobbyMembers = tc.lobby, tc.members
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if (rep.Lobby == nil) == tc.lobby {
				t.Errorf("lobby report %+v with the phase on=%v", rep.Lobby, tc.lobby)
			}
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil || !bytes.Contains(table.Bytes(), []byte(tc.want)) {
				t.Errorf("table lacks %q: %v\n%s", tc.want, err, table.String())
			}
			if err := rep.WriteFiles(t.TempDir()); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestLobbyMembersAndPlan checks the lobby workload without a network:
// members are a breadth-first prefix from the creator, each with a
// friend that joined before it, and the plan never has an author say
// more than its per-author tokens allow at a relay.
func TestLobbyMembersAndPlan(t *testing.T) {
	g, err := NewGraph(GraphSmallWorld, 100, 6, DefaultRewire, 7)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(7, 2))
	for _, count := range []int{2, 17, 100} {
		ms := lobbyMembers(g, 5, count, rng)
		if len(ms) != count || ms[0] != 5 {
			t.Fatalf("%d members from node 5: %v", count, ms)
		}
		d := g.Distances(5)
		for k, v := range ms[1:] {
			if !slices.ContainsFunc(ms[:k+1], func(u int) bool { return g.IsFriend(u, v) }) {
				t.Errorf("member %d joins before any of its friends", v)
			}
			if d[v] < d[ms[k]] {
				t.Errorf("member %d at distance %d after one at %d", v, d[v], d[ms[k]])
			}
		}
	}
	cfg := testConfig(10, 2, GraphRing)
	cfg.LobbyMessages, cfg.LobbyMessageRate = 60, 20
	plan := planLobbyMessages(cfg, []int{3, 4}, rng)
	if len(plan.authors) != 60 {
		t.Fatalf("planned %d messages", len(plan.authors))
	}
	// Replay each author's bucket as a relay sees it: the JOIN, then
	// every message at its time; it must never run dry.
	for _, a := range []int{3, 4} {
		tokens, last := float64(chat.LobbyAuthorBurst-1), time.Duration(0)
		for k, at := range plan.at {
			if plan.authors[k] != a {
				continue
			}
			tokens = min(chat.LobbyAuthorBurst, tokens+chat.LobbyAuthorRate*(at-last).Seconds()) - 1
			last = at
			if tokens < 0 {
				t.Fatalf("author %d over its rate at message %d (%v)", a, k, at)
			}
		}
	}
	if span := plan.at[len(plan.at)-1]; span < 10*time.Second {
		t.Errorf("60 messages from 2 authors planned in %v: faster than their rate", span)
	}
}

// TestSimRepeatable checks that a seed fixes the graph, the placement
// and the workload.
func TestSimRepeatable(t *testing.T) {
	cfg := testConfig(16, 2, GraphRing)
	three := threeHops(t)
	cfg.Rand = func(int) mrand.Source { return three }
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
// constant depth draw make reach exact (every node: depth 0 is no last
// hop, and a ring node has one link to go on to), and tunnels take the
// shorter way round, so the two runs must agree search by search and
// tunnel by tunnel.
func TestSimMatchesRealHosts(t *testing.T) {
	cfg := testConfig(16, 2, GraphRing)
	three := threeHops(t)
	cfg.Rand = func(int) mrand.Source { return three }
	cfg.Lobby = true
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
	for i, s := range simRep.SearchRows {
		r := realRep.SearchRows[i]
		if s.Origin != r.Origin || s.File != r.File {
			t.Fatalf("search %d: workloads differ: %+v vs %+v", i, s, r)
		}
		if s.Found != r.Found || s.Reached != r.Reached {
			t.Errorf("search %d from node %d for file %d: mocknet found=%v reached %d, real hosts found=%v reached %d",
				i, s.Origin, s.File, s.Found, s.Reached, r.Found, r.Reached)
		}
		if s.Reached != cfg.Nodes-1 || !s.Found {
			t.Errorf("search %d reached %d nodes (found=%v), want all %d and found", i, s.Reached, s.Found, cfg.Nodes-1)
		}
	}
	// Tunnels: the same ones come up, each along one of the two ways
	// round the ring to the rare file's holder (both ways reach it; which
	// answer comes back first is the network's timing).
	holder := placeFiles(cfg, cfg.Nodes, mrand.New(mrand.NewPCG(cfg.Seed, 1))).holders[0][0]
	for i, s := range simRep.TunnelRows {
		r := realRep.TunnelRows[i]
		d := g.Distances(s.Origin)[holder]
		ways := []int{d, cfg.Nodes - d}
		if s.Origin != r.Origin || s.OK != r.OK || !slices.Contains(ways, s.Path) || !slices.Contains(ways, r.Path) {
			t.Errorf("tunnel %d: mocknet %+v, real hosts %+v; the ways round are %v hops", i, s, r, ways)
		}
	}
	// The lobby: every member gets every message on both, each message
	// crossing the ring's links 17 times (every node sends it on, the
	// author both ways), whichever way the two fronts meet.
	checkLobby(t, simRep.Lobby, cfg.Nodes, cfg.LobbyMessages)
	checkLobby(t, realRep.Lobby, cfg.Nodes, cfg.LobbyMessages)
	if simRep.Lobby.FloodMessages != 17 {
		t.Errorf("lobby flood of %d frames on a ring of 16, want 17", simRep.Lobby.FloodMessages)
	}
	for i, s := range simRep.Lobby.Rows {
		if r := realRep.Lobby.Rows[i]; s.Author != r.Author || s.Reached != r.Reached || s.Frames != r.Frames {
			t.Errorf("lobby message %d: mocknet %+v, real hosts %+v", i, s, r)
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
	hosts  []host.Host
	lists  []*allowlist
	leaves []host.Host
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
	f.lists = lists
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

func (f *tcpFabric) AddLeaf(to int) (host.Host, error) {
	key, _, err := crypto.GenerateEd25519Key(crand.Reader)
	if err != nil {
		return nil, err
	}
	al := &allowlist{ids: map[peer.ID]bool{f.hosts[to].ID(): true}}
	h, err := f2f.NewHost(f2f.HostConfig{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Gater: f2f.NewGater(al, nil)})
	if err != nil {
		return nil, err
	}
	f.lists[to].mu.Lock()
	f.lists[to].ids[h.ID()] = true
	f.lists[to].mu.Unlock()
	f.leaves = append(f.leaves, h)
	return h, nil
}

func (f *tcpFabric) ConnectLeaf(ctx context.Context, leaf host.Host, to int) error {
	hb := f.hosts[to]
	return leaf.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()})
}

func (f *tcpFabric) Close() error {
	for _, h := range append(f.hosts, f.leaves...) {
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

// TestSimColludersNameFewOrigins performs the colluders' traceback attack
// on the real router: a quarter of 200 nodes (degree 8, small world) pool
// every copy they see, linked perfectly by search (as a constant request
// id lets them), and accuse the sender of the earliest copy any of them
// got from outside, or do so only when no other copy came close (lead).
// With a flood, the origin's friends all got their first copy from it and
// 25% colluders named the origin of 55-68% of searches; the walk before
// the spread leaves them the origin only when its first hop is theirs:
// at most 40% of searches, at precision at most 0.5.
func TestSimColludersNameFewOrigins(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	cfg := testConfig(200, 8, GraphSmallWorld)
	cfg.Searches, cfg.SearchRate, cfg.Tunnels = 60, 5, 0
	cfg.Latency = 20 * time.Millisecond
	cfg.Colluders = []float64{0.25}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Privacy.Colluders) != 1 {
		t.Fatalf("colluders %+v", rep.Privacy.Colluders)
	}
	c := rep.Privacy.Colluders[0]
	t.Logf("25%% colluders over %d searches: first %.2f at %.2f, lead %.2f at %.2f; reach %.3f",
		c.Searches, c.First.Recall, c.First.Precision, c.Lead.Recall, c.Lead.Precision, rep.Search.Reach.Mean)
	if c.Searches < 30 || rep.Search.Reach.Mean < 0.9 {
		t.Fatalf("%d searches from outside the coalition, reach %.2f: the test proves nothing", c.Searches, rep.Search.Reach.Mean)
	}
	for _, r := range []RuleResult{c.First, c.Lead} {
		if r.Recall > 0.4 || r.Precision > 0.5 {
			t.Errorf("25%% colluders, rule %s: named the origin of %.0f%% of searches at precision %.2f, want at most 40%% at 0.5",
				r.Rule, 100*r.Recall, r.Precision)
		}
	}
}
