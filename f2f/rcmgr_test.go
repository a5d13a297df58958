package f2f

import (
	"testing"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// TestResourceLimitsFixedStreams: the stream limits a node runs with are
// kith's, the same on a 1 GiB machine as on a 64 GiB one, and large
// enough for tunnels.MaxTunnels relayed tunnels (1024: an inbound and an
// outbound stream each, of one protocol).
func TestResourceLimitsFixedStreams(t *testing.T) {
	defaults := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&defaults)
	small := resourceLimits(defaults.Scale(1<<30, 256)).ToPartialLimitConfig()
	large := resourceLimits(defaults.Scale(64<<30, 65536)).ToPartialLimitConfig()
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
				want = StreamsPerPeer
			}
			if got != want {
				t.Errorf("%s machine: %s streams limit %v, want %v", name, what, got, want)
			}
		}
		if l.System.StreamsInbound < 2*1024 {
			t.Errorf("%s machine: %v inbound streams cannot carry 1024 relayed tunnels", name, l.System.StreamsInbound)
		}
	}
	rm, err := NewResourceManager()
	if err != nil {
		t.Fatal(err)
	}
	rm.Close()
}
