package f2f

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"kith/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOptions()...)
}

// leakOptions ignores goroutines that libraries start once per process and
// never stop (they are not ours and do not grow with nodes).
func leakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	}
}

// recorder is a stream handler that records who opened a stream on it.
type recorder struct {
	mu      sync.Mutex
	callers map[peer.ID]int
}

func (r *recorder) handle(s network.Stream) {
	r.mu.Lock()
	if r.callers == nil {
		r.callers = map[peer.ID]int{}
	}
	r.callers[s.Conn().RemotePeer()]++
	r.mu.Unlock()
	buf := make([]byte, 1)
	if _, err := io.ReadFull(s, buf); err != nil {
		s.Reset()
		return
	}
	s.Write(buf)
	s.CloseWrite()
	io.Copy(io.Discard, s) // wait for the caller's close
	s.Close()
}

func (r *recorder) count(p peer.ID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.callers[p]
}

const testProto protocol.ID = "/kith/test/1"

// testLog shows the f2f layer's debug log when KITH_TEST_LOG is set.
var testLog = func() *slog.Logger {
	if os.Getenv("KITH_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}()

type testPeer struct {
	t       *testing.T
	key     crypto.PrivKey
	id      peer.ID
	dbPath  string
	db      *bolt.DB
	friends *Friends
	gater   *Gater
	host    host.Host
	conn    *Connector
	dht     *FriendDHT
	rec     *recorder
	closed  bool
	// extra libp2p options for the host (identify's addresses, ...)
	extra []libp2p.Option
	// onGater, if set, runs on each new gater before the host starts.
	onGater func(*Gater)
	// protoStreams are the host's per-protocol-per-peer stream caps.
	protoStreams map[protocol.ID]int
	// trav, if set, is the host's NAT traversal state.
	trav *Traversal
	// onConnector, if set, adjusts the Connector's config before it starts.
	onConnector func(*ConnectorConfig)
}

// newPeer starts a peer listening on 127.0.0.1 with the given transport
// ("tcp" or "quic"), with a fresh key and store.
func newPeer(t *testing.T, transport string) *testPeer {
	t.Helper()
	return newPeerWith(t, transport, nil)
}

// newPeerWith is newPeer with a hook that sets the peer up before it starts.
func newPeerWith(t *testing.T, transport string, setup func(*testPeer)) *testPeer {
	t.Helper()
	dir := t.TempDir()
	key, err := CreateIdentity(filepath.Join(dir, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	p := &testPeer{t: t, key: key, dbPath: filepath.Join(dir, "kith.db")}
	p.id, _ = peer.IDFromPrivateKey(key)
	if setup != nil {
		setup(p)
	}
	p.start(transport)
	return p
}

func listenAddr(transport string) string {
	if transport == "quic" {
		return "/ip4/127.0.0.1/udp/0/quic-v1"
	}
	return "/ip4/127.0.0.1/tcp/0"
}

// listenAddrs are the listen addresses of a peer on transport ("tcp",
// "quic", or "both").
func listenAddrs(transport string) []string {
	if transport == "both" {
		return []string{listenAddr("tcp"), listenAddr("quic")}
	}
	return []string{listenAddr(transport)}
}

// start (re)opens the peer's store and host on a new port.
func (p *testPeer) start(transport string) {
	t := p.t
	t.Helper()
	var err error
	if p.db, err = store.Open(p.dbPath, store.Options{}); err != nil {
		t.Fatal(err)
	}
	if p.friends, err = OpenFriends(p.db, p.id); err != nil {
		t.Fatal(err)
	}
	p.gater = NewGater(p.friends, nil)
	if p.onGater != nil {
		p.onGater(p.gater)
	}
	p.host, err = NewHost(HostConfig{Key: p.key, ListenAddrs: listenAddrs(transport), Gater: p.gater, Extra: p.extra,
		ProtocolPeerStreams: p.protoStreams, Traversal: p.trav})
	if err != nil {
		t.Fatal(err)
	}
	p.rec = &recorder{}
	p.host.SetStreamHandler(testProto, p.rec.handle)
	if p.dht, err = NewFriendDHT(p.host, p.friends, false); err != nil {
		t.Fatal(err)
	}
	ccfg := ConnectorConfig{Host: p.host, Friends: p.friends, DHT: p.dht, Log: testLog, Gater: p.gater,
		RedialMin: 100 * time.Millisecond, RedialMax: 500 * time.Millisecond}
	if p.onConnector != nil {
		p.onConnector(&ccfg)
	}
	p.conn, err = NewConnector(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	p.closed = false
	t.Cleanup(p.stop)
}

func (p *testPeer) stop() {
	if p.closed {
		return
	}
	p.closed = true
	p.conn.Close()
	p.dht.Close()
	p.host.Close()
	p.db.Close()
}

func (p *testPeer) invite() Invite {
	p.t.Helper()
	text, err := NewInvite(p.key, p.host.Addrs(), "peer")
	if err != nil {
		p.t.Fatal(err)
	}
	inv, err := ParseInvite(text)
	if err != nil {
		p.t.Fatal(err)
	}
	return inv
}

// add puts other on p's friend list (one side only).
func (p *testPeer) add(other *testPeer) {
	p.t.Helper()
	if _, err := p.friends.Add(other.invite(), ""); err != nil {
		p.t.Fatal(err)
	}
}

func befriend(a, b *testPeer) { a.add(b); b.add(a) }

func online(p *testPeer, id peer.ID) bool {
	f, ok := p.friends.Get(id)
	return ok && f.Online
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping opens a stream of testProto from p to id and runs one round trip.
func roundTrip(ctx context.Context, p *testPeer, id peer.ID, addrs []ma.Multiaddr) error {
	p.host.Peerstore().AddAddrs(id, addrs, time.Minute)
	s, err := p.host.NewStream(ctx, id, testProto)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := s.Write([]byte{1}); err != nil {
		return err
	}
	_, err = io.ReadFull(s, make([]byte, 1))
	return err
}

func protocolID(s string) protocol.ID { return protocol.ID(s) }
