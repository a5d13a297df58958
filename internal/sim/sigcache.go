package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// sigCacheEntries is how many answers each of sigCache's two
// generations holds: a lobby's JOINs, keep-alives and texts are checked
// by every member within seconds of each other, so the answers of the
// last few thousand messages are the ones asked for again; 65,536 are
// about 5 MiB.
const sigCacheEntries = 1 << 16

// sigCache is a chat.Verifier shared by all simulated nodes: the
// simulator runs every member of a lobby in one process, where N members
// checking N JOINs are N^2 ed25519 verifications on two cores, a cost a
// network of separate machines shares out. A signature check is a pure
// function of (key, message, signature), so sigCache remembers each
// answer under a SHA-256 of the three and computes a check only the
// first time any node asks for it. Every node still asks (the lobby code
// is unchanged); Asked and Computed keep the N^2 visible. It is bounded:
// two generations of sigCacheEntries answers, the older dropped when the
// newer fills.
type sigCache struct {
	mu       sync.Mutex
	cur, old map[[sha256.Size]byte]bool
	limit    int

	asked, computed atomic.Int64
}

func newSigCache(limit int) *sigCache {
	return &sigCache{cur: make(map[[sha256.Size]byte]bool), limit: limit}
}

// verify is ed25519.Verify(pub, msg, sig), remembered.
func (c *sigCache) verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	c.asked.Add(1)
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, b := range [][]byte{pub, msg, sig} {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(b))))
		h.Write(b)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	c.mu.Lock()
	ok, hit := c.cur[k]
	if !hit {
		if ok, hit = c.old[k]; hit {
			c.putLocked(k, ok)
		}
	}
	c.mu.Unlock()
	if hit {
		return ok
	}
	ok = ed25519.Verify(pub, msg, sig)
	c.computed.Add(1)
	c.mu.Lock()
	c.putLocked(k, ok)
	c.mu.Unlock()
	return ok
}

// putLocked remembers answer ok for key k. Called with c.mu held.
func (c *sigCache) putLocked(k [sha256.Size]byte, ok bool) {
	if len(c.cur) >= c.limit {
		c.old, c.cur = c.cur, make(map[[sha256.Size]byte]bool, c.limit)
	}
	c.cur[k] = ok
}

// len is how many answers c holds.
func (c *sigCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
