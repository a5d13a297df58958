package tunnels

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/internal/friendlink"
	"kith/internal/testkit"
)

// hostileFriend starts a bare libp2p host that r befriends and returns it
// with its end of the router link to r: it opens the stream itself when
// its peer ID makes it the opener, else it takes the one r opens. It runs
// no router: the test drives the stream.
func hostileFriend(t *testing.T, r *testNode) (host.Host, network.Stream) {
	t.Helper()
	x, xal := newTestHost(t)
	held := make(chan network.Stream, 4)
	x.SetStreamHandler(RouterProtocol, func(s network.Stream) {
		select {
		case held <- s:
		default:
			s.Reset()
		}
	})
	t.Cleanup(func() {
		for len(held) > 0 {
			(<-held).Reset()
		}
	})
	xal.Add(r.h.ID())
	r.friends.Add(x.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := x.Connect(ctx, peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var s network.Stream
	if friendlink.Opener(x.ID(), r.h.ID()) {
		var err error
		if s, err = x.NewStream(ctx, r.h.ID(), RouterProtocol); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Reset() })
		// The protocol is negotiated with the first write: a message
		// that does nothing.
		if err := NewMessageWriter(s).Write(&TunnelClose{ID: 1}); err != nil {
			t.Fatal(err)
		}
	} else {
		select {
		case s = <-held:
			t.Cleanup(func() { s.Reset() })
		case <-ctx.Done():
			t.Fatal("the router opened no stream to its new friend")
		}
	}
	return x, s
}

// linkOf returns r's link to p, or nil.
func linkOf(r *Router, p peer.ID) *link {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.links[p]
}

// searchFinds searches from o for words and reports whether want's answer
// arrived within d.
func searchFinds(t *testing.T, o *Router, words, want string, d time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ch, err := o.Search(ctx, Query{Keywords: words})
	if err != nil {
		t.Fatal(err)
	}
	for res := range ch {
		if res.Name == want {
			return true
		}
	}
	return false
}

// TestRouterLinkSlowAndHugeFrames: a friend of relay R announces a
// control message of the largest size and dribbles it, another announces
// a gigabyte. R holds no more memory than the dribbler sent, charges it to
// the resource manager, resets both links (the dribbler's once the frame
// timeout passes) but keeps their connections, and serves its other
// friends meanwhile.
func TestRouterLinkSlowAndHugeFrames(t *testing.T) {
	share := &fakeShare{name: "holiday-2026.mkv", root: [32]byte(randBytes(32)), size: 1}
	const frameTimeout = 1500 * time.Millisecond
	nodes := newNet(t, 3, chainEdges(3), func(i int, c *RouterConfig) {
		c.FrameTimeout = frameTimeout
		if i == 2 {
			c.Searcher = share
		}
	})
	o, r := nodes[0], nodes[1]

	// The huge announcement: cut off at once.
	huge, hs := hostileFriend(t, r)
	if _, err := hs.Write(binary.AppendUvarint(nil, 1<<30)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitLimit, "the link of the friend announcing a gigabyte reset", func() bool {
		return r.r.Stats().FriendsDisconnected == 1 && linkOf(r.r, huge.ID()) == nil
	})

	// The dribbler: 40 KiB at once, then a byte every 50 ms.
	drib, ds := hostileFriend(t, r)
	testkit.WaitFor(t, waitLimit, "R's link to the dribbler", func() bool { return linkOf(r.r, drib.ID()) != nil })
	l := linkOf(r.r, drib.ID())
	// The connection's own reservations (yamux receive windows) are the
	// baseline: what the frame costs comes on top.
	base := testkit.PeerMemory(r.h, drib.ID())
	start := time.Now()
	sent := 0
	head := binary.AppendUvarint(nil, MaxControlMsg)
	if _, err := ds.Write(append(head, make([]byte, 40<<10)...)); err != nil {
		t.Fatal(err)
	}
	sent += 40 << 10
	var peak atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 400; i++ { // bounded: 20 s at most
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if m := testkit.PeerMemory(r.h, drib.ID()) - base; m > peak.Load() {
				peak.Store(m)
			}
			if _, err := ds.Write([]byte{0}); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	// R's other friends are served while the dribbler holds its link.
	if !searchFinds(t, o.r, "holiday", share.name, 5*time.Second) {
		t.Error("O's search through R found nothing while a friend of R dribbled a frame")
	}
	select {
	case <-l.Done():
	case <-time.After(frameTimeout + 10*time.Second):
		t.Fatalf("R still reads the dribbled frame %v after it started", time.Since(start))
	}
	took := time.Since(start)
	testkit.WaitFor(t, waitLimit, "the dribbler's link reset", func() bool { return linkOf(r.r, drib.ID()) == nil })
	if st := r.r.Stats(); st.FriendsDisconnected != 2 {
		t.Errorf("R reset %d friends' links for a fault, want 2", st.FriendsDisconnected)
	}
	// Their connections stay: only the router links go (friendlink's
	// policy).
	for _, h := range []host.Host{huge, drib} {
		if r.h.Network().Connectedness(h.ID()) != network.Connected {
			t.Errorf("R closed the connection of %s, which broke the router protocol", h.ID().ShortString())
		}
	}
	// What R held for the frame: its buffer, grown as the bytes came,
	// charged to the resource manager, never beyond MaxControlMsg.
	t.Logf("dribbler cut off after %v; peak memory reserved for its frame %d bytes (sent %d; connection baseline %d)", took, peak.Load(), sent, base)
	if p := peak.Load(); p < 32<<10 || p > MaxControlMsg+8<<10 {
		t.Errorf("peak memory reserved for the dribbler %d bytes, want between 32 KiB (it sent 40 KiB) and MaxControlMsg", p)
	}
	if m := testkit.PeerMemory(r.h, drib.ID()); m > base {
		t.Errorf("R still holds %d bytes for the dribbler after resetting its link, over the connection's %d", m, base)
	}
}

// bulkShare answers the keyword "bulk" with files of the longest names,
// so that each of its answers is a large sealed result, and "holiday"
// with one file.
type bulkShare struct{ holiday *fakeShare }

func (b *bulkShare) Search(q Query) []Result {
	if q.Keywords == "bulk" {
		out := make([]Result, 4*MaxFilesPerResult)
		for i := range out {
			name := fmt.Sprintf("bulk-%03d-", i)
			out[i] = Result{Name: name + strings.Repeat("x", MaxNameLen-len(name)), Size: int64(i), Root: [32]byte{byte(i), 1}}
		}
		return out
	}
	return b.holiday.Search(q)
}

// TestRouterLinkNeverReads: a friend of relay R sends searches whose
// answers are large and never reads its router stream. What R queues for
// it stays under LinkQueueBytes, charged to the resource manager; R drops
// the link once a write has waited WriteTimeout, and its other friends are
// served meanwhile.
func TestRouterLinkNeverReads(t *testing.T) {
	holiday := &fakeShare{name: "holiday-2026.mkv", root: [32]byte(randBytes(32)), size: 1}
	const writeTimeout = 2 * time.Second
	nodes := newNet(t, 3, chainEdges(3), func(i int, c *RouterConfig) {
		c.WriteTimeout = writeTimeout
		if i == 2 {
			c.Searcher = &bulkShare{holiday}
		}
	})
	o, r := nodes[0], nodes[1]
	x, xs := hostileFriend(t, r)
	testkit.WaitFor(t, waitLimit, "R's link to X", func() bool { return linkOf(r.r, x.ID()) != nil })
	l := linkOf(r.r, x.ID())
	base := testkit.PeerMemory(r.h, x.ID()) // the connection's own (yamux windows)

	// SearchBurst searches at once, then one every 250 ms: within R's rate
	// for X. Each is answered with four large results that R sends to X.
	mw := NewMessageWriter(xs)
	reply, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var peakQueue, peakMem int64
	sampled := func() {
		peakQueue = max(peakQueue, l.QueuedBytes())
		peakMem = max(peakMem, testkit.PeerMemory(r.h, x.ID())-base)
	}
	for i := 0; i < SearchBurst+16; i++ {
		m := &Search{Depth: 1, Keywords: "bulk", ReplyKey: [32]byte(reply.Public)}
		binary.BigEndian.PutUint64(m.ID[:], uint64(i)+1)
		xs.SetWriteDeadline(time.Now().Add(time.Second))
		if err := mw.Write(m); err != nil {
			break // R dropped the link
		}
		if i >= SearchBurst {
			time.Sleep(250 * time.Millisecond)
		}
		sampled()
	}
	// R's other friends are served while X blocks its link.
	if !searchFinds(t, o.r, "holiday", holiday.name, 5*time.Second) {
		t.Error("O's search through R found nothing while a friend of R did not read")
	}
	select {
	case <-l.Done():
	case <-time.After(writeTimeout + 15*time.Second):
		sampled()
		t.Fatalf("R kept the link to a friend that never reads (queue peak %d, now %d, dropped %d)", peakQueue, l.QueuedBytes(), r.r.Stats().MessagesDropped)
	}
	sampled()
	dropped := r.r.Stats().MessagesDropped
	t.Logf("peak queue to X %d bytes, peak memory reserved for X %d bytes over the connection's %d, %d messages dropped", peakQueue, peakMem, base, dropped)
	if dropped == 0 {
		t.Error("R dropped nothing for X: its queue never filled, the test proves nothing")
	}
	if peakQueue > LinkQueueBytes {
		t.Errorf("R queued %d bytes for X, more than LinkQueueBytes", peakQueue)
	}
	if peakMem < 64<<10 || peakMem > LinkQueueBytes+MaxControlMsg+16<<10 {
		t.Errorf("peak memory reserved for X %d bytes, want the queue charged and at most LinkQueueBytes plus a frame", peakMem)
	}
	if !searchFinds(t, o.r, "holiday", holiday.name, 5*time.Second) {
		t.Error("O's search through R found nothing after R dropped X")
	}
}

// TestTunnelStreamsPerFriend: a friend that opens many tunnel streams and
// sends half a header on each has MaxTunnelStreamsPerFriend of them wait
// for the rest; the others are reset at once.
func TestTunnelStreamsPerFriend(t *testing.T) {
	nodes := newNet(t, 2, chainEdges(2), nil)
	r := nodes[0]
	x, _ := hostileFriend(t, r)
	const open = MaxTunnelStreamsPerFriend + 40
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	streams := make([]network.Stream, 0, open)
	defer func() {
		for _, s := range streams {
			s.Reset()
		}
	}()
	for range open {
		s, err := x.NewStream(ctx, r.h.ID(), TunnelProtocol)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
		if _, err := s.Write(make([]byte, TunnelHeaderSize/2)); err != nil {
			t.Fatal(err)
		}
	}
	// A reset stream fails to read at once; a waiting one times out. All
	// are read at once, well within the header timeout of the router.
	var reset, waiting atomic.Int32
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() {
			s.SetReadDeadline(time.Now().Add(time.Second))
			_, err := s.Read(make([]byte, 1))
			var te interface{ Timeout() bool }
			if errors.As(err, &te) && te.Timeout() {
				waiting.Add(1)
			} else {
				reset.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d streams wait for their header, %d were reset", waiting.Load(), reset.Load())
	if w := int(waiting.Load()); w != MaxTunnelStreamsPerFriend {
		t.Errorf("%d of %d half-open tunnel streams wait, want MaxTunnelStreamsPerFriend (%d)", w, open, MaxTunnelStreamsPerFriend)
	}
}

// TestMaxWireSize: what a send queue charges for a message is at least
// what the message takes on the wire.
func TestMaxWireSize(t *testing.T) {
	msgs := append(validMessages(t),
		&Search{ID: SearchID{1}, Depth: MaxDepth, Keywords: strings.Repeat("w", MaxKeywordsLen), ReplyKey: [32]byte{1}},
		&SearchResult{SearchID: SearchID{1}, Sealed: make([]byte, MaxSealedResults)},
		&TunnelRequest{ID: 1<<64 - 1, Depth: MaxDepth, Target: [32]byte{1}, RequestID: RequestID{1}},
		&TunnelFail{ID: 1<<64 - 1, Code: FailCode(1 << 30)})
	for _, m := range msgs {
		b, err := appendMessage(nil, m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if n := maxWireSize(m); n < len(b) {
			t.Errorf("%T: charged %d bytes, takes %d", m, n, len(b))
		}
	}
}
