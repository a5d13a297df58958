package share

import (
	"context"
	"sync"
	"testing"
	"time"
)

// proofGate is a source's Fetcher wrapper that holds the reply to the
// last group (the size proof) until a request for group 0 arrived, or
// for wait, and records whether it did.
type proofGate struct {
	last int64
	wait time.Duration

	mu       sync.Mutex
	first    chan struct{} // closed at the first request for group 0
	sawFirst bool          // group 0 was asked before the proof was answered
	sizes    []int64       // the size of each request for group 0
}

func newProofGate(size int64, wait time.Duration) *proofGate {
	return &proofGate{last: Groups(size) - 1, wait: wait, first: make(chan struct{})}
}

func (g *proofGate) wrap(p *Peer, _ func()) Fetcher {
	return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
		switch first {
		case 0:
			g.mu.Lock()
			if len(g.sizes) == 0 {
				close(g.first)
			}
			g.sizes = append(g.sizes, size)
			g.mu.Unlock()
		case g.last:
			t := time.NewTimer(g.wait)
			select {
			case <-g.first:
				g.mu.Lock()
				g.sawFirst = true
				g.mu.Unlock()
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		return p.GetRange(ctx, root, size, first, count, buf)
	})
}

// TestSpeculationRidesWithProof: a source marked Speculate is asked for
// its first ranges before its size proof is answered, and those replies
// complete the download with nothing fetched twice; an unmarked source
// is asked for them only after the proof, as before.
func TestSpeculationRidesWithProof(t *testing.T) {
	for _, tc := range []struct {
		name      string
		speculate bool
	}{
		{"marked", true},
		{"unmarked", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			e := newDLEnv(t)
			data, link := e.file("far.bin", 12*GroupSize+99)
			gate := newProofGate(link.Size, 300*time.Millisecond)
			far := newTestSource("far")
			far.speculate = tc.speculate
			far.wrap = gate.wrap
			e.finder.set(far)
			tu := Tuning{RangeGroups: 2, Window: 4, StallTimeout: 5 * time.Second, SourceRefresh: time.Minute}
			m := e.manager(tu)
			if _, err := m.Add(link, ""); err != nil {
				t.Fatal(err)
			}
			info := waitDone(t, m, link.Root)
			checkDone(t, m, info, data)
			gate.mu.Lock()
			saw, sizes := gate.sawFirst, gate.sizes
			gate.mu.Unlock()
			if saw != tc.speculate {
				t.Fatalf("group 0 asked before the size proof was answered: %v, want %v", saw, tc.speculate)
			}
			if len(sizes) != 1 || sizes[0] != link.Size {
				t.Fatalf("group 0 asked %d times, at sizes %v; want once at %d", len(sizes), sizes, link.Size)
			}
			if info.DuplicateGroups != 0 || info.FetchedGroups != Groups(link.Size) {
				t.Fatalf("fetched %d groups (%d twice) of %d", info.FetchedGroups, info.DuplicateGroups, Groups(link.Size))
			}
		})
	}
}

// TestSpeculationDroppedOnWrongClaim: a marked source that claims the
// link's size, which is wrong, is asked for the first window at that
// size; once an honest source proves the real size, the liar is refused
// and the replies it sent are never written: the download completes with
// the real file from the honest source alone.
func TestSpeculationDroppedOnWrongClaim(t *testing.T) {
	noLeaks(t)
	e := newDLEnv(t)
	data, link := e.file("claimed.bin", 10*GroupSize+5)
	real := link.Size
	link.Size = 14*GroupSize + 5 // the first groups are the same bytes at either size
	gate := newProofGate(link.Size, 300*time.Millisecond)
	liar := newTestSource("liar")
	liar.speculate = true
	liar.wrap = gate.wrap
	liar.have = func(h HaveReply) HaveReply { h.Size = link.Size; return h }
	honest := newTestSource("honest")
	e.finder.set(liar, honest)
	tu := Tuning{RangeGroups: 2, Window: 4, StallTimeout: 5 * time.Second, SourceRefresh: time.Minute}
	m := e.manager(tu)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	info := waitDone(t, m, link.Root)
	checkDone(t, m, info, data)
	if info.Size != real {
		t.Fatalf("size %d, want %d", info.Size, real)
	}
	gate.mu.Lock()
	asked := len(gate.sizes)
	gate.mu.Unlock()
	if asked == 0 {
		t.Fatal("the marked source was not asked for group 0 at the claimed size: the test shows nothing")
	}
	for _, s := range info.Sources {
		if s.Name == "liar" && s.Bytes > 0 {
			t.Fatalf("%d bytes from the liar were written", s.Bytes)
		}
	}
	refused := false
	for _, s := range info.Sources {
		refused = refused || s.Name == "liar" && s.Dropped != ""
	}
	if !refused {
		t.Fatalf("the liar was not refused: %+v", info.Sources)
	}
}
