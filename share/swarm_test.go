package share

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kith/internal/store"
)

// swarmNet is an owner and downloaders that are all friends of each other:
// each node serves its catalog and its downloads in progress over real TCP
// connections on 127.0.0.1, and each downloader's Finder offers every other
// node that answers Have.
type swarmNet struct {
	t      testing.TB
	nodes  []*swarmNode
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type swarmNode struct {
	i    int
	m    *Manager
	srv  *Server
	dir  string
	sent atomic.Int64 // bytes this node's server wrote to others
	// peers, if set, are the only nodes this node's Finder offers.
	peers []int
	// wrap, if set, wraps the Fetcher of the source node j.
	wrap func(j int, p *Peer) Fetcher
}

// countConn counts the bytes written to a connection.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// newSwarmNet makes an owner sharing a file of size bytes (node 0) and n
// downloaders (nodes 1..n), with swarming on or off.
// The owner's uploads are limited to ownerRate bytes a second (0: none),
// as a home uplink limits them.
func newSwarmNet(t testing.TB, n int, noSwarm bool, tuning Tuning, ownerRate int64) *swarmNet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sn := &swarmNet{t: t, ctx: ctx, cancel: cancel}
	t.Cleanup(sn.close)
	owner := newMemCatalog()
	var opts []ServerOption
	if ownerRate > 0 {
		opts = append(opts, WithUploadLimiter(NewRateLimiter(ownerRate)))
	}
	sn.nodes = append(sn.nodes, &swarmNode{i: 0, srv: NewServer(owner, opts...)})
	for i := 1; i <= n; i++ {
		node := &swarmNode{i: i, srv: NewServer(newMemCatalog()), dir: t.TempDir()}
		db, err := store.Open(filepath.Join(t.TempDir(), "kith.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		m, err := NewManager(ManagerConfig{DB: db, Dir: node.dir, Finder: swarmFinder{sn, node}, Tuning: tuning, NoSwarm: noSwarm})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		node.m = m
		node.srv.SetPartials(m)
		sn.nodes = append(sn.nodes, node)
	}
	return sn
}

// share makes the owner share a file of size bytes.
func (sn *swarmNet) share(size int64) ([]byte, Link) {
	cat := sn.nodes[0].srv.catalog.(*memCatalog)
	data, sf := cat.add(sn.t, sn.t.TempDir(), "video.mkv", size, true, false)
	return data, Link{Root: sf.Tree.Root, Name: "video.mkv", Size: size}
}

func (sn *swarmNet) close() {
	sn.cancel()
	for _, n := range sn.nodes {
		if n.m != nil {
			n.m.Close()
		}
	}
	sn.wg.Wait()
}

// serve connects to node j's server, as a friend.
func (sn *swarmNet) serve(j int) net.Conn {
	client, server := tcpPair(sn.t)
	sn.wg.Add(1)
	go func() {
		defer sn.wg.Done()
		sn.nodes[j].srv.Serve(sn.ctx, countConn{server, &sn.nodes[j].sent}, ScopeFriend)
	}()
	return client
}

// swarmFinder offers every other node of the net that answers Have.
type swarmFinder struct {
	sn   *swarmNet
	self *swarmNode
}

func (f swarmFinder) FindSources(ctx context.Context, req FindRequest) []*Source {
	root, skip := req.Root, req.Skip
	var out []*Source
	peers := f.self.peers
	if peers == nil {
		for j := range f.sn.nodes {
			peers = append(peers, j)
		}
	}
	for _, j := range peers {
		key := "node:" + strconv.Itoa(j)
		if j == f.self.i || skip(key) || f.sn.ctx.Err() != nil {
			continue
		}
		p := NewPeer(f.sn.serve(j))
		have, err := p.Have(ctx, root)
		if err != nil {
			p.Close()
			continue
		}
		var fetcher Fetcher = p
		if f.self.wrap != nil {
			fetcher = f.self.wrap(j, p)
		}
		out = append(out, &Source{Key: key, Name: key, Fetcher: fetcher, Have: have, Close: p.Close})
	}
	return out
}

// haveFetcher is a Fetcher that still answers Have (a wrapped Peer).
type haveFetcher struct {
	Fetcher
	p *Peer
}

func (h haveFetcher) Have(ctx context.Context, root [32]byte) (HaveReply, error) {
	return h.p.Have(ctx, root)
}

// runSwarm starts every downloader at once and waits until all are done;
// it returns the owner's upload and the time until the last one finished.
func (sn *swarmNet) runSwarm(t testing.TB, data []byte, link Link) (ownerSent int64, took time.Duration) {
	t.Helper()
	start := time.Now()
	for _, n := range sn.nodes[1:] {
		if _, err := n.m.Add(link, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range sn.nodes[1:] {
		info := waitLong(t, n.m, link.Root, 10*time.Minute)
		if testing.Verbose() {
			t.Logf("node %d: sources %+v", n.i, info.Sources)
		}
		got, err := os.ReadFile(info.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("node %d: copy differs", n.i)
		}
	}
	return sn.nodes[0].sent.Load(), time.Since(start)
}

// waitLong waits for a download to end, for up to d, and fails the test
// unless it is done.
func waitLong(t testing.TB, m *Manager, root [32]byte, d time.Duration) DownloadInfo {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		info, ok := m.Info(root)
		if ok && (info.State == StateDone || info.State == StateFailed) {
			if info.State != StateDone {
				t.Fatalf("download failed: %s", info.Error)
			}
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("download still %s: %+v", info.State, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// swarmTuning finds new sources quickly (downloaders appear as sources
// once they have begun) and keeps fewer requests in flight at the owner
// before they do (lowest first, all downloaders ask it for the same
// groups), so that a small file shows what happens once they swarm.
var swarmTuning = Tuning{SourceRefresh: 200 * time.Millisecond, Window: 2}

// TestSwarmOwnerUpload has four downloaders fetch one 24 MiB file from its
// owner at once, with swarming on and off. With it on they fetch from each
// other and the owner uploads less than 2.5 times the file; off, it
// uploads it to each of them. Every copy verifies.
func TestSwarmOwnerUpload(t *testing.T) {
	const size = 24 << 20
	for _, off := range []bool{false, true} {
		sn := newSwarmNet(t, 4, off, swarmTuning, 16<<20)
		data, link := sn.share(size)
		sent, took := sn.runSwarm(t, data, link)
		ratio := float64(sent) / size
		t.Logf("swarming off=%v: owner uploaded %.2fx the file; last done after %v", off, ratio, took)
		switch {
		case !off && ratio >= 2.5:
			t.Errorf("with swarming the owner uploaded %.2fx the file; want < 2.5x", ratio)
		case off && ratio < 3.9:
			t.Errorf("without swarming the owner uploaded %.2fx the file; want about 4x", ratio)
		}
		sn.close()
	}
}

// TestSwarmLyingSource: node 1 downloads from the owner and from a liar
// (node 2's stream, with a byte of every range flipped) while node 3
// downloads from node 1 only, and a checker keeps asking node 1 for every
// group it says it holds. No byte node 1 serves may fail verification:
// node 3 sees no bad range and the checker no bad group, while node 1
// caught the liar.
func TestSwarmLyingSource(t *testing.T) {
	noLeaks(t)
	const size = 12 << 20
	sn := newSwarmNet(t, 3, false, Tuning{SourceRefresh: 100 * time.Millisecond, RangeGroups: 2, Window: 2}, 0)
	data, link := sn.share(size)
	// Node 2 serves the owner's file too, so it is a complete source of it,
	// but node 1 sees it through a liar.
	sn.nodes[2].srv = sn.nodes[0].srv
	sn.nodes[1].peers = []int{0, 2}
	// The owner is slow, so that node 3 finds node 1 before it is done.
	sn.nodes[1].wrap = func(j int, p *Peer) Fetcher {
		if j == 2 {
			return haveFetcher{lie(false)(p, nil), p}
		}
		return haveFetcher{waitThen(nil, 150*time.Millisecond)(p, nil), p}
	}
	sn.nodes[3].peers = []int{1}

	var checked, bad atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		p := NewPeer(sn.serve(1))
		defer p.Close()
		for ctx.Err() == nil {
			have, err := p.Have(ctx, link.Root)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for i := range Groups(size) {
				if !have.Has(i) {
					continue
				}
				d, pr, err := p.GetRange(ctx, link.Root, size, i, 1, nil)
				if err != nil {
					continue
				}
				checked.Add(1)
				if VerifyRange(link.Root, size, i, 1, d, pr) != nil {
					bad.Add(1)
				}
			}
		}
	}()
	if _, err := sn.nodes[1].m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.nodes[3].m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	i1 := waitLong(t, sn.nodes[1].m, link.Root, time.Minute)
	i3 := waitLong(t, sn.nodes[3].m, link.Root, time.Minute)
	cancel()
	wg.Wait()
	for _, info := range []DownloadInfo{i1, i3} {
		got, _ := os.ReadFile(info.Path)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s differs", info.Path)
		}
	}
	t.Logf("node 1: %d bad groups caught; node 3: %d bad, %d fetched; checker: %d groups checked, %d bad",
		i1.BadRanges, i3.BadRanges, i3.FetchedGroups, checked.Load(), bad.Load())
	if i1.BadRanges == 0 {
		t.Fatal("the liar was never caught: the test proves nothing")
	}
	if i3.BadRanges != 0 || bad.Load() != 0 {
		t.Fatalf("node 1 served unverified bytes: node 3 had %d bad groups, the checker %d", i3.BadRanges, bad.Load())
	}
	if checked.Load() == 0 || i3.FetchedGroups == 0 {
		t.Fatal("node 1 served nothing while it downloaded")
	}
}

// TestSwarmBench is acceptance 2 of issue 16: one owner and eight
// downloaders, friends of the owner and of each other, fetch one file
// (KITH_BENCH_MIB, 256 MiB by default) at once, with swarming on and off.
// It reports the owner's upload as a ratio of the file's size and the time
// until the last downloader is done, for BENCHMARKS.md. The owner's upload
// is limited to KITH_SWARM_OWNER_MIBS MiB/s (64 by default; 0: none), as a
// home uplink would be; the downloaders' are not. Run with KITH_SWARM_BENCH=1.
func TestSwarmBench(t *testing.T) {
	if os.Getenv("KITH_SWARM_BENCH") == "" {
		t.Skip("set KITH_SWARM_BENCH=1 to run the swarm benchmark")
	}
	mib := int64(256)
	if v, err := strconv.ParseInt(os.Getenv("KITH_BENCH_MIB"), 10, 64); err == nil && v > 0 {
		mib = v
	}
	owner := int64(64)
	if v, err := strconv.ParseInt(os.Getenv("KITH_SWARM_OWNER_MIBS"), 10, 64); err == nil && v >= 0 {
		owner = v
	}
	size := mib << 20
	for _, off := range []bool{false, true} {
		sn := newSwarmNet(t, 8, off, Tuning{}, owner<<20)
		data, link := sn.share(size)
		sent, took := sn.runSwarm(t, data, link)
		t.Logf("%d MiB, 8 downloaders, owner upload limit %d MiB/s, swarming %v: owner uploaded %.2fx the file (%d MiB); last done after %.1fs",
			mib, owner, !off, float64(sent)/float64(size), sent>>20, took.Seconds())
		if !off && float64(sent) >= 2.5*float64(size) {
			t.Errorf("with swarming the owner uploaded %.2fx the file; want < 2.5x", float64(sent)/float64(size))
		}
		sn.close()
	}
}
