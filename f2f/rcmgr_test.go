package f2f

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// TestResourceLimitsFixedStreams: the stream limits a node runs with are
// kith's, the same on a 1 GiB machine as on a 64 GiB one, and large
// enough for tunnels.MaxTunnels relayed tunnels (1024: an inbound and an
// outbound stream each, of one protocol).
func TestResourceLimitsFixedStreams(t *testing.T) {
	defaults := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&defaults)
	small := resourceLimits(defaults.Scale(1<<30, 256), nil).ToPartialLimitConfig()
	large := resourceLimits(defaults.Scale(64<<30, 65536), nil).ToPartialLimitConfig()
	for name, l := range map[string]rcmgr.PartialLimitConfig{"1 GiB": small, "64 GiB": large} {
		for what, got := range map[string]rcmgr.LimitVal{
			"system inbound":            l.System.StreamsInbound,
			"system outbound":           l.System.StreamsOutbound,
			"protocol inbound":          l.ProtocolDefault.StreamsInbound,
			"protocol outbound":         l.ProtocolDefault.StreamsOutbound,
			"transient":                 l.Transient.Streams,
			"protocol per peer inbound": l.ProtocolPeerDefault.StreamsInbound,
		} {
			want := rcmgr.LimitVal(MaxStreams)
			if what == "protocol per peer inbound" {
				want = InboundStreamsPerPeer
			}
			if got != want {
				t.Errorf("%s machine: %s streams limit %v, want %v", name, what, got, want)
			}
		}
		if l.System.StreamsInbound < 2*1024 {
			t.Errorf("%s machine: %v inbound streams cannot carry 1024 relayed tunnels", name, l.System.StreamsInbound)
		}
	}
	rm, err := NewResourceManager(nil)
	if err != nil {
		t.Fatal(err)
	}
	rm.Close()
}

// TestProtocolPeerStreamCap: a per-protocol-per-peer cap given to NewHost
// refuses, on a real host, the friend's stream over it, while the streams
// under it and the friend's other protocols keep working.
func TestProtocolPeerStreamCap(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) { testProtocolPeerStreamCap(t, transport) })
	}
}

func testProtocolPeerStreamCap(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const capped protocol.ID = "/kith/capped/1"
	const limit = 2
	v := newPeerWith(t, transport, func(p *testPeer) { p.protoStreams = map[protocol.ID]int{capped: limit} })
	m := newPeer(t, transport)
	befriend(v, m)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(v, m.id) && online(m, v.id) })
	held := make(chan struct{})
	defer close(held)
	v.host.SetStreamHandler(capped, func(s network.Stream) {
		s.Write([]byte{1})
		gone := make(chan struct{})
		go func() { io.Copy(io.Discard, s); close(gone) }()
		select { // hold the stream open while the opener does
		case <-held:
		case <-gone:
		}
		s.Reset()
	})
	// A stream is refused when the friend resets it; one that is slow to
	// answer (a loaded machine) is given up and tried again, so that it
	// is not counted either way.
	var open, refused, slow int
	for open+refused < limit+2 && slow < 5 {
		s, err := m.host.NewStream(ctx, v.id, capped)
		if err != nil {
			refused++
			continue
		}
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			s.Reset()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				slow++
				time.Sleep(time.Second) // the friend sees the reset
				continue
			}
			refused++
			continue
		}
		defer s.Reset()
		open++
	}
	t.Logf("%d streams open, %d refused", open, refused)
	if open != limit || refused != 2 {
		t.Errorf("%d streams open and %d refused, want %d and 2", open, refused, limit)
	}
	if err := roundTrip(ctx, m, v.id, nil); err != nil {
		t.Errorf("another protocol of the friend: %v", err)
	}
}

// TestPeerAndHostMemoryLimits: on a real host, one friend's scope cannot
// reserve more than PeerMemory, nor the host's more than HostMemory, and
// transient (unnegotiated) scopes no more than TransientMemory.
func TestPeerAndHostMemoryLimits(t *testing.T) {
	v, m := newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(v, m)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(v, m.id) && online(m, v.id) })
	rm := v.host.Network().ResourceManager()
	check := func(what string, s network.ResourceScope, limit int) {
		t.Helper()
		if err := s.ReserveMemory(limit+1, network.ReservationPriorityAlways); !errors.Is(err, network.ErrResourceLimitExceeded) {
			t.Errorf("%s: reserving %d bytes over its limit: %v", what, limit+1, err)
			if err == nil {
				s.ReleaseMemory(limit + 1)
			}
		}
		if err := s.ReserveMemory(limit/2, network.ReservationPriorityAlways); err != nil {
			t.Errorf("%s: reserving half its limit: %v", what, err)
		} else {
			s.ReleaseMemory(limit / 2)
		}
	}
	rm.ViewPeer(m.id, func(s network.PeerScope) error { check("friend", s, PeerMemory); return nil })
	rm.ViewSystem(func(s network.ResourceScope) error { check("host", s, HostMemory); return nil })
	rm.ViewTransient(func(s network.ResourceScope) error { check("transient", s, TransientMemory); return nil })
}
