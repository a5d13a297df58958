package tunnels

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeName is what a poisoning friend calls its fake files: it reads as
// "invoiceexe.pdf" where bidirectional overrides are obeyed.
const fakeName = "invoice\u202efdp.exe"

// flooder makes a hostile friend of r that answers every search it is
// sent, at once, with garbage SearchResults and with fakes sealed to the
// searcher's key (perSearch of each), and returns how many it sent.
func flooder(t *testing.T, r *testNode, perSearch int) *atomic.Int64 {
	t.Helper()
	_, s := hostileFriend(t, r)
	var sent atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() { s.Reset(); <-done })
	go func() {
		defer close(done)
		mr, mw := NewMessageReader(s), NewMessageWriter(s)
		for {
			m, err := mr.Read()
			if errors.Is(err, ErrUnknownMessage) {
				continue
			}
			if err != nil {
				return
			}
			q, ok := m.(*Search)
			if !ok {
				continue
			}
			fake, err := Seal(q.ReplyKey, []Result{{Name: fakeName, Size: 1 << 20, Root: [32]byte(randBytes(32))}})
			if err != nil {
				t.Error(err)
				return
			}
			for range perSearch {
				garbage := make([]byte, len(fake))
				rand.Read(garbage)
				for _, b := range [][]byte{garbage, fake} {
					if mw.Write(&SearchResult{SearchID: q.ID, Sealed: b}) != nil {
						return
					}
					sent.Add(1)
				}
			}
		}
	}()
	return &sent
}

// countFound runs n searches from o for root, batch at a time, each
// listening for window, and counts those that got the answer of the file
// named name, and those that got a fake.
func countFound(t *testing.T, o *Router, root [32]byte, name string, n, batch int, window time.Duration) (found, fakes int) {
	t.Helper()
	var mu sync.Mutex
	for k := 0; k < n; k += batch {
		var wg sync.WaitGroup
		for range min(batch, n-k) {
			ctx, cancel := context.WithTimeout(context.Background(), window)
			ch, err := o.Search(ctx, Query{RootHash: SearchHash(root)})
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			wg.Go(func() {
				defer cancel()
				genuine, fake := false, false
				for res := range ch {
					genuine = genuine || (res.Root == root && res.Name == name)
					fake = fake || res.Name == fakeName
				}
				mu.Lock()
				if genuine {
					found++
				}
				if fake {
					fakes++
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	return found, fakes
}

// TestSearchAnswersSurviveAFlood: O - R - H, and X, a friend of relay R,
// answers every search it sees with a flood of garbage and of fakes. H's
// answer still reaches O in (nearly) every search: R takes only X's share
// of answers from X's link, and O counts only answers that open.
func TestSearchAnswersSurviveAFlood(t *testing.T) {
	share := &fakeShare{name: "real-invoice.pdf", root: [32]byte(randBytes(32)), size: 4096}
	nodes := newNet(t, 3, chainEdges(3), func(i int, c *RouterConfig) {
		if i == 2 {
			c.Searcher = share
		}
	})
	o, r := nodes[0], nodes[1]
	sent := flooder(t, r, 100)
	const searches = 20
	found, fakes := countFound(t, o.r, share.root, share.name, searches, 10, 4*time.Second)
	t.Logf("genuine answer in %d of %d searches (%d with a fake too); X sent %d answers, R dropped %d over budgets",
		found, searches, fakes, sent.Load(), r.r.Stats().ResultsDropped)
	if sent.Load() < searches*100 {
		t.Fatalf("the flooder sent only %d answers: the test proves nothing", sent.Load())
	}
	if found < searches-1 {
		t.Errorf("the genuine answer reached O in %d of %d searches under a flood, want at least %d", found, searches, searches-1)
	}
}

// TestSearchFloodStaysOnItsBranch: O - A; A - R - H with X flooding at R;
// A - H2, and A has one more friend (so A, with SearchFanout friends
// besides O, sends every search to all of them). H2 holds the file too: its answers
// reach O through A in (nearly) every search, because A gives R's link,
// which carries X's flood, its own share. (H's answers, which share R's
// link with the flood, are logged: above R they compete with X's for R's
// share, which is what per-link budgets cannot separate.)
func TestSearchFloodStaysOnItsBranch(t *testing.T) {
	share := &fakeShare{name: "real-invoice.pdf", root: [32]byte(randBytes(32)), size: 4096}
	// 0 O, 1 A, 2 R, 3 H, 4 H2, 5 a leaf of A.
	edges := [][2]int{{0, 1}, {1, 2}, {2, 3}, {1, 4}, {1, 5}}
	holders := map[int]*fakeShare{3: share, 4: {name: "real-invoice (H2).pdf", root: share.root, size: share.size}}
	nodes := newNet(t, 6, edges, func(i int, c *RouterConfig) {
		if h := holders[i]; h != nil {
			c.Searcher = h
		}
	})
	sent := flooder(t, nodes[2], 100)
	const searches = 20
	var mu sync.Mutex
	got := map[string]int{}
	for k := 0; k < searches; k += 10 {
		var wg sync.WaitGroup
		for range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			ch, err := nodes[0].r.Search(ctx, Query{RootHash: SearchHash(share.root)})
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			wg.Go(func() {
				defer cancel()
				seen := map[string]bool{}
				for res := range ch {
					seen[res.Name] = true
				}
				mu.Lock()
				for name := range seen {
					got[name]++
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	t.Logf("of %d searches: H2's answer (other branch) in %d, H's (the flood's branch) in %d, a fake in %d; X sent %d",
		searches, got[holders[4].name], got[share.name], got[fakeName], sent.Load())
	if got[holders[4].name] < searches-1 {
		t.Errorf("H2's answer reached O in %d of %d searches while a friend of another branch flooded, want at least %d",
			got[holders[4].name], searches, searches-1)
	}
}
