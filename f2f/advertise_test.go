package f2f

import (
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestAdvertisedAddrs: a node on every interface never advertises its
// loopback addresses (so friends learning them through identify, the
// DHT or mDNS never get them), nor link-local or unspecified ones, nor
// the relay transport's bare /p2p-circuit; it does advertise --announce
// addresses and its circuit addresses. A loopback-only node (tests, the
// demo) advertises its loopback addresses.
func TestAdvertisedAddrs(t *testing.T) {
	_, relay := newKey(t)
	circuit := "/ip4/1.2.0.3/tcp/4001/p2p/" + relay.String() + "/p2p-circuit"
	in := mustAddrs(t, "/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001", "/ip4/10.0.1.2/tcp/4001",
		"/ip6/fe80::1/tcp/4001", "/ip4/0.0.0.0/tcp/4001", "/p2p-circuit", "/ip4/1.2.0.1/udp/4001/quic-v1")
	adv := newAdvertiser(mustAddrs(t, "/ip4/1.2.0.9/tcp/4001"))
	adv.addSource(func() []ma.Multiaddr { return mustAddrs(t, circuit) })
	got := adv.factory(in)
	var s []string
	for _, a := range got {
		s = append(s, a.String())
	}
	slices.Sort(s)
	want := []string{circuit, "/ip4/1.2.0.1/udp/4001/quic-v1", "/ip4/1.2.0.9/tcp/4001", "/ip4/10.0.1.2/tcp/4001"}
	slices.Sort(want)
	if !slices.Equal(s, want) {
		t.Fatalf("advertised %v, want %v", s, want)
	}
	onlyLoopback := newAdvertiser(nil).factory(mustAddrs(t, "/ip4/127.0.0.1/tcp/4001", "/p2p-circuit"))
	if len(onlyLoopback) != 1 || onlyLoopback[0].String() != "/ip4/127.0.0.1/tcp/4001" {
		t.Fatalf("loopback-only node advertises %v", onlyLoopback)
	}
}
