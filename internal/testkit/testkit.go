// Package testkit holds the fixtures that tests of kith's services share
// (chat, tunnels, internal/friendlink): an in-memory friend list, real
// libp2p hosts on 127.0.0.1, befriending and connecting them, waiting for
// a condition, and the memory a host's resource manager holds for a peer.
// Tests only import it.
package testkit

import (
	"context"
	crand "crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/f2f"
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

// Peer is a test node's key and friend list: the hosts started on it
// (Host) keep its peer ID, so a test can stop a node and start it again.
type Peer struct {
	Key     crypto.PrivKey
	ID      peer.ID
	Friends *Friends
}

// NewPeer returns a Peer with a new Ed25519 key and no friends.
func NewPeer(t testing.TB) *Peer {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Peer{Key: key, ID: id, Friends: &Friends{}}
}

// Host starts a host with p's key, listening on 127.0.0.1 TCP, with the
// f2f gater and resource manager over p.Friends (a stranger cannot even
// connect). It is closed when the test ends; closing it sooner is fine.
func (p *Peer) Host(t testing.TB) host.Host {
	t.Helper()
	h, err := f2f.NewHost(f2f.HostConfig{Key: p.Key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Gater: f2f.NewGater(p.Friends, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// PlainHost starts a libp2p host with a new key, listening on 127.0.0.1
// TCP, with libp2p's defaults and no gater: for tests of code that must
// refuse strangers itself. It is closed when the test ends.
func PlainHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Befriend makes a and b friends of each other.
func Befriend(a, b *Peer) {
	a.Friends.Add(b.ID)
	b.Friends.Add(a.ID)
}

// Connect dials b from a, and fails t if that does not succeed within 10
// seconds.
func Connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls cond until it holds, and fails t if it does not within
// the given time. The time is a bound on a failing test, not an assertion
// of speed; give it room for a loaded machine.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(within, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// Eventually polls cond until it holds or the time is up, and says
// whether it held: for a test that reports a failure with figures of its
// own.
func Eventually(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
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
