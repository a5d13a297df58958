package share

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"kith/internal/store"
)

// dlEnv is one download test: a real bbolt file, a downloads folder, files
// served by a real Server over real streams, and a Finder over them.
type dlEnv struct {
	t      *testing.T
	dbPath string
	db     *bolt.DB
	dir    string // the downloads folder
	shared string // where the served files live
	cat    *memCatalog
	finder *testFinder
}

// newDLEnv sets up a download test. It registers the leak check first, so
// that it runs after the manager, the servers and the database are closed.
func newDLEnv(t *testing.T) *dlEnv {
	t.Helper()
	noLeaks(t)
	e := &dlEnv{t: t, dir: t.TempDir(), shared: t.TempDir(), cat: newMemCatalog()}
	e.finder = newTestFinder(t, e.cat, pipePair)
	e.dbPath = filepath.Join(t.TempDir(), "kith.db")
	e.openDB()
	t.Cleanup(func() {
		if e.db != nil {
			e.db.Close()
		}
	})
	return e
}

func (e *dlEnv) openDB() {
	e.t.Helper()
	db, err := store.Open(e.dbPath, store.Options{NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
}

// reopenDB closes the database and opens it again, as a restart does.
func (e *dlEnv) reopenDB() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.openDB()
}

// testTuning keeps requests small and the test fast.
var testTuning = Tuning{RangeGroups: 2, Window: 2, StallTimeout: 5 * time.Second, SourceRefresh: 100 * time.Millisecond}

// manager opens a Manager on the test's database and folder; the test's
// end closes it.
func (e *dlEnv) manager(tuning Tuning) *Manager {
	e.t.Helper()
	return e.managerWith(tuning, nil)
}

// managerWith is manager with test hooks.
func (e *dlEnv) managerWith(tuning Tuning, hooks *testHooks) *Manager {
	e.t.Helper()
	m, err := NewManager(ManagerConfig{DB: e.db, Dir: e.dir, Finder: e.finder, Tuning: tuning, hooks: hooks})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { m.Close() })
	return m
}

// file makes a shared file of size bytes and returns its contents and link.
func (e *dlEnv) file(name string, size int64) ([]byte, Link) {
	e.t.Helper()
	data, sf := e.cat.add(e.t, e.shared, name, size, true, false)
	return data, Link{Root: sf.Tree.Root, Name: name, Size: size}
}

// testSource is a source the test Finder can offer. Each offer opens a new
// stream to the Server, as the node's Finder does.
type testSource struct {
	key string
	// wrap, if set, wraps the Peer of each offer.
	wrap func(p *Peer, breakStream func()) Fetcher
	// have, if set, changes what the source says it has.
	have func(HaveReply) HaveReply
	// offer, if set, says whether to offer the source now.
	offer func() bool
	// speculate marks the Source as one on a long path (Source.Speculate).
	speculate bool

	offered atomic.Int64
	closed  atomic.Int64
	closedc chan struct{} // closed when the engine first closes the source
	once    sync.Once
}

func newTestSource(key string) *testSource {
	return &testSource{key: key, closedc: make(chan struct{})}
}

// testFinder is a Finder over testSources served by a real Server.
type testFinder struct {
	t    *testing.T
	srv  *Server
	pair func(testing.TB) (net.Conn, net.Conn)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sources  []*testSource
	calls    int
	skips    []map[string]bool // what skip said, per call
	requests []FindRequest     // every request, in order
	handed   []*handedSource
}

// handedSource is a Source the Finder gave out.
type handedSource struct {
	src    *testSource
	peer   *Peer
	closes atomic.Int64
}

func newTestFinder(t *testing.T, cat Catalog, pair func(testing.TB) (net.Conn, net.Conn)) *testFinder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &testFinder{t: t, srv: NewServer(cat), pair: pair, ctx: ctx, cancel: cancel}
	t.Cleanup(f.close)
	return f
}

// set replaces the sources the Finder offers.
func (f *testFinder) set(sources ...*testSource) {
	f.mu.Lock()
	f.sources = sources
	f.mu.Unlock()
}

// close stops every server and peer the Finder started. Call it only once
// nothing calls the Finder any more (the managers are closed).
func (f *testFinder) close() {
	f.cancel()
	f.mu.Lock()
	handed := f.handed
	f.mu.Unlock()
	for _, h := range handed {
		h.peer.Close()
	}
	f.wg.Wait()
}

func (f *testFinder) FindSources(ctx context.Context, req FindRequest) []*Source {
	root, skip := req.Root, req.Skip
	f.mu.Lock()
	f.calls++
	f.requests = append(f.requests, req)
	sources := append([]*testSource(nil), f.sources...)
	skips := map[string]bool{}
	f.skips = append(f.skips, skips)
	f.mu.Unlock()
	var out []*Source
	for _, ts := range sources {
		s := skip(ts.key)
		f.mu.Lock()
		skips[ts.key] = s
		f.mu.Unlock()
		if s || (ts.offer != nil && !ts.offer()) {
			continue
		}
		if src := f.open(ctx, root, ts); src != nil {
			out = append(out, src)
		}
	}
	return out
}

// open serves a new stream and asks it for root.
func (f *testFinder) open(ctx context.Context, root [32]byte, ts *testSource) *Source {
	client, server := f.pair(f.t)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.srv.Serve(f.ctx, server, ScopeFriend)
	}()
	p := NewPeer(client)
	have, err := p.Have(ctx, root)
	if err != nil {
		p.Close()
		return nil
	}
	h := &handedSource{src: ts, peer: p}
	f.mu.Lock()
	f.handed = append(f.handed, h)
	f.mu.Unlock()
	if ts.have != nil {
		have = ts.have(have)
	}
	closeStream := func() {
		h.closes.Add(1)
		ts.closed.Add(1)
		ts.once.Do(func() { close(ts.closedc) })
		p.Close()
	}
	var fetcher Fetcher = p
	if ts.wrap != nil {
		// The wrapper breaks the stream itself: not a close by the engine.
		fetcher = ts.wrap(p, func() { p.Close() })
	}
	ts.offered.Add(1)
	return &Source{Key: ts.key, Name: ts.key, Fetcher: fetcher, Have: have, Close: func() error { closeStream(); return nil }, Speculate: ts.speculate}
}

// checkAllClosed fails the test unless the engine closed every source the
// Finder handed out, exactly once.
func (f *testFinder) checkAllClosed() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.handed {
		if n := h.closes.Load(); n != 1 {
			f.t.Errorf("source %s: closed %d times; want once", h.src.key, n)
		}
	}
}

// skipsOf returns what skip said of key in each Finder call that asked.
func (f *testFinder) skipsOf(key string) []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bool
	for _, m := range f.skips {
		if s, ok := m[key]; ok {
			out = append(out, s)
		}
	}
	return out
}

// Fetcher wrappers for misbehaving sources.

// fetchFunc is a Fetcher from a function.
type fetchFunc func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error)

func (f fetchFunc) GetRange(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
	return f(ctx, root, size, first, count, buf)
}

// failAfter serves n ranges, then closes its stream, like a friend who goes
// offline.
func failAfter(n int64, calls *atomic.Int64) func(*Peer, func()) Fetcher {
	return func(p *Peer, breakStream func()) Fetcher {
		return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
			if calls.Add(1) > n {
				breakStream()
			}
			return p.GetRange(ctx, root, size, first, count, buf)
		})
	}
}

// stall blocks every request until its ctx ends.
func stall(calls *atomic.Int64) func(*Peer, func()) Fetcher {
	return func(*Peer, func()) Fetcher {
		return fetchFunc(func(ctx context.Context, _ [32]byte, _, _, _ int64, _ []byte) ([]byte, []byte, error) {
			calls.Add(1)
			<-ctx.Done()
			return nil, nil, ctx.Err()
		})
	}
}

// gated serves n ranges, then blocks every request until its ctx ends.
func gated(n int64, calls *atomic.Int64) func(*Peer, func()) Fetcher {
	return func(p *Peer, _ func()) Fetcher {
		return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
			if calls.Add(1) > n {
				<-ctx.Done()
				return nil, nil, ctx.Err()
			}
			return p.GetRange(ctx, root, size, first, count, buf)
		})
	}
}

// waitThen holds every request until ready is closed, then serves it after
// delay.
func waitThen(ready <-chan struct{}, delay time.Duration) func(*Peer, func()) Fetcher {
	return func(p *Peer, _ func()) Fetcher {
		return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
			if ready != nil {
				select {
				case <-ready:
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
			}
			if delay > 0 {
				t := time.NewTimer(delay)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
			}
			return p.GetRange(ctx, root, size, first, count, buf)
		})
	}
}

// lie flips a byte of the data (or of the proof) of every range.
func lie(proof bool) func(*Peer, func()) Fetcher {
	return func(p *Peer, _ func()) Fetcher {
		return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
			data, pr, err := p.GetRange(ctx, root, size, first, count, buf)
			if err != nil {
				return data, pr, err
			}
			if b := data; proof && len(pr) > 0 {
				pr[len(pr)/2] ^= 1
			} else if len(b) > 0 {
				b[len(b)/2] ^= 1
			}
			return data, pr, nil
		})
	}
}

// waitInfo polls the download until cond holds, failing the test after a
// while.
func waitInfo(t *testing.T, m *Manager, root [32]byte, what string, cond func(DownloadInfo) bool) DownloadInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		info, ok := m.Info(root)
		if ok && cond(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("download %x: waiting for %s; now %+v (found %v)", root[:4], what, info, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits for the download to end and fails the test unless it is
// done.
func waitDone(t *testing.T, m *Manager, root [32]byte) DownloadInfo {
	t.Helper()
	info := waitInfo(t, m, root, "the end", func(i DownloadInfo) bool {
		return i.State == StateDone || i.State == StateFailed
	})
	if info.State != StateDone {
		t.Fatalf("download failed: %s", info.Error)
	}
	return info
}

// checkDone checks a finished download: the file at its path has want, every
// group was fetched once and the partial data is gone.
func checkDone(t *testing.T, m *Manager, info DownloadInfo, want []byte) {
	t.Helper()
	got, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d bytes shared", info.Path, len(got), len(want))
	}
	if info.Size != int64(len(want)) || info.Groups != Groups(info.Size) || info.Verified != info.Groups || info.Done != info.Size {
		t.Errorf("info: size %d groups %d verified %d done %d; want %d bytes", info.Size, info.Groups, info.Verified, info.Done, len(want))
	}
	// Every group is fetched once, but for end-game duplicates and groups
	// that failed verification (fetched again from another source).
	if n := info.ResumedGroups + info.FetchedGroups - info.DuplicateGroups - info.BadRanges; n != info.Groups {
		t.Errorf("resumed %d + fetched %d - duplicates %d - bad %d = %d; want %d groups",
			info.ResumedGroups, info.FetchedGroups, info.DuplicateGroups, info.BadRanges, n, info.Groups)
	}
	root, err := hex.DecodeString(info.Root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.partialPath([32]byte(root))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left behind: %v", err)
	}
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketBitmaps).Get(root) != nil {
			t.Error("bitmap left behind")
		}
		return nil
	})
}

// sourceInfo finds a source of a download by name.
func sourceInfo(info DownloadInfo, name string) []SourceInfo {
	var out []SourceInfo
	for _, s := range info.Sources {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// waitEnded waits until the run of root has ended (its goroutine let go
// of it), so that what it does last is done.
func waitEnded(t *testing.T, m *Manager, root [32]byte) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m.mu.Lock()
		_, running := m.runs[root]
		m.mu.Unlock()
		if !running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("download %x: still running", root[:4])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// requestsOf returns the Finder's requests for root so far, in order.
func (f *testFinder) requestsOf(root [32]byte) []FindRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FindRequest
	for _, r := range f.requests {
		if r.Root == root {
			out = append(out, r)
		}
	}
	return out
}
