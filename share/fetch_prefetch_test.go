package share

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestHaveAndLastOneFlight: the Have and the request for the last group go
// out in one write, before the peer answers either (one round trip), the
// first GetRange of that group takes the prefetched reply without asking
// again, and a second one asks the peer.
func TestHaveAndLastOneFlight(t *testing.T) {
	noLeaks(t)
	root := [32]byte{7}
	const size = 5*GroupSize + 100
	last := Groups(size) - 1
	read := make(chan []Frame, 1)
	p := fakeServer(t, func(r *Reader, w *Writer, conn net.Conn) {
		// Without the prefetch the second request never comes: fail then,
		// and the close fails the Have.
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		first := []Frame{readRequest(t, r), readRequest(t, r)}
		read <- first // both read before any reply was written
		if err := w.WriteFrame(Frame{ID: first[0].ID, Msg: HaveReply{Size: size, Complete: true}}); err != nil {
			t.Error(err)
		}
		if err := w.WriteFrame(Frame{ID: first[1].ID, Msg: ErrorReply{Code: CodeBusy, Message: "prefetched"}}); err != nil {
			t.Error(err)
		}
		again := readRequest(t, r)
		if g, ok := again.Msg.(GetRange); !ok || g.First != last || g.Count != 1 {
			t.Errorf("third request: %#v", again.Msg)
		}
		w.WriteFrame(Frame{ID: again.ID, Msg: ErrorReply{Code: CodeBusy, Message: "asked again"}})
	})
	have, f, err := p.HaveAndLast(context.Background(), root, size)
	if err != nil || have.Size != size {
		t.Fatalf("Have: %+v, %v", have, err)
	}
	first := <-read
	if _, ok := first[0].Msg.(Have); !ok {
		t.Fatalf("first request: %#v, want Have", first[0].Msg)
	}
	if g, ok := first[1].Msg.(GetRange); !ok || g.Root != root || g.First != last || g.Count != 1 {
		t.Fatalf("second request: %#v, want the last group (%d)", first[1].Msg, last)
	}
	var er ErrorReply
	if _, _, err := f.GetRange(context.Background(), root, size, last, 1, nil); !errors.As(err, &er) || er.Message != "prefetched" {
		t.Fatalf("first GetRange of the last group: %v, want the prefetched reply", err)
	}
	if _, _, err := f.GetRange(context.Background(), root, size, last, 1, nil); !errors.As(err, &er) || er.Message != "asked again" {
		t.Fatalf("second GetRange of the last group: %v, want a new request", err)
	}
}

// TestHaveAndLastServesProof: against a real server, the prefetched
// group verifies at the claimed size and costs no second request; a
// request at another size is passed on; a claim that is no size sends
// nothing.
func TestHaveAndLastServesProof(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	data, sf := cat.add(t, t.TempDir(), "movie", 3*GroupSize+GroupSize/2, true, false)
	var sent atomic.Int64 // bytes the server wrote
	p, _ := startPeer(t, func(tb testing.TB) (net.Conn, net.Conn) {
		c, s := tcpPair(tb)
		return c, countingConn{s, &sent}
	}, cat, ScopeFriend)
	root, size := sf.Tree.Root, sf.Tree.Size
	last := Groups(size) - 1

	if _, f, err := p.HaveAndLast(context.Background(), root, UnknownSize); err != nil || f != Fetcher(p) {
		t.Fatalf("an unknown size was prefetched (%v)", err)
	}
	before := sent.Load()
	_, f, err := p.HaveAndLast(context.Background(), root, size)
	if err != nil {
		t.Fatal(err)
	}
	got, proof, err := f.GetRange(context.Background(), root, size, last, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyGroup(root, size, last, got, proof); err != nil {
		t.Fatalf("prefetched group: %v", err)
	}
	if !bytes.Equal(got, data[last*GroupSize:]) {
		t.Fatal("prefetched group: data differs")
	}
	if n := sent.Load() - before; n > GroupSize {
		t.Fatalf("server sent %d bytes for a last group of %d: asked twice", n, len(got))
	}
	// Another group goes to the peer.
	if _, _, err := f.GetRange(context.Background(), root, size, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load() - before; n < GroupSize+int64(len(got)) {
		t.Fatalf("server sent %d bytes after group 0 was asked for", n)
	}
}

// countingConn counts the bytes written to it.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// TestFindRequestClaimsSizeUntilProven: a download asks its Finder with
// the link's size until a source proves it, and without one after.
func TestFindRequestClaimsSizeUntilProven(t *testing.T) {
	e := newDLEnv(t)
	data, link := e.file("talk.ogg", dlSize)
	var finds atomic.Int64
	late := newTestSource("late")
	late.offer = func() bool { return finds.Add(1) > 2 } // not at first
	// A slow source keeps the download going while the engine looks for
	// more.
	late.wrap = waitThen(nil, 150*time.Millisecond)
	other := newTestSource("other")
	other.offer = func() bool { return finds.Load() > 6 }
	e.finder.set(late, other)
	m := e.manager(testTuning)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	checkDone(t, m, waitDone(t, m, link.Root), data)
	reqs := e.finder.requestsOf(link.Root)
	if len(reqs) < 3 {
		t.Fatalf("%d requests to the Finder", len(reqs))
	}
	if reqs[0].ClaimedSize != dlSize || reqs[1].ClaimedSize != dlSize {
		t.Fatalf("requests before any source: claimed sizes %d, %d, want %d", reqs[0].ClaimedSize, reqs[1].ClaimedSize, dlSize)
	}
	proven := 0
	for _, r := range reqs[3:] {
		if r.ClaimedSize == UnknownSize {
			proven++
		} else {
			t.Fatalf("a request after the size was proven claimed %d", r.ClaimedSize)
		}
	}
	if proven == 0 {
		t.Fatalf("no request after the size was proven (%d in all)", len(reqs))
	}
}
