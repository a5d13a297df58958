package sim

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// Fabric is the network the nodes of a run live on: a host per node and
// a way to connect two of them. The simulator uses a mocknet; the test
// that checks the simulator against the real thing uses TCP hosts on
// 127.0.0.1.
type Fabric interface {
	// Hosts returns the host of each node, in node order.
	Hosts() []host.Host
	// Connect opens a connection between nodes a and b, friends.
	Connect(ctx context.Context, a, b int) error
	// AddLeaf starts a host outside the graph that node to befriends
	// and that may reach node to only (a probing friend).
	AddLeaf(to int) (host.Host, error)
	// ConnectLeaf opens a connection between a host from AddLeaf and
	// node to.
	ConnectLeaf(ctx context.Context, leaf host.Host, to int) error
	// Close closes every host.
	Close() error
}

// mockFabric is a mocknet with a link per friendship.
type mockFabric struct {
	mn    mocknet.Mocknet
	hosts []host.Host
}

// NewMockFabric starts n mocknet hosts with Ed25519 identities derived
// from seed and links every friend pair of g with lo's latency and
// bandwidth. Only friends are linked, so a non-friend cannot even be
// dialled: the mocknet's topology is the friend graph.
func NewMockFabric(g *Graph, seed uint64, lo mocknet.LinkOptions) (Fabric, error) {
	mn := mocknet.New()
	mn.SetLinkDefaults(lo)
	f := &mockFabric{mn: mn, hosts: make([]host.Host, g.N())}
	keys := mrand.NewChaCha8(seedBytes(seed))
	for i := range f.hosts {
		sk, _, err := crypto.GenerateEd25519Key(keyReader{keys})
		if err != nil {
			mn.Close()
			return nil, fmt.Errorf("making identity of node %d: %w", i, err)
		}
		ip := net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))
		a, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/%s/tcp/4242", ip))
		if err != nil {
			mn.Close()
			return nil, fmt.Errorf("making address of node %d: %w", i, err)
		}
		h, err := mn.AddPeer(sk, a)
		if err != nil {
			mn.Close()
			return nil, fmt.Errorf("starting host of node %d: %w", i, err)
		}
		f.hosts[i] = h
	}
	for _, e := range g.Edges() {
		if _, err := mn.LinkPeers(f.hosts[e.A].ID(), f.hosts[e.B].ID()); err != nil {
			mn.Close()
			return nil, fmt.Errorf("linking nodes %d and %d: %w", e.A, e.B, err)
		}
	}
	return f, nil
}

func (f *mockFabric) Hosts() []host.Host { return f.hosts }

func (f *mockFabric) Connect(ctx context.Context, a, b int) error {
	if _, err := f.mn.ConnectPeers(f.hosts[a].ID(), f.hosts[b].ID()); err != nil {
		return fmt.Errorf("connecting nodes %d and %d: %w", a, b, err)
	}
	return nil
}

func (f *mockFabric) AddLeaf(to int) (host.Host, error) {
	h, err := f.mn.GenPeer()
	if err != nil {
		return nil, fmt.Errorf("starting a leaf host: %w", err)
	}
	if _, err := f.mn.LinkPeers(h.ID(), f.hosts[to].ID()); err != nil {
		return nil, fmt.Errorf("linking a leaf host to node %d: %w", to, err)
	}
	return h, nil
}

func (f *mockFabric) ConnectLeaf(ctx context.Context, leaf host.Host, to int) error {
	if _, err := f.mn.ConnectPeers(leaf.ID(), f.hosts[to].ID()); err != nil {
		return fmt.Errorf("connecting a leaf host to node %d: %w", to, err)
	}
	return nil
}

func (f *mockFabric) Close() error { return f.mn.Close() }

// keyReader reads from a ChaCha8 stream; key generation from it is
// repeatable (and, of course, not secret).
type keyReader struct{ c *mrand.ChaCha8 }

var _ io.Reader = keyReader{}

func (k keyReader) Read(p []byte) (int, error) { return k.c.Read(p) }

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	copy(b[8:], "kith sim identities")
	return b
}
