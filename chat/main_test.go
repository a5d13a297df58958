package chat

import (
	"context"
	crand "crypto/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"kith/f2f"
	"kith/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// allowlist is an in-memory friend list.
type allowlist struct {
	mu  sync.Mutex
	ids map[peer.ID]bool
}

func newAllowlist() *allowlist { return &allowlist{ids: map[peer.ID]bool{}} }

func (a *allowlist) IsFriend(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[p]
}

func (a *allowlist) IDs() []peer.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []peer.ID
	for p := range a.ids {
		out = append(out, p)
	}
	return out
}

func (a *allowlist) add(p peer.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids[p] = true
}

// testPeer is a host with a friend list and a store, which a chat service
// can be started and stopped on.
type testPeer struct {
	t       testing.TB
	key     crypto.PrivKey
	h       host.Host
	friends *allowlist
	dbPath  string
	db      *bolt.DB
	svc     *Service
	events  *eventLog
}

// newTestPeer makes a peer with a key and a store; start brings it up.
func newTestPeer(t testing.TB) *testPeer {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPeer{t: t, key: key, friends: newAllowlist(), dbPath: filepath.Join(t.TempDir(), "kith.db"), events: &eventLog{}}
	t.Cleanup(tp.stop)
	return tp
}

func (tp *testPeer) id() peer.ID {
	id, _ := peer.IDFromPrivateKey(tp.key)
	return id
}

// start starts the host on a fresh 127.0.0.1 port, the store and the
// chat service.
func (tp *testPeer) start() {
	t := tp.t
	t.Helper()
	h, err := f2f.NewHost(f2f.HostConfig{Key: tp.key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Gater: f2f.NewGater(tp.friends, nil)})
	if err != nil {
		t.Fatal(err)
	}
	tp.h = h
	if tp.db, err = store.Open(tp.dbPath, store.Options{}); err != nil {
		t.Fatal(err)
	}
	if tp.svc, err = New(Config{Host: h, DB: tp.db, Friends: tp.friends, Events: tp.events.add}); err != nil {
		t.Fatal(err)
	}
}

// stop stops the service, the host and the store, as a daemon's shutdown.
func (tp *testPeer) stop() {
	if tp.svc != nil {
		tp.svc.Close()
		tp.svc = nil
	}
	if tp.h != nil {
		tp.h.Close()
		tp.h = nil
	}
	if tp.db != nil {
		tp.db.Close()
		tp.db = nil
	}
}

// befriend makes a and b friends of each other.
func befriend(a, b *testPeer) {
	a.friends.add(b.id())
	b.friends.add(a.id())
}

// connect dials b from a.
func connect(t testing.TB, a, b *testPeer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// eventLog records a service's events.
type eventLog struct {
	mu  sync.Mutex
	evs []recordedEvent
}

type recordedEvent struct {
	typ  string
	data any
}

func (l *eventLog) add(typ string, data any) {
	l.mu.Lock()
	l.evs = append(l.evs, recordedEvent{typ, data})
	l.mu.Unlock()
}

func (l *eventLog) count(typ string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evs {
		if e.typ == typ {
			n++
		}
	}
	return n
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
