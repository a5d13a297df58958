package sim

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
)

// Graph kinds accepted by NewGraph.
const (
	// GraphSmallWorld is a Watts–Strogatz graph: a ring lattice in which
	// each node is joined to its Degree/2 nearest nodes on each side, with
	// each edge rewired to a random node with probability Rewire.
	GraphSmallWorld = "smallworld"
	// GraphScaleFree is a Barabási–Albert graph: each new node joins
	// Degree/2 existing nodes chosen in proportion to their degree.
	GraphScaleFree = "scalefree"
	// GraphRing is the ring lattice alone (a small world never rewired):
	// Degree 2 is a plain cycle.
	GraphRing = "ring"
)

// DefaultRewire is the Watts–Strogatz rewiring probability: enough
// shortcuts for short paths while friends still mostly share friends.
const DefaultRewire = 0.1

// Graph is an undirected friend graph on nodes 0..N-1: every edge is a
// friendship. Adj lists each node's friends in increasing order. A Graph
// is not modified after NewGraph returns and is safe for concurrent reads.
type Graph struct {
	// Kind is the generator that made the graph.
	Kind string
	// Adj[i] is the sorted list of node i's friends.
	Adj [][]int
}

// Edge is one friendship, A < B.
type Edge struct{ A, B int }

// NewGraph builds a connected graph of n nodes and average degree about
// degree with the generator kind, deterministically from seed. rewire is
// the small-world rewiring probability (ignored by the others). If
// rewiring cut the graph in two, NewGraph joins each other component to
// the largest by one extra edge, so every node can reach every other.
func NewGraph(kind string, n, degree int, rewire float64, seed uint64) (*Graph, error) {
	if n < 2 {
		return nil, fmt.Errorf("building %s graph: need at least 2 nodes, got %d", kind, n)
	}
	if degree < 2 || degree%2 != 0 || degree >= n {
		return nil, fmt.Errorf("building %s graph: degree must be even, at least 2 and below the number of nodes, got %d", kind, degree)
	}
	rng := mrand.New(mrand.NewPCG(seed, 0x6b697468)) // "kith"
	g := &Graph{Kind: kind, Adj: make([][]int, n)}
	set := newEdgeSet(n)
	switch kind {
	case GraphRing:
		ringLattice(set, n, degree)
	case GraphSmallWorld:
		ringLattice(set, n, degree)
		rewireEdges(set, n, degree, rewire, rng)
	case GraphScaleFree:
		barabasiAlbert(set, n, degree/2, rng)
	default:
		return nil, fmt.Errorf("building graph: unknown kind %q: use %s, %s or %s", kind, GraphSmallWorld, GraphScaleFree, GraphRing)
	}
	for i := range n {
		g.Adj[i] = set.neighbours(i)
	}
	g.connect()
	return g, nil
}

// edgeSet is an adjacency set used while building.
type edgeSet struct{ adj []map[int]bool }

func newEdgeSet(n int) *edgeSet {
	s := &edgeSet{adj: make([]map[int]bool, n)}
	for i := range s.adj {
		s.adj[i] = make(map[int]bool)
	}
	return s
}

func (s *edgeSet) has(a, b int) bool { return s.adj[a][b] }
func (s *edgeSet) add(a, b int)      { s.adj[a][b], s.adj[b][a] = true, true }
func (s *edgeSet) del(a, b int)      { delete(s.adj[a], b); delete(s.adj[b], a) }

func (s *edgeSet) neighbours(i int) []int {
	out := make([]int, 0, len(s.adj[i]))
	for j := range s.adj[i] {
		out = append(out, j)
	}
	slices.Sort(out)
	return out
}

func ringLattice(s *edgeSet, n, degree int) {
	for i := range n {
		for j := 1; j <= degree/2; j++ {
			s.add(i, (i+j)%n)
		}
	}
}

// rewireEdges is the Watts–Strogatz step: each lattice edge (i, i+j) is,
// with probability p, replaced by (i, k) for a random k that is neither i
// nor already a friend of i. Edges are visited in a fixed order so the
// result depends only on the seed.
func rewireEdges(s *edgeSet, n, degree int, p float64, rng *mrand.Rand) {
	for j := 1; j <= degree/2; j++ {
		for i := range n {
			b := (i + j) % n
			if !s.has(i, b) || rng.Float64() >= p {
				continue
			}
			if len(s.adj[i]) >= n-1 {
				continue
			}
			k := rng.IntN(n)
			for k == i || s.has(i, k) {
				k = rng.IntN(n)
			}
			s.del(i, b)
			s.add(i, k)
		}
	}
}

// barabasiAlbert starts from a clique of m+1 nodes and joins each further
// node to m distinct nodes picked with probability proportional to their
// degree (by sampling the list of edge ends).
func barabasiAlbert(s *edgeSet, n, m int, rng *mrand.Rand) {
	var ends []int
	for i := 0; i <= m && i < n; i++ {
		for j := 0; j < i; j++ {
			s.add(i, j)
			ends = append(ends, i, j)
		}
	}
	for v := m + 1; v < n; v++ {
		picked := make([]int, 0, m)
		for len(picked) < m {
			u := ends[rng.IntN(len(ends))]
			if !slices.Contains(picked, u) {
				picked = append(picked, u)
			}
		}
		for _, u := range picked {
			s.add(v, u)
			ends = append(ends, v, u)
		}
	}
}

// connect joins every component to the largest by one edge, from each
// component's lowest node to the largest's lowest node.
func (g *Graph) connect() {
	comp := g.components()
	if len(comp) <= 1 {
		return
	}
	big := 0
	for i, c := range comp {
		if len(c) > len(comp[big]) {
			big = i
		}
	}
	root := comp[big][0]
	for i, c := range comp {
		if i == big {
			continue
		}
		a := c[0]
		g.Adj[a] = append(g.Adj[a], root)
		slices.Sort(g.Adj[a])
		g.Adj[root] = append(g.Adj[root], a)
		slices.Sort(g.Adj[root])
	}
}

// components returns the connected components, each sorted, in order of
// their lowest node.
func (g *Graph) components() [][]int {
	seen := make([]bool, len(g.Adj))
	var out [][]int
	for s := range g.Adj {
		if seen[s] {
			continue
		}
		var c []int
		queue := []int{s}
		seen[s] = true
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			c = append(c, v)
			for _, w := range g.Adj[v] {
				if !seen[w] {
					seen[w] = true
					queue = append(queue, w)
				}
			}
		}
		slices.Sort(c)
		out = append(out, c)
	}
	return out
}

// N returns the number of nodes.
func (g *Graph) N() int { return len(g.Adj) }

// Edges returns every friendship once, in increasing order.
func (g *Graph) Edges() []Edge {
	var out []Edge
	for a, ns := range g.Adj {
		for _, b := range ns {
			if a < b {
				out = append(out, Edge{a, b})
			}
		}
	}
	return out
}

// MeanDegree returns the average number of friends.
func (g *Graph) MeanDegree() float64 {
	return float64(2*len(g.Edges())) / float64(g.N())
}

// Connected reports whether every node can reach every other.
func (g *Graph) Connected() bool { return len(g.components()) == 1 }

// Distances returns the hop distance from src to every node, -1 for
// nodes it cannot reach.
func (g *Graph) Distances(src int) []int {
	d := make([]int, g.N())
	for i := range d {
		d[i] = -1
	}
	d[src] = 0
	queue := []int{src}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range g.Adj[v] {
			if d[w] < 0 {
				d[w] = d[v] + 1
				queue = append(queue, w)
			}
		}
	}
	return d
}

// IsFriend reports whether a and b are friends.
func (g *Graph) IsFriend(a, b int) bool {
	_, ok := slices.BinarySearch(g.Adj[a], b)
	return ok
}
