// Package friendlinktest holds fixtures for tests of friend links and of
// the services built on them: an in-memory friend list.
package friendlinktest

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Friends is an in-memory friend list: it implements friendlink.Friends
// (and tunnels.Friends, chat.LobbyFriends, f2f's gater's list). The zero
// value is an empty list; its methods are safe for concurrent use.
type Friends struct {
	set sync.Map // peer.ID -> struct{}
}

// Add makes p a friend.
func (f *Friends) Add(p peer.ID) { f.set.Store(p, struct{}{}) }

// Remove makes p a stranger.
func (f *Friends) Remove(p peer.ID) { f.set.Delete(p) }

// IsFriend reports whether p was added and not removed.
func (f *Friends) IsFriend(p peer.ID) bool {
	_, ok := f.set.Load(p)
	return ok
}

// IDs returns the friends, in no order.
func (f *Friends) IDs() []peer.ID {
	var out []peer.ID
	f.set.Range(func(k, _ any) bool {
		out = append(out, k.(peer.ID))
		return true
	})
	return out
}

// WaitFor polls cond until it holds, and fails t if it does not within
// 15 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// PeerMemory returns the memory h's resource manager has reserved for p
// (its connections' and streams' buffers and queues), 0 if p has no
// scope.
func PeerMemory(h host.Host, p peer.ID) (mem int64) {
	h.Network().ResourceManager().ViewPeer(p, func(s network.PeerScope) error {
		mem = s.Stat().Memory
		return nil
	})
	return mem
}
