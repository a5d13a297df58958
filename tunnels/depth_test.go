package tunnels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDepthQuasiStationary checks nu T = lambda nu analytically.
func TestDepthQuasiStationary(t *testing.T) {
	lambda := DepthKeepAtMax
	var out [MaxDepth + 1]float64
	out[0] += depthQSD[0] * keepProb(0) // the rest at depth 0 is not sent
	for d := 1; d <= MaxDepth; d++ {
		out[d] += depthQSD[d] * keepProb(d)
		out[d-1] += depthQSD[d] * (1 - keepProb(d))
	}
	sum := 0.0
	for d := range out {
		sum += depthQSD[d]
		if math.Abs(out[d]-lambda*depthQSD[d]) > 1e-12 {
			t.Errorf("depth %d: nu T = %v, lambda nu = %v", d, out[d], lambda*depthQSD[d])
		}
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("nu sums to %v", sum)
	}
	// What is not sent on: a path ends at a hop with probability
	// 1-lambda, whatever depth it started from.
	if dies := depthQSD[0] * (1 - keepProb(0)); math.Abs(dies-(1-lambda)) > 1e-12 {
		t.Errorf("nu(0)(1-k(0)) = %v, want 1-lambda = %v", dies, 1-lambda)
	}
	t.Logf("nu = %.3f", depthQSD)
}

// emitted simulates what a node k hops from the origin sends on one link
// (k = 0 is the origin itself). ok is false if the message died before.
func emitted(src rand.Source, k int) (int, bool) {
	d := OriginDepth(src)
	for range k + 1 {
		var ok bool
		if d, ok = ForwardDepth(src, d); !ok {
			return 0, false
		}
	}
	return d, true
}

func histogram(t *testing.T, n int, draw func() (int, bool)) [MaxDepth + 1]float64 {
	t.Helper()
	var h [MaxDepth + 1]float64
	got := 0
	for range n {
		d, ok := draw()
		if !ok {
			continue
		}
		if d < 0 || d > MaxDepth {
			t.Fatalf("depth %d out of range", d)
		}
		h[d]++
		got++
	}
	for d := range h {
		h[d] /= float64(got)
	}
	return h
}

func maxDiff(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

// TestDepthOriginLooksLikeRelay: the depth a neighbour sees from an origin
// and from relays 1, 2 and 3 hops from it have the same histogram.
func TestDepthOriginLooksLikeRelay(t *testing.T) {
	const n, tol = 400_000, 0.006 // sd of a share near 0.2 is 0.0006
	src := rand.NewPCG(1, 2)
	origin := histogram(t, n, func() (int, bool) { return emitted(src, 0) })
	if d := maxDiff(origin[:], depthQSD[:]); d > tol {
		t.Errorf("origin histogram %.3f differs from nu %.3f by %.4f", origin, depthQSD, d)
	}
	for k := 1; k <= 3; k++ {
		relay := histogram(t, n, func() (int, bool) { return emitted(src, k) })
		if d := maxDiff(origin[:], relay[:]); d > tol {
			t.Errorf("relay at %d hops: histogram %.3f differs from origin's %.3f by %.4f", k, relay, origin, d)
		}
	}
}

// TestDepthJointAcrossFriends: two friends of a node comparing the depths
// each got (or that one got none) cannot tell an origin from a relay
// either.
func TestDepthJointAcrossFriends(t *testing.T) {
	const n, tol = 400_000, 0.006
	const none = MaxDepth + 1 // the friend was sent nothing
	src := rand.NewPCG(3, 4)
	send := func(v int) int {
		if d, ok := ForwardDepth(src, v); ok {
			return d
		}
		return none
	}
	joint := func(relay bool) []float64 {
		h := make([]float64, (none+1)*(none+1))
		got := 0
		for range n {
			v := OriginDepth(src)
			if relay { // v is what the relay's predecessor sent
				if v = send(OriginDepth(src)); v == none {
					continue
				}
			}
			a, b := send(v), send(v)
			if a == none && b == none {
				continue // neither friend sees anything
			}
			h[a*(none+1)+b]++
			got++
		}
		for i := range h {
			h[i] /= float64(got)
		}
		return h
	}
	if d := maxDiff(joint(false), joint(true)); d > tol {
		t.Errorf("joint depth histograms of origin and relay differ by %.4f", d)
	}
}

// TestDepthNaiveSchemeIsDetectable shows the test has power: an origin
// starting uniformly in MaxDepth-2..MaxDepth with relays decrementing with
// one probability is told apart by the same measure.
func TestDepthNaiveSchemeIsDetectable(t *testing.T) {
	const n = 400_000
	src := rand.NewPCG(5, 6)
	start := func() int { return MaxDepth - 2 + int(src.Uint64()%3) }
	forward := func(d int) int {
		if uniform(src) < 0.5 {
			return d - 1
		}
		return d
	}
	origin := histogram(t, n, func() (int, bool) { return start(), true })
	relay := histogram(t, n, func() (int, bool) { return forward(start()), true })
	if d := maxDiff(origin[:], relay[:]); d < 0.1 {
		t.Errorf("naive scheme differs by only %.4f", d)
	}
}

// TestDepthReach: a path goes on past each hop with probability
// DepthKeepAtMax, from the origin on.
func TestDepthReach(t *testing.T) {
	const n = 200_000
	src := rand.NewPCG(7, 8)
	for k := 1; k <= 6; k++ {
		alive := 0
		for range n {
			if _, ok := emitted(src, k); ok {
				alive++
			}
		}
		// emitted(k) is sent to hop k+1; reaching it needs k+1 sends,
		// the origin's own included, each made with probability lambda.
		want := math.Pow(DepthKeepAtMax, float64(k+1))
		if got := float64(alive) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("hop %d reached with %.3f, want %.3f", k+1, got, want)
		}
	}
}

func TestForwardDepthRules(t *testing.T) {
	src := rand.NewPCG(9, 10)
	for _, d := range []int{-3, -1} {
		if _, ok := ForwardDepth(src, d); ok {
			t.Errorf("depth %d forwarded", d)
		}
	}
	kept := 0
	const draws = 10_000
	for range draws {
		if next, ok := ForwardDepth(src, 0); ok {
			if next != 0 {
				t.Fatalf("depth 0 forwarded at depth %d", next)
			}
			kept++
		}
		for d := 1; d <= MaxDepth+3; d++ {
			next, ok := ForwardDepth(src, d)
			in := min(d, MaxDepth)
			if !ok || next > MaxDepth || (next != in && next != in-1) {
				t.Fatalf("ForwardDepth(%d) = %d, %v", d, next, ok)
			}
		}
		if v := OriginDepth(src); v < 0 || v > MaxDepth {
			t.Fatalf("OriginDepth = %d", v)
		}
	}
	// Depth 0 is no last hop: it goes on with probability DepthKeepAtZero.
	if got := float64(kept) / draws; math.Abs(got-DepthKeepAtZero) > 0.02 {
		t.Errorf("depth 0 forwarded with probability %.3f, want %v", got, DepthKeepAtZero)
	}
	// The crypto source works too.
	if v := OriginDepth(nil); v < 0 || v > MaxDepth {
		t.Fatalf("OriginDepth(nil) = %d", v)
	}
	if _, ok := ForwardDepth(nil, 3); !ok {
		t.Fatal("ForwardDepth(nil, 3) not forwarded")
	}
}
