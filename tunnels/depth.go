package tunnels

import (
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
)

// depthQSD is the distribution of the depth a node emits, the same for an
// origin and for a relay at any distance from it: the quasi-stationary
// distribution of the forwarding rule (see the package documentation).
// depthQSD[d] is the probability of depth d.
var depthQSD = quasiStationary()

// keepProb is the probability that a relay forwards depth d unchanged:
// at depth 0, that it forwards it at all (on each friend link; the Router
// makes that choice once per pair of links, see Router.forwards).
func keepProb(d int) float64 {
	switch {
	case d >= MaxDepth:
		return DepthKeepAtMax
	case d >= 1:
		return DepthKeepBelowMax
	}
	return DepthKeepAtZero
}

// quasiStationary solves nu T = lambda nu for the forwarding kernel T, with
// lambda = keepProb(MaxDepth). T only moves down, so the equations for
// depth d involve only d and d+1 and are solved from the top.
func quasiStationary() [MaxDepth + 1]float64 {
	var nu [MaxDepth + 1]float64
	lambda := keepProb(MaxDepth)
	nu[MaxDepth] = 1
	sum := 1.0
	for d := MaxDepth - 1; d >= 0; d-- {
		nu[d] = nu[d+1] * (1 - keepProb(d+1)) / (lambda - keepProb(d))
		sum += nu[d]
	}
	for d := range nu {
		nu[d] /= sum
	}
	return nu
}

// OriginDepth returns the depth a search or tunnel request starts with, in
// 0..MaxDepth. The origin treats it as the depth at which it "received" its
// own message and forwards it to each friend exactly as a relay does
// (ForwardDepth, and at depth 0 the router's fixed choice of links); so
// what friends see from an origin is distributed as what they see from a
// relay, even when they compare notes.
//
// The depth is drawn from the quasi-stationary distribution of
// ForwardDepth. src is the randomness; nil means crypto/rand. OriginDepth
// is safe for concurrent use if src is.
func OriginDepth(src mrand.Source) int {
	u := uniform(orCrypto(src))
	for d := MaxDepth; d > 0; d-- {
		if u < depthQSD[d] {
			return d
		}
		u -= depthQSD[d]
	}
	return 0
}

// ForwardDepth decides the depth with which a message received at depth d
// is forwarded to one friend: d-1, or d unchanged with probability
// DepthKeepAtMax at MaxDepth and DepthKeepBelowMax below it. A message at
// depth 0 is forwarded, still at depth 0, with probability DepthKeepAtZero
// (ok is false when it is not): depth 0 is not a last hop. The Router
// makes that choice for depth 0 once per pair of links instead of per
// message, and always forwards to at least one friend (see
// Router.forwards); ForwardDepth is the per-message rule it stands for. A
// depth below 0 is not forwarded; one above MaxDepth, which decoding
// refuses, is treated as MaxDepth. Call it once per friend forwarded to.
// src is the randomness; nil means crypto/rand. ForwardDepth is safe for
// concurrent use if src is.
func ForwardDepth(src mrand.Source, d int) (next int, ok bool) {
	if d < 0 {
		return 0, false
	}
	d = min(d, MaxDepth)
	u := uniform(orCrypto(src))
	if d == 0 {
		return 0, u < keepProb(0)
	}
	if u < keepProb(d) {
		return d, true
	}
	return d - 1, true
}

// uniform returns a float64 in [0, 1) with 53 random bits.
func uniform(src mrand.Source) float64 {
	return float64(src.Uint64()>>11) * 0x1p-53
}

func orCrypto(src mrand.Source) mrand.Source {
	if src == nil {
		return cryptoSource{}
	}
	return src
}

// cryptoSource is a math/rand/v2 Source backed by crypto/rand.
type cryptoSource struct{}

func (cryptoSource) Uint64() uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	return binary.LittleEndian.Uint64(b[:])
}
