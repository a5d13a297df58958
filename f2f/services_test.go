package f2f

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

func TestServiceOf(t *testing.T) {
	for pid, want := range map[protocol.ID]string{
		"/kith/chat/1":      "kith.chat",
		"/kith/kad/2.0.0":   "kith.kad",
		"/kith/":            "",
		"/ipfs/id/1.0.0":    "",
		"/libp2p/dcutr":     "",
		"/kith/tunnel/1":    "kith.tunnel",
		"/kithx/chat/1":     "",
		"/kith/lobby/1/sub": "kith.lobby",
		"/kith/share/1":     "kith.share",
	} {
		if got := ServiceOf(pid); got != want {
			t.Errorf("ServiceOf(%q) = %q, want %q", pid, got, want)
		}
	}
}

// TestStreamsInServiceScopes: a kith protocol's streams, both ends, are
// in their resource-manager service scope, and the memory a handler
// reserves on its stream counts in the service's usage.
func TestStreamsInServiceScopes(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) { testStreamsInServiceScopes(t, transport) })
	}
}

func testStreamsInServiceScopes(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const pid protocol.ID = "/kith/scoped/1"
	const reserved = 1 << 20
	v, m := newPeer(t, transport), newPeer(t, transport)
	befriend(v, m)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(v, m.id) && online(m, v.id) })
	held := make(chan struct{})
	defer close(held)
	v.host.SetStreamHandler(pid, func(s network.Stream) {
		if err := s.Scope().ReserveMemory(reserved, network.ReservationPriorityAlways); err != nil {
			s.Reset()
			return
		}
		s.Write([]byte{1})
		<-held
		s.Reset()
	})
	s, err := m.host.NewStream(ctx, v.id, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if got := s.Scope().Stat(); got.NumStreamsOutbound != 1 {
		t.Fatalf("outbound stream scope: %+v", got)
	}
	view := func(p *testPeer) network.ScopeStat {
		var st network.ScopeStat
		if err := p.host.Network().ResourceManager().ViewService("kith.scoped", func(s network.ServiceScope) error {
			st = s.Stat()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := view(v); st.NumStreamsInbound != 1 || st.Memory < reserved {
		t.Errorf("the handler's service scope: %+v, want 1 inbound stream and %d bytes", st, reserved)
	}
	if st := view(m); st.NumStreamsOutbound != 1 {
		t.Errorf("the opener's service scope: %+v, want 1 outbound stream", st)
	}
}
