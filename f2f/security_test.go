package f2f

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// TestFriendTCPUsesTLS: two kith hosts secure their TCP connection with
// TLS 1.3 (AES-GCM, the cheaper cipher where the CPU has AES; Noise is the
// second choice, for peers that offer only it).
func TestFriendTCPUsesTLS(t *testing.T) {
	a, b := newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(a, b)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(a, b.id) && online(b, a.id) })
	eachFriendConn(t, a, b, func(name string, _ *testPeer, c network.Conn) {
		if got := c.ConnState().Security; got != tls.ID {
			t.Errorf("%s's connection to its friend (%s): security %q, want %q", name, c.RemoteMultiaddr(), got, tls.ID)
		}
	})
}

// eachFriendConn calls f for every connection of a to b and of b to a,
// named "a" and "b" by the side it is of; a side with none fails t.
func eachFriendConn(t *testing.T, a, b *testPeer, f func(name string, side *testPeer, c network.Conn)) {
	t.Helper()
	for _, side := range []struct {
		name  string
		p     *testPeer
		other peer.ID
	}{{"a", a, b.id}, {"b", b, a.id}} {
		conns := side.p.host.Network().ConnsToPeer(side.other)
		if len(conns) == 0 {
			t.Fatalf("%s has no connection to its friend", side.name)
		}
		for _, c := range conns {
			f(side.name, side.p, c)
		}
	}
}
