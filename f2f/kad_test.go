package f2f

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"slices"
	"testing"
	"time"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"kith/f2f/pb"
	"kith/internal/frame"
)

const kadProto = DHTProtocol

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// inboundKad counts the kad streams from id that p holds open.
func inboundKad(p *testPeer, id peer.ID) int {
	n := 0
	for _, c := range p.host.Network().ConnsToPeer(id) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == kadProto && s.Stat().Direction == network.DirInbound {
				n++
			}
		}
	}
	return n
}

// openSlowKad opens n kad streams from m to v; on each it announces a frame
// of announce bytes and sends only the first sent bytes of it.
func openSlowKad(ctx context.Context, t *testing.T, m *testPeer, v peer.ID, n, announce, sent int) []network.Stream {
	t.Helper()
	head := binary.AppendUvarint(nil, uint64(announce))
	head = append(head, make([]byte, sent)...)
	var out []network.Stream
	for range n {
		s, err := m.host.NewStream(ctx, v, kadProto)
		if err != nil {
			t.Fatalf("opening kad stream: %v", err)
		}
		s.SetWriteDeadline(time.Now().Add(5 * time.Second))
		s.Write(head) // an early reset is what we hope for
		out = append(out, s)
	}
	t.Cleanup(func() {
		for _, s := range out {
			s.Reset()
		}
	})
	return out
}

// newAttacker is a peer whose own host does not cap its kad streams, as a
// modified node would not.
func newAttacker(t *testing.T, transport string) *testPeer {
	return newPeerWith(t, transport, func(p *testPeer) { p.protoStreams = map[protocol.ID]int{kadProto: 1000} })
}

// TestKadSlowloris: a friend opens many friends-DHT streams, each
// announcing a 4 MiB frame and sending 1 KiB of it (the review's attack
// held 2.1 GiB with 512 such streams). The victim must hold no announced
// buffer: its live heap may not grow by more than a few MiB, and it keeps
// no more of the friend's kad streams than KadStreamsPerPeer.
func TestKadSlowloris(t *testing.T) {
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) { testKadSlowloris(t, transport) })
	}
}

func testKadSlowloris(t *testing.T, transport string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, m := newPeer(t, transport), newAttacker(t, transport)
	befriend(v, m)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(v, m.id) && online(m, v.id) })

	const streams = 64
	before := heapInUse()
	openSlowKad(ctx, t, m, v.id, streams, 4<<20, 1<<10)
	// Give the victim time to read what arrived; it stops early once it
	// dropped every stream it will drop.
	var grew int64
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		grew = max(grew, heapInUse()-before)
		time.Sleep(100 * time.Millisecond)
	}
	held := inboundKad(v, m.id)
	t.Logf("%d streams announcing 4 MiB: victim heap grew %.1f MiB, %d streams held", streams, float64(grew)/(1<<20), held)
	if grew > 8<<20 {
		t.Errorf("victim heap grew by %.1f MiB for %d slow 4 MiB frames, want under 8 MiB", float64(grew)/(1<<20), streams)
	}
	if held > KadStreamsPerPeer {
		t.Errorf("victim holds %d kad streams of one friend, want at most %d", held, KadStreamsPerPeer)
	}
}

// TestKadSlowFrameTimesOut: a frame under the size cap that trickles in is
// dropped after the frame timeout, and at most KadStreamsPerPeer such
// streams of one friend are held meanwhile.
func TestKadSlowFrameTimesOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, m := newPeer(t, "tcp"), newAttacker(t, "tcp")
	befriend(v, m)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(v, m.id) && online(m, v.id) })

	openSlowKad(ctx, t, m, v.id, 3*KadStreamsPerPeer, 1<<10, 10)
	time.Sleep(500 * time.Millisecond)
	held := inboundKad(v, m.id)
	t.Logf("slow frames under the cap: %d streams held", held)
	if held == 0 || held > KadStreamsPerPeer {
		t.Errorf("victim holds %d slow kad streams of one friend, want 1..%d", held, KadStreamsPerPeer)
	}
	waitFor(t, KadFrameTimeout+5*time.Second, "slow frames to be dropped", func() bool { return inboundKad(v, m.id) == 0 })
}

// kadAsk sends one FIND_NODE for key, as any friend can, and returns the
// peers of the answer (nil when the stream was reset).
func kadAsk(ctx context.Context, t *testing.T, h host.Host, p peer.ID, key, proof []byte) []peer.AddrInfo {
	t.Helper()
	s, err := h.NewStream(ctx, p, kadProto)
	if err != nil {
		t.Fatalf("opening kad stream: %v", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	req := &pb.KadMessage{Type: pb.KadMessage_FIND_NODE, Key: key, Proof: proof}
	if err := frame.NewWriter(s, 1<<20).WriteMsg(req); err != nil {
		return nil
	}
	var resp dhtpb.Message
	if err := frame.NewReader(s, 1<<20, frame.Options{}).ReadMsg(&resp); err != nil {
		return nil
	}
	var out []peer.AddrInfo
	for _, ai := range dhtpb.PBPeersToPeerInfos(resp.GetCloserPeers()) {
		out = append(out, *ai)
	}
	return out
}

// nearKeys returns n random keys whose Kademlia keys share at least bits
// leading bits with id's.
func nearKeys(id peer.ID, n, bits int) [][]byte {
	target := sha256.Sum256([]byte(id))
	var out [][]byte
	for len(out) < n {
		k := make([]byte, 34)
		crand.Read(k)
		h := sha256.Sum256(k)
		cpl := 0
		for cpl < 256 && (h[cpl/8]^target[cpl/8])&(0x80>>(cpl%8)) == 0 {
			cpl++
		}
		if cpl >= bits {
			out = append(out, k)
		}
	}
	return out
}

// TestKadAnswersOnlyFriendsOfBoth: B has six friends K0..K5 and A. A is a
// friend of K0 (they know each other's IDs, not addresses) and knows K1's
// ID without being K1's friend. However A asks B — random keys, keys near
// every friend of B, the friends' own IDs — it learns no peer ID it did not
// know; it finds K0's address through B, and never K1's.
func TestKadAnswersOnlyFriendsOfBoth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, a := newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(a, b)
	ks := make([]*testPeer, 6)
	for i := range ks {
		ks[i] = newPeer(t, "tcp")
		befriend(b, ks[i])
	}
	a.addWithAddrs(ks[0], nil) // friends that know no address of each other
	ks[0].addWithAddrs(a, nil)
	a.addWithAddrs(ks[1], nil) // A knows K1's ID; K1 does not list A
	waitFor(t, 15*time.Second, "everyone connected to B", func() bool {
		for _, k := range ks {
			if !online(b, k.id) || !online(k, b.id) {
				return false
			}
		}
		return online(a, b.id) && online(b, a.id)
	})

	// A friend of K0 that knows K0's ID learns its address through B.
	waitFor(t, 20*time.Second, "A and K0 to find each other through B", func() bool {
		return online(a, ks[0].id) && online(ks[0], a.id)
	})

	waitFor(t, 5*time.Second, "the lookup that found the address to be counted", func() bool {
		return a.conn.Stats().DHTFoundNew+ks[0].conn.Stats().DHTFoundNew > 0
	})
	// The same by hand: A's real request for K0 names K0 with its address
	// (once B holds K0's grant for A: A and K0 may have met by K0 finding
	// A first, before K0's grant reached B).
	key, proof := a.dht.look.request(ks[0].id, b.id)
	var got []peer.AddrInfo
	answered := func() bool {
		got = kadAsk(ctx, t, a.host, b.id, key[:], proof)
		return len(got) == 1 && got[0].ID == ks[0].id && slices.ContainsFunc(got[0].Addrs, ks[0].host.Addrs()[0].Equal)
	}
	for deadline := time.Now().Add(10 * time.Second); !answered() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	if !answered() {
		t.Errorf("A's request for K0 got %v, want K0 at %v", got, ks[0].host.Addrs())
	}

	known := map[peer.ID]bool{a.id: true, b.id: true, ks[0].id: true, ks[1].id: true}
	learned := map[peer.ID]bool{}
	ask := func(key, proof []byte) {
		for _, ai := range kadAsk(ctx, t, a.host, b.id, key, proof) {
			learned[ai.ID] = true
		}
	}
	for range 100 {
		k := make([]byte, 34)
		crand.Read(k)
		ask(k, nil)
	}
	for _, k := range ks {
		ask([]byte(k.id), nil)
		for _, key := range nearKeys(k.id, 8, 8) {
			ask(key, nil)
		}
	}
	// Blinded keys as a kith node asks them: for every friend of B, with
	// no proof, a random one, and for K1 the proof A could make if K1 had
	// listed it (A can compute its secret with K1 from their keys alone).
	junk := make([]byte, proofLen)
	crand.Read(junk)
	for _, k := range ks {
		bk := blind(k.id, b.id)
		ask(bk[:], nil)
		ask(bk[:], junk)
	}
	s1, _ := a.dht.look.secret(ks[1].id)
	p1 := proofWith(s1, ks[1].id, b.id)
	bk1 := blind(ks[1].id, b.id)
	if got := kadAsk(ctx, t, a.host, b.id, bk1[:], p1[:]); len(got) != 0 {
		t.Errorf("A asking for K1, which does not list it, with its best proof got %v", got)
	}
	for id := range learned {
		if !known[id] {
			t.Errorf("A learned the ID of %s, which it did not know", id.ShortString())
		}
	}
	t.Logf("A asked B %d keys and learned %d IDs; B: %+v", 100+len(ks)*11, len(learned), b.dht.Stats())

	// A never learns an address of K1, which does not list A.
	time.Sleep(time.Second) // A's connector keeps looking K1 up meanwhile
	if fr, _ := a.friends.Get(ks[1].id); len(fr.Addrs) > 0 || online(a, ks[1].id) {
		t.Errorf("A learned K1's addresses %v (online %v), but K1 is not A's friend", fr.Addrs, online(a, ks[1].id))
	}
	if addrs := a.host.Peerstore().Addrs(ks[1].id); len(addrs) > 0 {
		t.Errorf("A's peerstore holds K1's addresses %v", addrs)
	}
}

// TestLookupGrantRevoked: when K removes A from its friends, its new grant
// reaches B, and B stops giving K's address to A.
func TestLookupGrantRevoked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, k := newPeer(t, "tcp"), newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(a, b)
	befriend(b, k)
	befriend(a, k)
	waitFor(t, 10*time.Second, "all connected", func() bool {
		return online(a, b.id) && online(b, k.id) && online(a, k.id)
	})
	askK := func() []peer.AddrInfo {
		key, proof := a.dht.look.request(k.id, b.id)
		return kadAsk(ctx, t, a.host, b.id, key[:], proof)
	}
	waitFor(t, 5*time.Second, "B to give K's address to A", func() bool { return len(askK()) == 1 })
	b.dht.look.mu.Lock()
	n := len(b.dht.look.grants[k.id])
	b.dht.look.mu.Unlock()
	if n == 0 || n%LookupVerifierPad != 0 {
		t.Errorf("K's grant holds %d verifiers, want a multiple of %d", n, LookupVerifierPad)
	}
	if _, err := k.friends.Remove(a.id.String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to stop giving K's address to A", func() bool { return len(askK()) == 0 })
}

// TestKadUnsupportedRequests: requests other than FIND_NODE and PING are
// refused with a reset; PING is answered.
func TestKadUnsupportedRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(a, b)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(a, b.id) && online(b, a.id) })
	send := func(m *pb.KadMessage) (*pb.KadMessage, error) {
		s, err := a.host.NewStream(ctx, b.id, kadProto)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(5 * time.Second))
		if err := frame.NewWriter(s, KadMaxMessage).WriteMsg(m); err != nil {
			return nil, err
		}
		var resp pb.KadMessage
		return &resp, frame.NewReader(s, KadMaxMessage, frame.Options{}).ReadMsg(&resp)
	}
	if resp, err := send(&pb.KadMessage{Type: pb.KadMessage_PING}); err != nil || resp.Type != pb.KadMessage_PING {
		t.Errorf("PING: %v, %v", resp, err)
	}
	for _, typ := range []pb.KadMessage_Type{pb.KadMessage_PUT_VALUE, pb.KadMessage_GET_VALUE, pb.KadMessage_ADD_PROVIDER, pb.KadMessage_GET_PROVIDERS, 99} {
		if resp, err := send(&pb.KadMessage{Type: typ, Key: []byte("k")}); err == nil {
			t.Errorf("%v answered: %v", typ, resp)
		}
	}
	if b.dht.Stats().Refused < 5 {
		t.Errorf("B refused %d requests, want 5", b.dht.Stats().Refused)
	}
}

func FuzzKadRequest(f *testing.F) {
	for _, m := range []*pb.KadMessage{
		{Type: pb.KadMessage_FIND_NODE, Key: make([]byte, 32), Proof: make([]byte, proofLen)},
		{Type: pb.KadMessage_PING},
		{Type: pb.KadMessage_GET_VALUE, Key: []byte("x")},
		{Type: pb.KadMessage_FIND_NODE, CloserPeers: []*pb.KadMessage_Peer{{Id: []byte("x")}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readKadRequest(b)
		if err != nil {
			return
		}
		if req.typ != pb.KadMessage_FIND_NODE && req.typ != pb.KadMessage_PING || len(req.key) > 64 || len(req.proof) > proofLen {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func FuzzKadAnswer(f *testing.F) {
	_, id := newKey(f)
	a := mustAddrs(f, "/ip4/127.0.0.1/tcp/1")[0]
	for _, m := range []*pb.KadMessage{
		{Type: pb.KadMessage_FIND_NODE, CloserPeers: []*pb.KadMessage_Peer{{Id: []byte(id), Addrs: [][]byte{a.Bytes(), {1, 2, 3}}}}},
		{Type: pb.KadMessage_FIND_NODE, CloserPeers: []*pb.KadMessage_Peer{{Id: []byte("bad")}, {Id: []byte(id)}, {Id: []byte(id)}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := readKadAnswer(b)
		if err != nil {
			return
		}
		seen := map[peer.ID]bool{}
		for _, ai := range peers {
			if seen[ai.ID] || len(ai.Addrs) > MaxStoredAddrs || ai.ID.Validate() != nil {
				t.Fatalf("answer decoded to %v", peers)
			}
			seen[ai.ID] = true
		}
	})
}

func FuzzLookupGrant(f *testing.F) {
	g := &pb.LookupGrant{Verifiers: [][]byte{make([]byte, proofLen), make([]byte, proofLen)}}
	b, _ := proto.Marshal(g)
	f.Add(b)
	b, _ = proto.Marshal(&pb.LookupGrant{Verifiers: [][]byte{{1}}})
	f.Add(b)
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := parseGrant(b)
		if err != nil {
			return
		}
		if len(vs) > MaxLookupVerifiers || !slices.IsSortedFunc(vs, func(a, b verifier) int { return bytes.Compare(a[:], b[:]) }) {
			t.Fatalf("grant decoded to %d verifiers, sorted %v", len(vs), slices.IsSortedFunc(vs, func(a, b verifier) int { return bytes.Compare(a[:], b[:]) }))
		}
	})
}
