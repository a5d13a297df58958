package node

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"kith/share"
	"kith/tunnels"
)

// maxDepth makes every router depth tunnels.MaxDepth, never decremented,
// so searches and tunnel requests reach the far end of a chain every time.
type maxDepth struct{}

func (maxDepth) Uint64() uint64 { return 0 }

// tunnelChain starts nodes befriended in a chain with fixed depths and
// waits until every router link is up.
func tunnelChain(t *testing.T, names ...string) []*Node {
	t.Helper()
	var edges [][2]int
	for i := 0; i+1 < len(names); i++ {
		edges = append(edges, [2]int{i, i + 1})
	}
	return tunnelNet(t, names, edges, nil)
}

// tunnelNet starts nodes befriended along edges with fixed depths and waits
// until every router link is up. The first node has the API on; adjust may
// change a node's config.
func tunnelNet(t testing.TB, names []string, edges [][2]int, adjust func(i int, c *Config)) []*Node {
	t.Helper()
	nodes := make([]*Node, len(names))
	for i, name := range names {
		home := filepath.Join(t.TempDir(), name)
		if _, err := Init(home, name); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(home)
		cfg.NoAPI = i != 0 // the first node is driven through its API
		cfg.TunnelRand = maxDepth{}
		if adjust != nil {
			adjust(i, &cfg)
		}
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	for _, e := range edges {
		befriend(t, nodes[e[0]], nodes[e[1]])
	}
	for _, e := range edges {
		a, b := nodes[e[0]], nodes[e[1]]
		waitFor(t, 20*time.Second, "router link "+a.Name()+"-"+b.Name(), func() bool {
			return slices.Contains(a.Router().Links(), b.ID()) && slices.Contains(b.Router().Links(), a.ID())
		})
	}
	return nodes
}

// TestTunnelSearchAndAnonymousDownload: on a chain A-B-C-D-E, E shares a
// file anonymously (not browsable); A finds it by search and downloads it
// through tunnels only; friends never offer it directly.
func TestTunnelSearchAndAnonymousDownload(t *testing.T) {
	const size = 8 << 20
	nodes := tunnelChain(t, "a", "b", "c", "d", "e")
	a, d, e := nodes[0], nodes[3], nodes[4]
	dir := filepath.Join(t.TempDir(), "anon")
	src := filepath.Join(dir, "Secret Garden.mkv")
	tree := writeRandomFile(t, src, size, 7)
	shareDir(t, e, dir, share.ShareFlags{Anonymous: true})

	// Search through the API, as `kith search` does.
	c := NewClient(a.cfg.Home)
	var hits []SearchHit
	err := c.Search(context.Background(), "secret gard", 2*time.Second, func(h SearchHit) error {
		hits = append(hits, h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].Name != "Secret Garden.mkv" || hits[0].Size != size || hits[0].Sources != 1 {
		t.Fatalf("API search: %+v", hits)
	}
	if err := c.Search(context.Background(), "  ", 0, func(SearchHit) error { return nil }); !errors.Is(err, ErrBadRequest) {
		t.Errorf("empty search: %v", err)
	}

	// Search by keywords, then by root.
	for _, q := range []tunnels.Query{{Keywords: "secret gard"}, {RootHash: tunnels.SearchHash(tree.Root)}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ch, err := a.Search(ctx, q)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var got []tunnels.Result
		for r := range ch {
			got = append(got, r)
			cancel()
		}
		cancel()
		if len(got) == 0 || got[0].Root != tree.Root || got[0].Name != "Secret Garden.mkv" || got[0].Size != size {
			t.Fatalf("search %+v: got %+v", q, got)
		}
	}

	// A share added later is answered too (the holder's map follows scans).
	dir2 := filepath.Join(t.TempDir(), "anon2")
	tree2 := writeRandomFile(t, filepath.Join(dir2, "later.bin"), 1<<20, 8)
	shareDir(t, e, dir2, share.ShareFlags{Anonymous: true})
	{
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ch, err := a.Search(ctx, tunnels.Query{RootHash: tunnels.SearchHash(tree2.Root)})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var got []tunnels.Result
		for r := range ch {
			got = append(got, r)
			cancel()
		}
		cancel()
		if len(got) == 0 || got[0].Root != tree2.Root {
			t.Fatalf("search for a file shared later: %+v", got)
		}
		ts, err := a.Router().OpenTunnels(t.Context(), tree2.Root, 1)
		if err != nil {
			t.Fatalf("tunnel to a file shared later: %v", err)
		}
		ts[0].Close()
	}

	// Friend-only lookups find nothing: E's file is not browsable, and A
	// is not E's friend.
	for _, n := range []*Node{a, d} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srcs := friendFinder{n.share}.friendSources(ctx, tree.Root, func(string) bool { return false })
		cancel()
		if len(srcs) != 0 {
			closeAll(srcs)
			t.Fatalf("%s: friends offered an anonymous-only file: %d source(s)", n.Name(), len(srcs))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.AddDownload(ctx, GetRequest{Link: hits[0].Link, Anonymous: true}); err != nil {
		t.Fatal(err)
	}
	info := waitDownload(t, a, tree.Root, 2*time.Minute)
	if info.State != share.StateDone {
		t.Fatalf("download failed: %+v", info)
	}
	for _, s := range info.Sources {
		if len(s.Name) < 6 || s.Name[:6] != "tunnel" {
			t.Errorf("anonymous download used a non-tunnel source: %+v", s)
		}
	}
	got, err := share.HashFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != tree.Root {
		t.Fatal("downloaded file does not match its root")
	}
	if !sameFile(t, src, info.Path) {
		t.Fatal("downloaded file differs")
	}
	if !a.share.isAnonymous(tree.Root) {
		t.Error("anonymous mark lost")
	}
	t.Logf("sources: %+v", info.Sources)
}

func closeAll(srcs []*share.Source) {
	for _, s := range srcs {
		if s.Close != nil {
			s.Close()
		}
	}
}

// TestAnonymousMarkSurvivesRestart: a download asked for with --anonymous
// stays tunnels-only after a restart; asking again without it clears it.
func TestAnonymousMarkSurvivesRestart(t *testing.T) {
	n, home := testNode(t, "solo")
	link := share.Link{Root: [32]byte{1, 2, 3}, Name: "x.bin", Size: 1 << 20}
	if _, err := n.AddDownload(link, "", true); err != nil {
		t.Fatal(err)
	}
	if err := n.Downloads().Cancel(link.Root); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n = startHome(t, home)
	if !n.share.isAnonymous(link.Root) {
		t.Fatal("anonymous mark lost across a restart")
	}
	if _, err := n.AddDownload(link, "", false); err != nil {
		t.Fatal(err)
	}
	if n.share.isAnonymous(link.Root) {
		t.Fatal("anonymous mark kept for a download asked for without it")
	}
}

// TestTunnelRingSurvivesRelayLoss: A reaches E along two disjoint paths,
// A-B-E and A-C-D-E. An anonymous download uses a tunnel on each at once;
// B is stopped mid-download and the download finishes over the other path.
func TestTunnelRingSurvivesRelayLoss(t *testing.T) {
	const size = 24 << 20
	nodes := tunnelNet(t, []string{"a", "b", "c", "d", "e"}, [][2]int{{0, 1}, {1, 4}, {0, 2}, {2, 3}, {3, 4}},
		func(i int, c *Config) {
			if i == 0 {
				c.MaxDownload = 6 << 20 // slow enough to stop a relay mid-download
			}
		})
	a, b, e := nodes[0], nodes[1], nodes[4]
	dir := filepath.Join(t.TempDir(), "anon")
	src := filepath.Join(dir, "ring.bin")
	tree := writeRandomFile(t, src, size, 9)
	shareDir(t, e, dir, share.ShareFlags{Anonymous: true})

	link := share.Link{Root: tree.Root, Name: "ring.bin", Size: size}
	if _, err := a.AddDownload(link, "", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "two tunnel sources at once, and some bytes", func() bool {
		info, _ := a.Downloads().Info(tree.Root)
		busy := 0
		for _, s := range info.Sources {
			if s.Bytes > 0 && s.Dropped == "" {
				busy++
			}
		}
		return busy >= 2 && info.Done >= 4<<20
	})
	info, _ := a.Downloads().Info(tree.Root)
	if info.State == share.StateDone {
		t.Fatal("download finished before the relay could be stopped: the test proves nothing")
	}
	t.Logf("stopping relay b at %s of %s", share.FormatSize(info.Done), share.FormatSize(size))
	b.Close()
	info = waitDownload(t, a, tree.Root, 2*time.Minute)
	if info.State != share.StateDone {
		t.Fatalf("download failed after losing a relay: %+v", info)
	}
	if !sameFile(t, src, info.Path) {
		t.Fatal("downloaded file differs")
	}
	t.Logf("sources: %+v", info.Sources)
}
