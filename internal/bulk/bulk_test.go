package bulk

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

const echo = "/kith/test/echo/1"

// slowHandshakes admits every connection, each a moment after its
// handshake: two dials made at once, one from each end, are then both
// under way before either connection is up, and both are kept (libp2p
// reuses a connection that is up when a dial starts).
type slowHandshakes struct{}

func (slowHandshakes) InterceptPeerDial(peer.ID) bool               { return true }
func (slowHandshakes) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (slowHandshakes) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (slowHandshakes) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
func (slowHandshakes) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	time.Sleep(100 * time.Millisecond)
	return true
}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.DisableRelay(),
		libp2p.ConnectionGater(slowHandshakes{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(echo, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	return h
}

func addrOf(t *testing.T, h host.Host, code int) ma.Multiaddr {
	t.Helper()
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(code); err == nil {
			return a
		}
	}
	t.Fatalf("no address with protocol %d", code)
	return nil
}

// roundTrip opens a bulk stream from a to b, checks that it echoes, and
// returns the transport of the connection it went over.
func roundTrip(t *testing.T, a, b host.Host) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := NewStream(ctx, a, b.ID(), echo)
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if s.Protocol() != echo {
		t.Errorf("protocol %q, want %q", s.Protocol(), echo)
	}
	if isDirectTCP(s.Conn().RemoteMultiaddr()) {
		return "tcp"
	}
	return "quic"
}

// TestNewStreamPrefersTCP: with a TCP and a QUIC connection to a peer, a
// bulk stream goes over TCP; with only QUIC, over QUIC; either way the
// protocol is negotiated and data flows both ways.
func TestNewStreamPrefersTCP(t *testing.T) {
	a, b := newHost(t), newHost(t)
	ctx := context.Background()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{addrOf(t, b, ma.P_QUIC_V1)}}); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, a, b); got != "quic" {
		t.Errorf("only QUIC connected: stream over %s", got)
	}
	// Both connections: dial over QUIC and TCP at once, from both ends,
	// until both exist (libp2p reuses a connection that is already up).
	both := false
	for try := 0; try < 20 && !both; try++ {
		// Both ends must see the last try's connections gone: a QUIC
		// close reaches the other end a moment later, and until then
		// its dial just returns the old connection.
		a.Network().ClosePeer(b.ID())
		b.Network().ClosePeer(a.ID())
		for i := 0; i < 100 && (len(a.Network().ConnsToPeer(b.ID())) > 0 || len(b.Network().ConnsToPeer(a.ID())) > 0); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		// Each end knows only the address it is to dial (identify
		// taught both the other's addresses).
		a.Peerstore().ClearAddrs(b.ID())
		b.Peerstore().ClearAddrs(a.ID())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{addrOf(t, b, ma.P_QUIC_V1)}})
		}()
		go func() {
			defer wg.Done()
			b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{addrOf(t, a, ma.P_TCP)}})
		}()
		wg.Wait()
		tcp, quic := false, false
		for _, c := range a.Network().ConnsToPeer(b.ID()) {
			if isDirectTCP(c.RemoteMultiaddr()) {
				tcp = true
			} else {
				quic = true
			}
		}
		both = tcp && quic

	}
	if !both {
		t.Fatal("could not get a TCP and a QUIC connection at once")
	}
	// libp2p would pick either; make QUIC the one with more streams.
	for _, c := range a.Network().ConnsToPeer(b.ID()) {
		for range 4 {
			if !isDirectTCP(c.RemoteMultiaddr()) {
				if _, err := c.NewStream(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if got := roundTrip(t, a, b); got != "tcp" {
		for _, c := range a.Network().ConnsToPeer(b.ID()) {
			t.Logf("connection %s closed=%v limited=%v streams=%d", c.RemoteMultiaddr(), c.IsClosed(), c.Stat().Limited, len(c.GetStreams()))
		}
		t.Errorf("TCP and QUIC connected: stream over %s, want tcp", got)
	}
}
