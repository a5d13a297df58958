package share

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"kith/internal/frame"
)

// memScope is a frame.MemoryScope that counts what is charged to it and
// refuses more than limit (0: no limit).
type memScope struct {
	mu               sync.Mutex
	used, peak       int
	limit            int
	refused, charged int
}

func (m *memScope) ReserveMemory(n int, _ uint8) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.limit > 0 && m.used+n > m.limit {
		m.refused++
		return errors.New("over the limit")
	}
	m.used += n
	m.charged++
	m.peak = max(m.peak, m.used)
	return nil
}

func (m *memScope) ReleaseMemory(n int) {
	m.mu.Lock()
	m.used -= n
	m.mu.Unlock()
}

func (m *memScope) get() (used, peak, refused int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used, m.peak, m.refused
}

// TestServeSlowFrame: a peer that announces a request and sends it one
// byte at a time is cut off by the frame timeout, well before the frame is
// done, and counted as a peer fault.
func TestServeSlowFrame(t *testing.T) {
	noLeaks(t)
	srv := NewServer(newMemCatalog(), WithFrameTimeout(300*time.Millisecond))
	client, server := tcpPair(t)
	defer client.Close()
	sv := serveConn(t, srv, server, ScopeFriend)
	if _, err := client.Write(binary.AppendUvarint(nil, MaxRequestSize)); err != nil {
		t.Fatal(err)
	}
	gone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, client)
		close(gone)
	}()
	sent := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
dribble:
	for sent < MaxRequestSize {
		select {
		case <-gone:
			break dribble
		case <-tick.C:
		}
		if _, err := client.Write([]byte{0}); err != nil {
			break
		}
		sent++
	}
	if sent >= MaxRequestSize {
		t.Fatalf("the whole slow frame was taken (%d bytes)", sent)
	}
	if err := sv.wait(t); !errors.Is(err, frame.ErrSlow) {
		t.Errorf("Serve: %v, want ErrSlow", err)
	}
	if st := srv.Stats(); st.PeerFaults != 1 {
		t.Errorf("stats: %+v, want one peer fault", st)
	}
	t.Logf("cut off after %d of %d bytes", sent, MaxRequestSize)
}

// TestServeRequestTooLarge: a request frame announced over MaxRequestSize
// ends the stream before any of its body is read.
func TestServeRequestTooLarge(t *testing.T) {
	noLeaks(t)
	srv := NewServer(newMemCatalog())
	client, server := tcpPair(t)
	defer client.Close()
	sv := serveConn(t, srv, server, ScopeFriend)
	client.Write(binary.AppendUvarint(nil, MaxRequestSize+1))
	r := NewReader(client)
	f, err := r.ReadFrame()
	var er ErrorReply
	if er, _ = f.Msg.(ErrorReply); err != nil || er.Code != CodeBadRequest {
		t.Errorf("answer: %+v, %v; want CodeBadRequest", f, err)
	}
	if _, err := r.ReadFrame(); err == nil {
		t.Error("stream still open")
	}
	if err := sv.wait(t); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("Serve: %v, want ErrMessageTooLarge", err)
	}
}

// TestServeChargesMemory: a served stream charges ServeStreamMemory to its
// scope while it is served and a chunk while it writes a range; a scope
// with no room for the chunk gets CodeBusy and the stream goes on; a scope
// with no room for the stream has it reset.
func TestServeChargesMemory(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	data, sf := cat.add(t, t.TempDir(), "f", 3*GroupSize, true, false)
	srv := NewServer(cat)
	serve := func(mem *memScope) (*Peer, chan error) {
		client, server := tcpPair(t)
		errc := make(chan error, 1)
		go func() {
			errc <- srv.ServeStream(context.Background(), server, ScopeFriend, StreamInfo{Peer: "p", Memory: mem})
		}()
		p := NewPeer(client)
		t.Cleanup(func() { p.Close() })
		return p, errc
	}

	mem := &memScope{}
	p, errc := serve(mem)
	checkRange(t, p, sf, data, 0, 3, nil)
	// The send queue gives the last chunk back once its write returned,
	// which may be just after the peer read it.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if used, _, _ := mem.get(); used == ServeStreamMemory {
			break
		}
	}
	if used, peak, _ := mem.get(); used != ServeStreamMemory || peak != MaxServeStreamMemory {
		t.Errorf("while serving: %d bytes charged (peak %d); want %d (peak %d)", used, peak, ServeStreamMemory, MaxServeStreamMemory)
	}
	p.Close()
	if err := <-errc; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if used, _, _ := mem.get(); used != 0 {
		t.Errorf("%d bytes still charged after the stream", used)
	}

	// Room for the stream, not for a chunk.
	mem = &memScope{limit: ServeStreamMemory + ServeChunkSize/2}
	p, errc = serve(mem)
	var er ErrorReply
	if _, _, err := p.GetRange(context.Background(), sf.Tree.Root, sf.Tree.Size, 0, 1, nil); !errors.As(err, &er) || er.Code != CodeBusy {
		t.Errorf("GetRange without memory: %v, want CodeBusy", err)
	}
	if h, err := p.Have(context.Background(), sf.Tree.Root); err != nil || h.Size != sf.Tree.Size {
		t.Errorf("Have after CodeBusy: %+v, %v", h, err)
	}
	p.Close()
	<-errc

	// No room for the stream.
	mem = &memScope{limit: ServeStreamMemory - 1}
	p, errc = serve(mem)
	if err := <-errc; !errors.Is(err, frame.ErrNoMemory) {
		t.Errorf("Serve without memory: %v", err)
	}
	if _, err := p.Have(context.Background(), sf.Tree.Root); err == nil {
		t.Error("a stream without memory was answered")
	}
	if st := srv.Stats(); st.Busy != 2 {
		t.Errorf("stats: %+v, want 2 busy", st)
	}
}

// TestServeRatesPerPeer: the streams of one peer share its request rates,
// which outlive a stream; another peer has rates of its own.
func TestServeRatesPerPeer(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	_, sf := cat.add(t, t.TempDir(), "f", 100, true, false)
	srv := NewServer(cat)
	open := func(peer string) *Peer {
		client, server := tcpPair(t)
		go srv.ServeStream(context.Background(), server, ScopeFriend, StreamInfo{Peer: peer})
		p := NewPeer(client)
		t.Cleanup(func() { p.Close() })
		return p
	}
	ctx := context.Background()
	// Peer p spends its burst of Have on one stream, then closes it.
	start := time.Now()
	p1 := open("p")
	for range HaveBurst {
		if _, err := p1.Have(ctx, sf.Tree.Root); err != nil {
			t.Fatal(err)
		}
	}
	p1.Close()
	if st := srv.Stats(); st.Have != HaveBurst || st.Throttled != 0 {
		t.Fatalf("after the burst: %+v", st)
	}
	// Its next stream waits for the rate: of HaveBurst more requests, all
	// but those the rate refilled since the first (at most HaveRate per
	// second) wait. A fresh bucket per stream would let all through.
	p2 := open("p")
	refilled := int64(time.Since(start).Seconds()*HaveRate) + 1
	for range HaveBurst {
		if _, err := p2.Have(ctx, sf.Tree.Root); err != nil {
			t.Fatal(err)
		}
	}
	if refilled >= HaveBurst/2 {
		t.Fatalf("the burst took %v on this machine: too slow to tell a refill from the rate", time.Since(start))
	}
	if st := srv.Stats(); st.Throttled < HaveBurst-refilled {
		t.Errorf("a new stream of the same peer refilled its rate: %+v, want at least %d throttled", st, HaveBurst-refilled)
	}
	// Another peer does not wait.
	before := srv.Stats().Throttled
	q := open("q")
	for range 10 {
		if _, err := q.Have(ctx, sf.Tree.Root); err != nil {
			t.Fatal(err)
		}
	}
	if st := srv.Stats(); st.Throttled != before {
		t.Errorf("another peer was throttled: %+v", st)
	}
}
