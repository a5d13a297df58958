package sim

import (
	"math"
	"slices"
	"testing"
)

func TestGraphGenerators(t *testing.T) {
	for _, tc := range []struct {
		kind      string
		n, degree int
		// exactDegree: every node has exactly degree friends.
		exactDegree bool
	}{
		{GraphRing, 50, 2, true},
		{GraphRing, 50, 8, true},
		{GraphSmallWorld, 200, 8, false},
		{GraphSmallWorld, 1000, 8, false},
		{GraphScaleFree, 200, 8, false},
		{GraphScaleFree, 1000, 4, false},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			g, err := NewGraph(tc.kind, tc.n, tc.degree, DefaultRewire, 7)
			if err != nil {
				t.Fatal(err)
			}
			if g.N() != tc.n {
				t.Fatalf("got %d nodes, want %d", g.N(), tc.n)
			}
			if !g.Connected() {
				t.Fatal("graph is not connected")
			}
			for i, adj := range g.Adj {
				if !slices.IsSorted(adj) || slices.Contains(adj, i) {
					t.Fatalf("node %d: adjacency %v unsorted or has a self loop", i, adj)
				}
				if len(slices.Compact(slices.Clone(adj))) != len(adj) {
					t.Fatalf("node %d: duplicate friends %v", i, adj)
				}
				for _, j := range adj {
					if !g.IsFriend(j, i) {
						t.Fatalf("edge %d-%d is one-way", i, j)
					}
				}
				if tc.exactDegree && len(adj) != tc.degree {
					t.Fatalf("node %d has %d friends, want %d", i, len(adj), tc.degree)
				}
			}
			if d := g.MeanDegree(); math.Abs(d-float64(tc.degree)) > 0.05*float64(tc.degree) {
				t.Fatalf("mean degree %.2f, want about %d", d, tc.degree)
			}
			again, err := NewGraph(tc.kind, tc.n, tc.degree, DefaultRewire, 7)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(g.Adj, again.Adj, slices.Equal) {
				t.Fatal("same seed gave a different graph")
			}
			other, err := NewGraph(tc.kind, tc.n, tc.degree, DefaultRewire, 8)
			if err != nil {
				t.Fatal(err)
			}
			if tc.kind != GraphRing && slices.EqualFunc(g.Adj, other.Adj, slices.Equal) {
				t.Fatal("another seed gave the same graph")
			}
		})
	}
}

func TestSmallWorldIsSmall(t *testing.T) {
	ring, err := NewGraph(GraphRing, 1000, 8, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := NewGraph(GraphSmallWorld, 1000, 8, DefaultRewire, 1)
	if err != nil {
		t.Fatal(err)
	}
	far := func(g *Graph) int { return slices.Max(g.Distances(0)) }
	if r, s := far(ring), far(sw); s*5 > r {
		t.Fatalf("rewiring should shrink the eccentricity of node 0 a lot: ring %d, small world %d", r, s)
	}
}

func TestScaleFreeHasHubs(t *testing.T) {
	g, err := NewGraph(GraphScaleFree, 1000, 8, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	maxDeg := 0
	for _, a := range g.Adj {
		maxDeg = max(maxDeg, len(a))
	}
	if maxDeg < 40 {
		t.Fatalf("largest degree %d: a Barabási–Albert graph of 1000 nodes should have hubs", maxDeg)
	}
}

func TestGraphErrors(t *testing.T) {
	for _, tc := range []struct {
		kind      string
		n, degree int
	}{
		{"lattice", 10, 2}, {GraphRing, 1, 2}, {GraphRing, 10, 3}, {GraphRing, 10, 0}, {GraphSmallWorld, 8, 8},
	} {
		if _, err := NewGraph(tc.kind, tc.n, tc.degree, DefaultRewire, 1); err == nil {
			t.Errorf("NewGraph(%q, %d, %d) did not fail", tc.kind, tc.n, tc.degree)
		}
	}
}
