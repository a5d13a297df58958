package f2f

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestTCPFirstRanker: a friend with TCP and QUIC addresses is dialled over
// TCP first, QUIC only after a delay; relayed and QUIC-only friends keep
// libp2p's order.
func TestTCPFirstRanker(t *testing.T) {
	tcp := ma.StringCast("/ip4/1.2.0.2/tcp/4001")
	quic := ma.StringCast("/ip4/1.2.0.2/udp/4001/quic-v1")
	lan := ma.StringCast("/ip4/192.168.1.2/udp/4001/quic-v1")
	lanTCP := ma.StringCast("/ip4/192.168.1.2/tcp/4001")
	got := tcpFirstRanker([]ma.Multiaddr{quic, tcp, lan, lanTCP})
	delay := map[string]int64{}
	for _, d := range got {
		delay[d.Addr.String()] = int64(d.Delay)
	}
	if len(got) != 4 {
		t.Fatalf("ranked %d addresses, want 4: %v", len(got), got)
	}
	if delay[tcp.String()] != 0 || delay[lanTCP.String()] != 0 {
		t.Errorf("TCP dials delayed: %v", got)
	}
	if delay[quic.String()] <= 0 || delay[lan.String()] <= 0 {
		t.Errorf("QUIC dials not delayed after TCP: %v", got)
	}
	if got := tcpFirstRanker([]ma.Multiaddr{quic}); len(got) != 1 || got[0].Delay != 0 {
		t.Errorf("QUIC only: %v, want it at once", got)
	}
}
