package tunnels

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSpreadReachesFriendOfSmallNode: a node with SearchFanout friends
// or fewer besides a search's sender sends it to each of them, even once
// other friends sent it the search too, since one of its friends may have
// no other way to it. O's three friends A, B and C send O's search at
// once to X, whose only other friend D holds the file; X waits a keyed
// delay of up to 1 s before its copies, by which time B and C (besides A,
// the first) sent it the search. Before, X then sent no copy at all
// (SpreadHeardStop applied to every node) and D was found by chance.
func TestSpreadReachesFriendOfSmallNode(t *testing.T) {
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	share := &fakeShare{name: strings.Join(words, "-") + ".bin", root: [32]byte(randBytes(32)), size: 4096}
	// 0 O, 1-3 A-C, 4 X, 5 D.
	edges := [][2]int{{0, 1}, {0, 2}, {0, 3}, {1, 4}, {2, 4}, {3, 4}, {4, 5}}
	nodes := newNet(t, 6, edges, func(i int, c *RouterConfig) {
		c.SearchDelay = 0
		c.HolderDelay = 50 * time.Millisecond
		switch i {
		case 4:
			c.SearchDelay = time.Second
		case 5:
			c.Searcher = share
		}
	})
	found := 0
	for _, w := range words { // a query each: a draw of X's delay each
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ch, err := nodes[0].r.Search(ctx, Query{Keywords: w})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if res, ok := <-ch; ok && res.Root == share.root {
			found++
		}
		cancel()
	}
	heardAll := 0
	for i := 1; i <= 3; i++ {
		for _, m := range nodes[i].tap.messages(t, nodes[4].h.ID(), false) {
			if _, ok := m.(*Search); ok {
				heardAll++
			}
		}
	}
	t.Logf("X got %d copies from A, B and C for %d searches", heardAll, len(words))
	if heardAll < 3*len(words) {
		t.Fatalf("X got %d copies from A, B and C, want %d: the test proves nothing", heardAll, 3*len(words))
	}
	if found != len(words) {
		t.Fatalf("%d of %d searches found the file of X's only other friend", found, len(words))
	}
}
