package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	bolt "go.etcd.io/bbolt"
	"io"
	"kith/internal/store"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/node/api"
	"kith/share"
	"kith/tunnels"
)

// maxDepth makes every router depth tunnels.MaxDepth, never decremented,
// so searches and tunnel requests reach the far end of a chain every time.
type maxDepth struct{}

func (maxDepth) Uint64() uint64 { return 0 }

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
// through tunnels only; friends never offer it directly. Relays B, C and D
// record every byte their routers move, and none of them sees the file's
// content, its root or its name, nor the same tunnel id on two links.
func TestTunnelSearchAndAnonymousDownload(t *testing.T) {
	const size = 8 << 20
	taps := make([]*relayTap, 5)
	nodes := tunnelNet(t, []string{"a", "b", "c", "d", "e"}, [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 4}},
		func(i int, c *Config) {
			if i >= 1 && i <= 3 {
				taps[i] = newRelayTap()
				c.TunnelTap = taps[i].tap()
			}
		})
	a, d, e := nodes[0], nodes[3], nodes[4]
	dir := filepath.Join(t.TempDir(), "anon")
	src := filepath.Join(dir, "Secret Garden.mkv")
	tree := writeRandomFile(t, src, size, 7)
	shareDir(t, e, dir, share.ShareFlags{Anonymous: true})

	// Search through the API, as `kith search` does.
	c := api.NewClient(a.cfg.Home)
	var hits []api.SearchHit
	err := c.Search(context.Background(), "secret gard", 4*time.Second, func(h api.SearchHit) error {
		hits = append(hits, h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].Name != "Secret Garden.mkv" || hits[0].Size != size || hits[0].Sources != 1 {
		t.Fatalf("API search: %+v", hits)
	}
	if err := c.Search(context.Background(), "  ", 0, func(api.SearchHit) error { return nil }); !errors.Is(err, ErrBadRequest) {
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
	if _, err := c.AddDownload(ctx, api.GetRequest{Link: hits[0].Link, Anonymous: true}); err != nil {
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
	if !isAnonymous(a, tree.Root) {
		t.Error("anonymous mark lost")
	}
	t.Logf("sources: %+v", info.Sources)

	content, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	checkRelaysLearnedNothing(t, nodes, taps, content, tree.Root, "Secret Garden.mkv")
}

// checkRelaysLearnedNothing checks what the relays of a chain recorded in
// taps (nil for the ends) after a tunnelled download of content with root
// and name: no 64-byte window of the content, not the root nor the name,
// the file's bytes did pass through every relay, and no tunnel id was used
// on two links.
func checkRelaysLearnedNothing(t *testing.T, nodes []*Node, taps []*relayTap, content []byte, root [32]byte, name string) {
	t.Helper()
	windows := contentWindows(content)
	rootHex := []byte(hex.EncodeToString(root[:]))
	for i, tp := range taps {
		if tp == nil {
			continue
		}
		relay := nodes[i].Name()
		seen := tp.all()
		for _, b := range seen {
			if bytes.Contains(b, root[:]) || bytes.Contains(b, rootHex) {
				t.Errorf("relay %s saw the root", relay)
			}
			if bytes.Contains(b, []byte(name)) {
				t.Errorf("relay %s saw the file's name", relay)
			}
			if off, ok := windows.find(b); ok {
				t.Errorf("relay %s saw a 64-byte window of the content at offset %d of what it moved", relay, off)
			}
		}
		// The file flows from the holder (right) to the downloader (left),
		// so a relay that forwarded it carried at least its size that way.
		toLeft, toRight, ctrl := tp.counts()
		t.Logf("relay %s forwarded %d bytes to the left, %d to the right, %d control bytes", relay, toLeft, toRight, ctrl)
		if toLeft < len(content) || toRight == 0 || ctrl == 0 {
			t.Errorf("relay %s forwarded only %d bytes to the left (file of %d), %d to the right, %d control bytes: the checks above prove nothing",
				relay, toLeft, len(content), toRight, ctrl)
		}
	}

	// Every link is seen from a tapped relay: the one on its right, and
	// the last link from the relay on its left.
	ids := map[tunnels.TunnelID]string{}
	requests := 0
	for i := 1; i < len(nodes); i++ {
		link := nodes[i-1].Name() + "-" + nodes[i].Name()
		var got []tunnels.TunnelID
		switch {
		case taps[i] != nil:
			got = taps[i].tunnelRequests(t, nodes[i-1].ID(), true)
		case taps[i-1] != nil:
			got = taps[i-1].tunnelRequests(t, nodes[i].ID(), false)
		default:
			t.Fatalf("link %s has no tapped end", link)
		}
		if len(got) == 0 {
			t.Errorf("no tunnel request seen on link %s", link)
		}
		for _, id := range got {
			if other, ok := ids[id]; ok {
				t.Errorf("tunnel id %x seen on link %s and on link %s", id, other, link)
			}
			ids[id] = link
			requests++
		}
	}
	t.Logf("%d tunnel requests on %d links, all with different ids", requests, len(nodes)-1)
}

// relayTap records every byte a router moved: control bytes by friend and
// direction, and relayed tunnel data by direction.
type relayTap struct {
	mu      sync.Mutex
	control map[string][]byte // peer ID + "in" or "out"
	data    [2][]byte         // tunnels.DirAToB (to the right), tunnels.DirBToA
}

func newRelayTap() *relayTap { return &relayTap{control: make(map[string][]byte)} }

func controlKey(p peer.ID, in bool) string {
	if in {
		return string(p) + "in"
	}
	return string(p) + "out"
}

func (r *relayTap) tap() *tunnels.Tap {
	return &tunnels.Tap{
		Control: func(p peer.ID, in bool, b []byte) {
			r.mu.Lock()
			k := controlKey(p, in)
			r.control[k] = append(r.control[k], b...)
			r.mu.Unlock()
		},
		Data: func(dir int, b []byte) {
			r.mu.Lock()
			r.data[dir] = append(r.data[dir], b...)
			r.mu.Unlock()
		},
	}
}

// all returns what was recorded, one slice per stream direction. The
// slices are the recorder's own: call it once the router is idle.
func (r *relayTap) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := [][]byte{r.data[0], r.data[1]}
	for _, b := range r.control {
		out = append(out, b)
	}
	return out
}

// counts returns the data bytes relayed to the left and to the right, and
// the control bytes moved.
func (r *relayTap) counts() (toLeft, toRight, control int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.control {
		control += len(b)
	}
	return len(r.data[tunnels.DirBToA]), len(r.data[tunnels.DirAToB]), control
}

// tunnelRequests decodes the control bytes moved with p in one direction
// and returns the ids of the TunnelRequests among them.
func (r *relayTap) tunnelRequests(t *testing.T, p peer.ID, in bool) []tunnels.TunnelID {
	t.Helper()
	r.mu.Lock()
	b := bytes.Clone(r.control[controlKey(p, in)])
	r.mu.Unlock()
	mr := tunnels.NewMessageReader(bytes.NewReader(b))
	var ids []tunnels.TunnelID
	for {
		m, err := mr.Read()
		if errors.Is(err, tunnels.ErrUnknownMessage) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return ids
		}
		if err != nil {
			t.Fatalf("decoding control bytes recorded with %s: %v", p.ShortString(), err)
		}
		if req, ok := m.(*tunnels.TunnelRequest); ok {
			ids = append(ids, req.ID)
		}
	}
}

// windowSet finds 64-byte windows of content in what a relay saw: it
// indexes every 64-byte window at multiples of 64, so any copy of 127 or
// more contiguous content bytes is found. (The tunnels package's tests
// have the same; test files of two packages cannot share it.)
type windowSet struct {
	content []byte
	at      map[uint64][]int
}

func contentWindows(content []byte) *windowSet {
	ws := &windowSet{content: content, at: make(map[uint64][]int, len(content)/64)}
	for off := 0; off+64 <= len(content); off += 64 {
		k := binary.LittleEndian.Uint64(content[off:])
		ws.at[k] = append(ws.at[k], off)
	}
	return ws
}

// find returns the offset in b of the first window of content it holds.
func (ws *windowSet) find(b []byte) (int, bool) {
	for i := 0; i+64 <= len(b); i++ {
		for _, off := range ws.at[binary.LittleEndian.Uint64(b[i:])] {
			if bytes.Equal(b[i:i+64], ws.content[off:off+64]) {
				return i, true
			}
		}
	}
	return 0, false
}

func closeAll(srcs []*share.Source) {
	for _, s := range srcs {
		if s.Close != nil {
			s.Close()
		}
	}
}

// isAnonymous reports whether n's download of root is marked
// tunnels-only.
func isAnonymous(n *Node, root [32]byte) bool {
	info, _ := n.Downloads().Info(root)
	return info.Anonymous
}

// TestAnonymousMarkSurvivesRestart: a download asked for with --anonymous
// stays tunnels-only after a restart; cancelling it drops the mark, and
// asking again without it leaves it off.
func TestAnonymousMarkSurvivesRestart(t *testing.T) {
	n, home := testNode(t, "solo")
	link := share.Link{Root: [32]byte{1, 2, 3}, Name: "x.bin", Size: 1 << 20}
	if _, err := n.AddDownload(link, "", true); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n = startHome(t, home)
	if !isAnonymous(n, link.Root) {
		t.Fatal("anonymous mark lost across a restart")
	}
	if err := n.Downloads().Cancel(link.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddDownload(link, "", false); err != nil {
		t.Fatal(err)
	}
	if isAnonymous(n, link.Root) {
		t.Fatal("anonymous mark kept for a download asked for without it")
	}
}

// TestAnonymousMarkMovedFromNodeBucket: a home whose database the node
// wrote before the mark moved into share's download records (the roots
// in node.anonymous_downloads) keeps its anonymous downloads tunnels-only.
func TestAnonymousMarkMovedFromNodeBucket(t *testing.T) {
	n, home := testNode(t, "solo")
	link := share.Link{Root: [32]byte{4, 5, 6}, Name: "y.bin", Size: 1 << 20}
	if _, err := n.AddDownload(link, "", false); err != nil {
		t.Fatal(err)
	}
	n.Close()
	db, err := store.Open(filepath.Join(home, DBFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("node.anonymous_downloads"))
		if err != nil {
			return err
		}
		return b.Put(link.Root[:], []byte{1})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	n = startHome(t, home)
	if !isAnonymous(n, link.Root) {
		t.Fatal("the mark of the old bucket was not moved")
	}
}

// TestTunnelRingSurvivesRelayLoss: A reaches E along two disjoint paths,
// A-B-E and A-C-D-E. An anonymous download uses a tunnel on each at once;
// B is stopped mid-download and the download finishes over the other path.
func TestTunnelRingSurvivesRelayLoss(t *testing.T) {
	const size = 32 << 20
	nodes := tunnelNet(t, []string{"a", "b", "c", "d", "e"}, [][2]int{{0, 1}, {1, 4}, {0, 2}, {2, 3}, {3, 4}},
		func(i int, c *Config) {
			if i == 0 {
				// Slow enough to stop a relay mid-download, also when
				// the second tunnel is slow to open on a loaded machine.
				c.MaxDownload = 4 << 20
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
	waitFor(t, 40*time.Second, "two tunnel sources at once, and some bytes", func() bool {
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

// firstWrites records the size of each Write and never answers.
type firstWrites struct {
	sizes  chan int
	closed chan struct{}
	once   sync.Once
}

func (f *firstWrites) Write(p []byte) (int, error) {
	f.sizes <- len(p)
	return len(p), nil
}

func (f *firstWrites) Read([]byte) (int, error) {
	<-f.closed
	return 0, io.EOF
}

func (f *firstWrites) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// TestFirstRequestsFitEarlyData: a tunnel source's first requests, Have
// and the last group at the largest size a file may have, go in one write
// small enough to ride in the tunnel's handshake (tunnels.MaxEarlyData).
func TestFirstRequestsFitEarlyData(t *testing.T) {
	rw := &firstWrites{sizes: make(chan int, 4), closed: make(chan struct{})}
	p := share.NewPeer(rw)
	defer p.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.HaveAndLast(ctx, [32]byte{0xff, 0xff}, share.MaxFileSize)
	}()
	var n int
	select {
	case n = <-rw.sizes:
	case <-time.After(5 * time.Second):
		t.Fatal("no write")
	}
	cancel()
	<-done
	if len(rw.sizes) != 0 {
		t.Fatalf("the requests took %d writes", 1+len(rw.sizes))
	}
	if n > tunnels.MaxEarlyData {
		t.Fatalf("the first requests are %d bytes, over MaxEarlyData (%d)", n, tunnels.MaxEarlyData)
	}
	t.Logf("Have and the last group's request: %d bytes in one write", n)
}
