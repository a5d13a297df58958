package share

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// memCatalog is a Catalog over files in a test's temp dir.
type memCatalog struct {
	mu      sync.Mutex
	files   map[[32]byte]memFile
	folders map[string][]Entry
	// gates, when set for a root, make Lookup wait until the channel is
	// closed; entered is signalled first.
	gates   map[[32]byte]chan struct{}
	entered chan [32]byte
	lookups atomic.Int64
}

type memFile struct {
	sf                   SharedFile
	browsable, anonymous bool
}

func newMemCatalog() *memCatalog {
	return &memCatalog{
		files:   make(map[[32]byte]memFile),
		folders: make(map[string][]Entry),
		gates:   make(map[[32]byte]chan struct{}),
		entered: make(chan [32]byte, 16),
	}
}

func (c *memCatalog) Lookup(root [32]byte, scope Scope) (SharedFile, bool) {
	c.lookups.Add(1)
	c.mu.Lock()
	gate := c.gates[root]
	c.mu.Unlock()
	if gate != nil {
		c.entered <- root
		<-gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[root]
	switch {
	case !ok:
		return SharedFile{}, false
	case scope == ScopeLocal,
		scope == ScopeFriend && f.browsable,
		scope == ScopeAnonymous && f.anonymous:
		return f.sf, true
	}
	return SharedFile{}, false
}

func (c *memCatalog) Browse(path string, offset int) (BrowseReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, ok := c.folders[path]
	if !ok {
		return BrowseReply{}, fmt.Errorf("no folder %q", path)
	}
	if offset > len(entries) {
		offset = len(entries)
	}
	return BrowseReply{Entries: entries[offset:]}, nil
}

// add writes a file of size test bytes into dir, indexes it and shares it
// as told. It returns the file's contents and catalog record.
func (c *memCatalog) add(t testing.TB, dir, name string, size int64, browsable, anonymous bool) ([]byte, SharedFile) {
	t.Helper()
	data := testData(size)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sf := SharedFile{Path: path, Name: name, ModTime: fi.ModTime(), Tree: tree}
	c.mu.Lock()
	c.files[tree.Root] = memFile{sf: sf, browsable: browsable, anonymous: anonymous}
	c.mu.Unlock()
	return data, sf
}

// transports are the stream kinds every server test runs over.
var transports = []struct {
	name string
	pair func(t testing.TB) (client, server net.Conn)
}{
	{"pipe", pipePair},
	{"tcp", tcpPair},
}

// pipePair returns the two ends of a net.Pipe.
func pipePair(testing.TB) (client, server net.Conn) {
	return net.Pipe()
}

// tcpPair returns the two ends of a TCP connection on 127.0.0.1.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	return client, server
}

// noLeaks checks, when the test ends, that it left no goroutine behind.
// Register it first, so that it runs after every other cleanup.
func noLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// served is a server goroutine serving one stream for a test.
type served struct {
	errc chan error
	err  error
	once sync.Once
}

// wait returns Serve's error, failing the test if it takes too long.
func (s *served) wait(t testing.TB) error {
	t.Helper()
	s.once.Do(func() {
		select {
		case s.err = <-s.errc:
		case <-time.After(10 * time.Second):
			s.err = errors.New("Serve did not return")
			t.Error(s.err)
		}
	})
	return s.err
}

// serveConn serves conn with s in scope until the test ends.
func serveConn(t testing.TB, s *Server, conn net.Conn, scope Scope) *served {
	ctx, cancel := context.WithCancel(context.Background())
	sv := &served{errc: make(chan error, 1)}
	go func() { sv.errc <- s.Serve(ctx, conn, scope) }()
	t.Cleanup(func() {
		cancel()
		sv.wait(t)
	})
	return sv
}

// startPeer serves cat over a new stream of the transport in scope and
// returns a Peer on its other end.
func startPeer(t testing.TB, pair func(testing.TB) (net.Conn, net.Conn), cat Catalog, scope Scope, opts ...ServerOption) (*Peer, *served) {
	t.Helper()
	client, server := pair(t)
	sv := serveConn(t, NewServer(cat, opts...), server, scope)
	p := NewPeer(client)
	t.Cleanup(func() { p.Close() })
	return p, sv
}

func checkRange(t testing.TB, p *Peer, sf SharedFile, data []byte, first, count int64, buf []byte) {
	t.Helper()
	got, proof, err := p.GetRange(context.Background(), sf.Tree.Root, sf.Tree.Size, first, count, buf)
	if err != nil {
		t.Fatalf("GetRange(%d, %d): %v", first, count, err)
	}
	if err := VerifyRange(sf.Tree.Root, sf.Tree.Size, first, count, got, proof); err != nil {
		t.Fatalf("GetRange(%d, %d): %v", first, count, err)
	}
	off := first * GroupSize
	if !bytes.Equal(got, data[off:off+int64(len(got))]) {
		t.Fatalf("GetRange(%d, %d): data differs", first, count)
	}
}

func TestServeHaveAndRanges(t *testing.T) {
	noLeaks(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cat := newMemCatalog()
			data, sf := cat.add(t, t.TempDir(), "a.bin", 10*GroupSize+1234, true, false)
			p, _ := startPeer(t, tr.pair, cat, ScopeFriend)

			have, err := p.Have(context.Background(), sf.Tree.Root)
			if err != nil {
				t.Fatal(err)
			}
			if !have.Complete || have.Size != sf.Tree.Size || !have.Has(10) {
				t.Errorf("Have: %+v", have)
			}
			buf := make([]byte, MaxRangeData+MaxRangeProof)
			for _, r := range []struct {
				name         string
				first, count int64
			}{
				{"first", 0, 1},
				{"middle", 3, 4},
				{"last", 10, 1},
				{"partial last", 8, 3},
				{"whole", 0, 11},
			} {
				t.Run(r.name, func(t *testing.T) {
					checkRange(t, p, sf, data, r.first, r.count, buf)
					checkRange(t, p, sf, data, r.first, r.count, nil) // allocating
				})
			}
			// With a large enough buffer, nothing is allocated for the payload.
			got, proof, err := p.GetRange(context.Background(), sf.Tree.Root, sf.Tree.Size, 2, 2, buf)
			if err != nil {
				t.Fatal(err)
			}
			if &got[0] != &buf[0] || &proof[0] != &buf[len(got)] {
				t.Error("payload not read into buf")
			}
			// Past the end of the file.
			_, _, err = p.GetRange(context.Background(), sf.Tree.Root, sf.Tree.Size+GroupSize, 11, 1, nil)
			var er ErrorReply
			if !errors.As(err, &er) || er.Code != CodeBadRequest {
				t.Errorf("range past the end: %v", err)
			}
			// The stream goes on.
			checkRange(t, p, sf, data, 0, 1, buf)
		})
	}
}

func TestServeSmallFiles(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	dir := t.TempDir()
	p, _ := startPeer(t, transports[0].pair, cat, ScopeAnonymous)
	for _, size := range []int64{1, 1023, GroupSize - 1, GroupSize, GroupSize + 1} {
		data, sf := cat.add(t, dir, fmt.Sprint(size), size, false, true)
		for i := range Groups(size) {
			checkRange(t, p, sf, data, i, 1, nil)
		}
	}
	// The empty file has no groups to ask for, but Have answers it.
	_, sf := cat.add(t, dir, "empty", 0, false, true)
	have, err := p.Have(context.Background(), sf.Tree.Root)
	if err != nil || !have.Complete || have.Size != 0 {
		t.Errorf("Have(empty): %+v, %v", have, err)
	}
}

func TestServePipelined(t *testing.T) {
	noLeaks(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cat := newMemCatalog()
			dir := t.TempDir()
			data1, sf1 := cat.add(t, dir, "1", 40*GroupSize+7, true, false)
			data2, sf2 := cat.add(t, dir, "2", 9*GroupSize, true, false)
			p, _ := startPeer(t, tr.pair, cat, ScopeFriend)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					buf := make([]byte, 8*GroupSize)
					for i := range 20 {
						data, sf := data1, sf1
						if (g+i)%3 == 0 {
							data, sf = data2, sf2
						}
						n := Groups(sf.Tree.Size)
						first := int64(g*7+i*5) % n
						count := min(int64(1+(g+i)%4), n-first)
						checkRange(t, p, sf, data, first, count, buf)
						if i%5 == 0 {
							if _, err := p.Have(context.Background(), sf.Tree.Root); err != nil {
								t.Error(err)
							}
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func TestServeBrowseScope(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	cat.folders[""] = []Entry{{Name: "music", Dir: true}, {Name: "docs", Dir: true}}
	cat.folders["music"] = []Entry{{Name: "a.flac", Size: 12, Root: EmptyRoot}, {Name: "bad/name", Size: 1, Root: EmptyRoot}}

	friend, _ := startPeer(t, pipePair, cat, ScopeFriend)
	got, err := friend.Browse(context.Background(), "", 0)
	if err != nil || len(got.Entries) != 2 || got.Entries[0].Name != "music" {
		t.Errorf("friend browse: %+v, %v", got, err)
	}
	got, err = friend.Browse(context.Background(), "", 1)
	if err != nil || len(got.Entries) != 1 || got.Entries[0].Name != "docs" {
		t.Errorf("friend browse from 1: %+v, %v", got, err)
	}
	// A name the peer would refuse is left out, not sent.
	got, err = friend.Browse(context.Background(), "music", 0)
	if err != nil || len(got.Entries) != 1 || got.Entries[0].Name != "a.flac" {
		t.Errorf("friend browse music: %+v, %v", got, err)
	}
	_, err = friend.Browse(context.Background(), "nothing", 0)
	var er ErrorReply
	if !errors.As(err, &er) || er.Code != CodeNotFound {
		t.Errorf("friend browse of a missing folder: %v", err)
	}
	if _, err := friend.Browse(context.Background(), "../etc", 0); !errors.Is(err, ErrBadName) {
		t.Errorf("bad path sent: %v", err)
	}

	anon, _ := startPeer(t, pipePair, cat, ScopeAnonymous)
	_, err = anon.Browse(context.Background(), "", 0)
	if !errors.As(err, &er) || er.Code != CodeNotFound {
		t.Errorf("anonymous browse: %v", err)
	}
}

func TestServeNotFound(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	dir := t.TempDir()
	// Sizes differ: testData gives equal files for equal sizes.
	_, friendOnly := cat.add(t, dir, "f", 3*GroupSize, true, false)
	_, anonOnly := cat.add(t, dir, "a", 3*GroupSize+1, false, true)
	var unknown [32]byte
	unknown[0] = 1

	anon, _ := startPeer(t, pipePair, cat, ScopeAnonymous)
	friend, _ := startPeer(t, pipePair, cat, ScopeFriend)
	var replies []ErrorReply
	for _, c := range []struct {
		p    *Peer
		root [32]byte
	}{{anon, unknown}, {anon, friendOnly.Tree.Root}, {friend, unknown}, {friend, anonOnly.Tree.Root}} {
		_, err := c.p.Have(context.Background(), c.root)
		var er ErrorReply
		if !errors.As(err, &er) || er.Code != CodeNotFound {
			t.Fatalf("Have: %v", err)
		}
		replies = append(replies, er)
		_, _, err = c.p.GetRange(context.Background(), c.root, 3*GroupSize+1, 0, 1, nil)
		if !errors.As(err, &er) || er.Code != CodeNotFound {
			t.Fatalf("GetRange: %v", err)
		}
		replies = append(replies, er)
	}
	// Not existing and shared in another scope look the same.
	for _, er := range replies {
		if er != replies[0] {
			t.Errorf("replies differ: %+v and %+v", er, replies[0])
		}
	}
}

func TestServeFileChanged(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	dir := t.TempDir()
	data, sf := cat.add(t, dir, "f", 3*GroupSize, true, false)
	_, sf2 := cat.add(t, dir, "g", 3*GroupSize+1, true, false)
	_, sf3 := cat.add(t, dir, "h", 3*GroupSize+2, true, false)
	// g grows before it is ever served; h vanishes.
	if err := os.WriteFile(sf2.Path, testData(4*GroupSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sf3.Path); err != nil {
		t.Fatal(err)
	}
	p, _ := startPeer(t, pipePair, cat, ScopeFriend)
	checkRange(t, p, sf, data, 0, 1, nil) // f is now open
	// f is edited in place, same size, while the stream has it open.
	later := sf.ModTime.Add(time.Second)
	if err := os.Chtimes(sf.Path, later, later); err != nil {
		t.Fatal(err)
	}
	for _, f := range []SharedFile{sf, sf2, sf3} {
		_, _, err := p.GetRange(context.Background(), f.Tree.Root, f.Tree.Size, 1, 1, nil)
		var er ErrorReply
		if !errors.As(err, &er) || er.Code != CodeNotFound || er.Message != msgFileChanged {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
	if _, err := p.Have(context.Background(), sf.Tree.Root); err == nil {
		t.Error("Have of a changed file succeeded")
	}
}

// rawConn returns the client end of a stream served by s in scope, for
// tests that speak the protocol by hand.
func rawConn(t *testing.T, s *Server, scope Scope) (net.Conn, *served) {
	client, server := net.Pipe()
	sv := serveConn(t, s, server, scope)
	t.Cleanup(func() { client.Close() })
	return client, sv
}

func TestServeUnknownMessage(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	_, sf := cat.add(t, t.TempDir(), "f", 100, true, false)
	client, sv := rawConn(t, NewServer(cat), ScopeFriend)
	go func() {
		// A request from a future version, a reply where a request
		// belongs, then a Have.
		client.Write(rawFrame(varintField(1, 42), field(99, []byte("from the future"))))
		w := NewWriter(client)
		w.WriteFrame(Frame{ID: 43, Msg: ErrorReply{Code: CodeBusy}})
		w.WriteFrame(Frame{ID: 44, Msg: Have{Root: sf.Tree.Root}})
	}()
	r := NewReader(client)
	for _, id := range []uint64{42, 43} {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if er, ok := f.Msg.(ErrorReply); !ok || f.ID != id || er.Code != CodeUnknownRequest {
			t.Fatalf("got %+v, want CodeUnknownRequest for %d", f, id)
		}
	}
	f, err := r.ReadFrame()
	if err != nil || f.ID != 44 {
		t.Fatalf("after unknown requests: %+v, %v", f, err)
	}
	if h, ok := f.Msg.(HaveReply); !ok || h.Size != 100 {
		t.Errorf("Have: %+v", f.Msg)
	}
	client.Close()
	if err := sv.wait(t); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestServeGarbage(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	_, sf := cat.add(t, t.TempDir(), "f", 100, true, false)
	for _, tt := range []struct {
		name    string
		stream  []byte
		wantErr error
	}{
		{"not protobuf", rawFrame([]byte{0xff, 0xff}), ErrBadMessage},
		{"zero count", rawFrame(varintField(1, 5), field(4, append(field(1, sf.Tree.Root[:]), varintField(3, 0)...))), ErrBadRange},
		{"too large", []byte{0xff, 0xff, 0xff, 0x7f}, ErrMessageTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, sv := rawConn(t, NewServer(cat), ScopeFriend)
			go func() {
				NewWriter(client).WriteFrame(Frame{ID: 1, Msg: Have{Root: sf.Tree.Root}})
				client.Write(tt.stream)
			}()
			r := NewReader(client)
			if f, err := r.ReadFrame(); err != nil || f.ID != 1 {
				t.Fatalf("Have before garbage: %+v, %v", f, err)
			}
			f, err := r.ReadFrame()
			if er, ok := f.Msg.(ErrorReply); err != nil || !ok || er.Code != CodeBadRequest {
				t.Fatalf("garbage answered %+v, %v", f, err)
			}
			// Then the server closes the stream.
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Errorf("after garbage: %v, want EOF", err)
			}
			if err := sv.wait(t); !errors.Is(err, tt.wantErr) {
				t.Errorf("Serve: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestServeCutShort(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	client, server := tcpPair(t)
	defer client.Close()
	sv := serveConn(t, NewServer(cat), server, ScopeFriend)
	client.Write(rawFrame(field(2, field(1, EmptyRoot[:])))[:10])
	client.(*net.TCPConn).CloseWrite()
	if err := sv.wait(t); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Serve: %v, want unexpected EOF", err)
	}
}

func TestServeIdleTimeout(t *testing.T) {
	noLeaks(t)
	client, sv := rawConn(t, NewServer(newMemCatalog(), WithIdleTimeout(100*time.Millisecond)), ScopeFriend)
	start := time.Now()
	if err := sv.wait(t); !errors.Is(err, ErrStreamIdle) {
		t.Errorf("Serve: %v, want ErrStreamIdle", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v", d)
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("stream still open")
	}
}

func TestServeContextEnds(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- NewServer(newMemCatalog()).Serve(ctx, server, ScopeFriend) }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := NewServer(newMemCatalog()).Serve(context.Background(), client, Scope(0)); err == nil {
		t.Error("Serve accepted scope 0")
	}
}

func TestServeRateLimited(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	data, sf := cat.add(t, t.TempDir(), "f", 2<<20, true, false)
	p, _ := startPeer(t, tcpPair, cat, ScopeFriend, WithUploadLimiter(NewRateLimiter(1<<20)))
	start := time.Now()
	checkRange(t, p, sf, data, 0, Groups(sf.Tree.Size), nil)
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("2 MiB at 1 MiB/s took %v", d)
	}
}

// BenchmarkServeRangeTCP measures a server and a Peer over a 127.0.0.1 TCP
// socket: 1 MiB ranges (4 groups), 8 in flight. Set against BenchmarkRawTCP,
// which moves the same bytes with io.Copy.
func BenchmarkServeRangeTCP(b *testing.B) {
	cat := newMemCatalog()
	_, sf := cat.add(b, b.TempDir(), "f", 256*GroupSize, true, false)
	client, server := tcpPair(b)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- NewServer(cat).Serve(ctx, server, ScopeFriend) }()
	p := NewPeer(client)
	defer func() {
		p.Close()
		cancel()
		<-errc
	}()
	const count, inFlight = 4, 8
	n := Groups(sf.Tree.Size)
	b.SetBytes(count * GroupSize)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			buf := make([]byte, count*GroupSize+count*MaxGroupProofSize)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				first := i * count % n
				data, _, err := p.GetRange(context.Background(), sf.Tree.Root, sf.Tree.Size, first, count, buf)
				if err != nil || len(data) != count*GroupSize {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkRawTCP(b *testing.B) {
	client, server := tcpPair(b)
	defer client.Close()
	data := testData(4 * GroupSize)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		for range b.N {
			if _, err := io.Copy(server, bytes.NewReader(data)); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, len(data))
	for {
		if _, err := client.Read(buf); err == io.EOF {
			break
		} else if err != nil {
			b.Fatal(err)
		}
	}
	<-done
}
