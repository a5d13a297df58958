package f2f

import (
	"testing"
	"time"

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
			if got := c.ConnState().Security; got != tls.ID {
				t.Errorf("%s's connection to its friend (%s): security %q, want %q", side.name, c.RemoteMultiaddr(), got, tls.ID)
			}
		}
	}
}
