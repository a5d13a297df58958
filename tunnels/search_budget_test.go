package tunnels

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSearchAnswerBudgetAcrossRelays: P, a hand-made friend of relay R,
// sends R searches for a file that A, behind R, and A's three friends
// A1-A3 all hold (P - R - A - {A1, A2, A3}). A search that carries an
// answer budget of 1 (Search.Answers) gets P one answer: R gives A a
// budget of 1, A gives each of A1-A3 one too and sends back its budget
// and at most the first answer of each friend (the first of each link is
// always taken, so that a flooding friend cannot starve the others), its
// own only while its budget lasts, and R takes one from A. A search with no budget (a
// sender that does not know the field) is answered by all four holders,
// as before. On the router before answer budgets, P got four answers
// either way.
func TestSearchAnswerBudgetAcrossRelays(t *testing.T) {
	root := [32]byte(randBytes(32))
	// 0 R, 1 A, 2-4 A1-A3.
	edges := [][2]int{{0, 1}, {1, 2}, {1, 3}, {1, 4}}
	nodes := newNet(t, 5, edges, func(i int, c *RouterConfig) {
		if i >= 1 {
			name := fmt.Sprintf("held-by-%d.bin", i)
			if i == 4 { // a long name: its answers are as long as the others'
				name = strings.Repeat("long-", 40) + name
			}
			c.Searcher = &fakeShare{name: name, root: root, size: 4096}
		}
		c.HolderDelay = 300 * time.Millisecond
	})
	rn, a := nodes[0], nodes[1]
	_, s := hostileFriend(t, rn)
	answers := make(chan SearchID, 64)
	var otherLength atomic.Int32 // answers not of one SealRootPad block
	go func() {
		mr := NewMessageReader(s)
		for {
			m, err := mr.Read()
			if errors.Is(err, ErrUnknownMessage) {
				continue
			}
			if err != nil {
				return
			}
			if res, ok := m.(*SearchResult); ok {
				if len(res.Sealed) != sealHandshakeBytes+SealRootPad {
					otherLength.Add(1)
				}
				answers <- res.SearchID
			}
		}
	}()
	mw := NewMessageWriter(s)
	ask := func(budget int) (SearchID, int) {
		t.Helper()
		priv, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		q := &Search{Depth: MaxDepth, RootHash: SearchHash(root), ReplyKey: [32]byte(priv.Public), Answers: budget}
		rand.Read(q.ID[:])
		if err := mw.Write(q); err != nil {
			t.Fatal(err)
		}
		got := 0
		deadline := time.After(4 * time.Second)
		for {
			select {
			case id := <-answers:
				if id == q.ID {
					got++
				}
			case <-deadline:
				return q.ID, got
			}
		}
	}

	const rounds = 3
	budgeted := map[SearchID]bool{}
	for k := range rounds {
		id, got := ask(1)
		budgeted[id] = true
		if got != 1 {
			t.Errorf("round %d: a search with a budget of 1 answer got P %d answers through R, want 1", k, got)
		}
		if _, got := ask(0); got != 4 {
			t.Errorf("round %d: a search with no budget got P %d answers, want 4 (every holder)", k, got)
		}
	}

	// What the budget looked like on the wire, and what A sent R back.
	for _, m := range rn.tap.messages(t, a.h.ID(), false) {
		if q, ok := m.(*Search); ok {
			want := MaxResultsPerSearch // R's one other friend gets all of its budget
			if budgeted[q.ID] {
				want = 1
			}
			if q.Answers != want {
				t.Errorf("R gave A a budget of %d answers, want %d", q.Answers, want)
			}
		}
	}
	for i := 2; i <= 4; i++ {
		for _, m := range a.tap.messages(t, nodes[i].h.ID(), false) {
			if q, ok := m.(*Search); ok {
				want := MaxResultsPerSearch / 3
				if budgeted[q.ID] {
					want = 1
				}
				if q.Answers != want {
					t.Errorf("A gave A%d a budget of %d answers, want %d", i-1, q.Answers, want)
				}
			}
		}
	}
	back := map[SearchID]int{}
	for _, m := range a.tap.messages(t, rn.h.ID(), false) {
		if res, ok := m.(*SearchResult); ok {
			back[res.SearchID]++
		}
	}
	for id := range budgeted {
		if back[id] > 1+3 {
			t.Errorf("A sent R %d answers to a search with a budget of 1, want at most 4 (its budget, and the first of each friend)", back[id])
		}
	}
	t.Logf("answers A sent R per budgeted search: %v", back)
	if n := otherLength.Load(); n > 0 {
		t.Errorf("%d answers to a search by root were not one block of %d bytes sealed", n, SealRootPad)
	}
}
