package chat

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"kith/internal/store"
	"kith/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPeer is a host with a friend list and a store, which a chat service
// can be started and stopped on.
type testPeer struct {
	*testkit.Peer
	t      testing.TB
	h      host.Host
	dbPath string
	db     *bolt.DB
	svc    *Service
	events *eventLog
}

// newTestPeer makes a peer with a key and a store; start brings it up.
func newTestPeer(t testing.TB) *testPeer {
	t.Helper()
	tp := &testPeer{Peer: testkit.NewPeer(t), t: t, dbPath: filepath.Join(t.TempDir(), "kith.db"), events: &eventLog{}}
	t.Cleanup(tp.stop)
	return tp
}

// start starts the host on a fresh 127.0.0.1 port, the store and the
// chat service.
func (tp *testPeer) start() {
	t := tp.t
	t.Helper()
	h := tp.Host(t)
	tp.h = h
	var err error
	if tp.db, err = store.Open(tp.dbPath, store.Options{}); err != nil {
		t.Fatal(err)
	}
	if tp.svc, err = New(Config{Host: h, DB: tp.db, Friends: tp.Friends, Events: tp.events.add}); err != nil {
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
func befriend(a, b *testPeer) { testkit.Befriend(a.Peer, b.Peer) }

// connect dials b from a.
func connect(t testing.TB, a, b *testPeer) { testkit.Connect(t, a.h, b.h) }

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
