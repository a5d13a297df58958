package f2f

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"
)

// friendsEnv is a friend list in a real bbolt file that a test can reopen.
type friendsEnv struct {
	t    *testing.T
	path string
	self peer.ID
	db   *bolt.DB
	f    *Friends
}

func newFriendsEnv(t *testing.T) *friendsEnv {
	t.Helper()
	_, self := newKey(t)
	e := &friendsEnv{t: t, path: filepath.Join(t.TempDir(), "kith.db"), self: self}
	e.open()
	t.Cleanup(func() {
		if e.db != nil {
			e.db.Close()
		}
	})
	return e
}

func (e *friendsEnv) open() {
	e.t.Helper()
	e.db = openTestDB(e.t, e.path)
	e.f = openTestFriends(e.t, e.db, e.self)
}

// reopen closes the database and loads the friend list from the file again.
func (e *friendsEnv) reopen() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// add puts a new node named name with addrs on the list.
func (e *friendsEnv) add(name string, addrs ...ma.Multiaddr) Friend {
	e.t.Helper()
	_, id := newKey(e.t)
	fr, err := e.f.Add(Invite{ID: id, Name: name, Addrs: addrs}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return fr
}

func (e *friendsEnv) mustGet(id peer.ID) Friend {
	e.t.Helper()
	fr, ok := e.f.Get(id)
	if !ok {
		e.t.Fatalf("friend %s is missing", id)
	}
	return fr
}

func assertAddrs(t *testing.T, got, want []ma.Multiaddr) {
	t.Helper()
	if !slices.EqualFunc(got, want, ma.Multiaddr.Equal) {
		t.Errorf("addrs = %v, want %v", got, want)
	}
}

func TestFriendsPersist(t *testing.T) {
	e := newFriendsEnv(t)
	a1 := mustAddrs(t, "/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1")
	ada := e.add("ada", a1...)
	bob := e.add("bob")
	_, carol := newKey(t)
	if _, err := e.f.Add(Invite{ID: carol, Name: "carol-invite"}, "carol"); err != nil {
		t.Fatal(err)
	}
	if ada.Added.IsZero() || !ada.LastSeen.IsZero() || ada.Online {
		t.Errorf("new friend %+v: want Added set, never seen, offline", ada)
	}

	e.f.SetOnline(ada.ID, true, mustAddrs(t, "/ip4/198.51.100.9/tcp/9"))
	e.f.SetOnline(ada.ID, false, nil)
	seen := e.mustGet(ada.ID).LastSeen
	if seen.IsZero() {
		t.Fatal("LastSeen not set by SetOnline")
	}
	before := friendsSnapshot(e.f.List())

	e.reopen()
	if got := friendsSnapshot(e.f.List()); got != before {
		t.Errorf("after reopen:\n%s\nwant\n%s", got, before)
	}
	got := e.mustGet(ada.ID)
	if got.Name != "ada" || !got.LastSeen.Equal(seen) || !got.Added.Equal(ada.Added) || got.Online {
		t.Errorf("ada after reopen = %+v", got)
	}
	assertAddrs(t, got.Addrs, append(mustAddrs(t, "/ip4/198.51.100.9/tcp/9"), a1...))
	if got := e.mustGet(carol).Name; got != "carol" {
		t.Errorf("name given to Add = %q, want carol", got)
	}
	if !e.f.IsFriend(bob.ID) || e.f.IsFriend(e.self) {
		t.Error("IsFriend wrong after reopen")
	}
	if ids := e.f.IDs(); len(ids) != 3 {
		t.Errorf("IDs() = %v, want 3", ids)
	}
	names := []string{}
	for _, f := range e.f.List() {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"ada", "bob", "carol"}) {
		t.Errorf("List order = %v, want by name", names)
	}
}

func TestFriendsOnlineNotPersisted(t *testing.T) {
	e := newFriendsEnv(t)
	ada := e.add("ada")
	e.f.SetOnline(ada.ID, true, nil)
	if !e.mustGet(ada.ID).Online {
		t.Fatal("not online after SetOnline(true)")
	}
	e.reopen()
	if fr := e.mustGet(ada.ID); fr.Online || fr.LastSeen.IsZero() {
		t.Errorf("after reopen: %+v, want offline with LastSeen", fr)
	}
}

func TestFriendsRemove(t *testing.T) {
	e := newFriendsEnv(t)
	ada, bob, carol := e.add("ada"), e.add("bob"), e.add("carol")

	if fr, err := e.f.Remove(ada.ID.String()); err != nil || fr.ID != ada.ID {
		t.Fatalf("Remove by peer ID = %+v, %v", fr, err)
	}
	if fr, err := e.f.Remove("  bob\n"); err != nil || fr.ID != bob.ID {
		t.Fatalf("Remove by name = %+v, %v", fr, err)
	}
	for _, ref := range []string{"ada", ada.ID.String(), "nobody", "", "Carol", e.self.String()} {
		if _, err := e.f.Remove(ref); !errors.Is(err, ErrNoSuchFriend) {
			t.Errorf("Remove(%q) = %v, want ErrNoSuchFriend", ref, err)
		}
		if _, err := e.f.Resolve(ref); !errors.Is(err, ErrNoSuchFriend) {
			t.Errorf("Resolve(%q) = %v, want ErrNoSuchFriend", ref, err)
		}
	}
	e.reopen()
	if e.f.IsFriend(ada.ID) || e.f.IsFriend(bob.ID) || !e.f.IsFriend(carol.ID) {
		t.Errorf("after reopen the list is %s", friendsSnapshot(e.f.List()))
	}
	// A removed friend can be added again.
	if _, err := e.f.Add(Invite{ID: ada.ID, Name: "ada"}, ""); err != nil {
		t.Errorf("adding a removed friend again: %v", err)
	}
}

func TestFriendsAmbiguousName(t *testing.T) {
	e := newFriendsEnv(t)
	a, b := e.add("sam"), e.add("sam")
	before := friendsSnapshot(e.f.List())
	if _, err := e.f.Remove("sam"); !errors.Is(err, ErrAmbiguousFriend) {
		t.Fatalf("Remove of a shared name = %v, want ErrAmbiguousFriend", err)
	}
	if _, err := e.f.Resolve("sam"); !errors.Is(err, ErrAmbiguousFriend) {
		t.Errorf("Resolve of a shared name = %v, want ErrAmbiguousFriend", err)
	}
	e.reopen()
	if got := friendsSnapshot(e.f.List()); got != before {
		t.Errorf("ambiguous Remove changed the list:\n%s\nwant\n%s", got, before)
	}
	// The peer ID still picks one; then the name is unique again.
	if fr, err := e.f.Remove(a.ID.String()); err != nil || fr.ID != a.ID {
		t.Fatalf("Remove by peer ID = %+v, %v", fr, err)
	}
	if fr, err := e.f.Resolve("sam"); err != nil || fr.ID != b.ID {
		t.Errorf("Resolve after removing one = %+v, %v", fr, err)
	}
}

func TestFriendsLearnAddrs(t *testing.T) {
	e := newFriendsEnv(t)
	a := mustAddrs(t, "/ip4/192.0.2.1/tcp/1", "/ip4/192.0.2.2/tcp/2", "/ip4/192.0.2.3/tcp/3")
	ada := e.add("ada", a[0])

	if !e.f.LearnAddrs(ada.ID, a[1:2]) {
		t.Error("LearnAddrs of a new address = false")
	}
	if e.f.LearnAddrs(ada.ID, a[:2]) {
		t.Error("LearnAddrs of known addresses = true")
	}
	if !e.f.LearnAddrs(ada.ID, []ma.Multiaddr{a[0], a[2]}) {
		t.Error("LearnAddrs with one new address = false")
	}
	_, stranger := newKey(t)
	if e.f.LearnAddrs(stranger, a) {
		t.Error("LearnAddrs for a stranger = true")
	}
	if e.f.IsFriend(stranger) {
		t.Error("LearnAddrs made a stranger a friend")
	}
	want := []ma.Multiaddr{a[0], a[2], a[1]} // newest first
	assertAddrs(t, e.mustGet(ada.ID).Addrs, want)
	e.reopen()
	assertAddrs(t, e.mustGet(ada.ID).Addrs, want)
	if _, ok := e.f.Get(stranger); ok {
		t.Error("stranger stored")
	}
}

func TestFriendsSetOnlineStranger(t *testing.T) {
	e := newFriendsEnv(t)
	var changes []Change
	e.f.Watch(func(c Change) { changes = append(changes, c) })
	_, stranger := newKey(t)
	e.f.SetOnline(stranger, true, mustAddrs(t, "/ip4/192.0.2.1/tcp/1"))
	e.reopen()
	if e.f.IsFriend(stranger) || len(e.f.List()) != 0 || len(changes) != 0 {
		t.Errorf("SetOnline for a stranger stored %s, notified %v", friendsSnapshot(e.f.List()), changes)
	}
}

func TestFriendsMaxStoredAddrs(t *testing.T) {
	e := newFriendsEnv(t)
	many := tcpAddrs(t, 1000, MaxStoredAddrs+4)
	ada := e.add("ada", many...)
	assertAddrs(t, ada.Addrs, many[:MaxStoredAddrs])

	fresh := tcpAddrs(t, 5000, 3)
	e.f.LearnAddrs(ada.ID, fresh)
	want := append(slices.Clone(fresh), many[:MaxStoredAddrs-3]...)
	assertAddrs(t, e.mustGet(ada.ID).Addrs, want)

	online := tcpAddrs(t, 7000, MaxStoredAddrs+2)
	e.f.SetOnline(ada.ID, true, online)
	assertAddrs(t, e.mustGet(ada.ID).Addrs, online[:MaxStoredAddrs])

	e.reopen()
	assertAddrs(t, e.mustGet(ada.ID).Addrs, online[:MaxStoredAddrs])
}

func TestFriendsCopies(t *testing.T) {
	e := newFriendsEnv(t)
	ada := e.add("ada", mustAddrs(t, "/ip4/192.0.2.1/tcp/1")...)
	got := e.mustGet(ada.ID)
	got.Addrs[0] = mustAddrs(t, "/ip4/203.0.113.1/tcp/1")[0]
	got.Name = "eve"
	e.f.List()[0].Addrs[0] = got.Addrs[0]
	if fr := e.mustGet(ada.ID); fr.Name != "ada" || !fr.Addrs[0].Equal(ada.Addrs[0]) {
		t.Errorf("changing a returned Friend changed the list: %+v", fr)
	}
}

func TestFriendsWatch(t *testing.T) {
	e := newFriendsEnv(t)
	var mu sync.Mutex
	var got []string
	record := func(c Change) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%d %s online=%v", c.Kind, c.Friend.Name, c.Friend.Online))
		mu.Unlock()
	}
	e.f.Watch(record)
	var second int
	e.f.Watch(func(Change) { second++ })

	ada := e.add("ada")
	if _, err := e.f.Add(Invite{ID: ada.ID, Name: "ada"}, ""); !errors.Is(err, ErrAlreadyFriend) {
		t.Fatalf("second Add = %v", err)
	}
	e.f.SetOnline(ada.ID, true, nil)
	e.f.SetOnline(ada.ID, true, nil) // no change of presence
	e.f.LearnAddrs(ada.ID, mustAddrs(t, "/ip4/192.0.2.1/tcp/1"))
	e.f.SetOnline(ada.ID, false, nil)
	e.f.SetOnline(ada.ID, false, nil)
	if _, err := e.f.Remove("ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Remove("ada"); !errors.Is(err, ErrNoSuchFriend) {
		t.Fatalf("second Remove = %v", err)
	}

	want := []string{
		fmt.Sprintf("%d ada online=false", FriendAdded),
		fmt.Sprintf("%d ada online=true", FriendOnline),
		fmt.Sprintf("%d ada online=false", FriendOffline),
		fmt.Sprintf("%d ada online=false", FriendRemoved),
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n%v\nwant\n%v", got, want)
	}
	if second != len(want) {
		t.Errorf("second watcher saw %d changes, want %d", second, len(want))
	}
}

// TestFriendsWatcherReads: a watcher may read the list while it is told of a
// change (it runs outside the lock).
func TestFriendsWatcherReads(t *testing.T) {
	e := newFriendsEnv(t)
	done := make(chan bool, 1)
	e.f.Watch(func(c Change) {
		select {
		case done <- e.f.IsFriend(c.Friend.ID):
		default:
		}
	})
	_, id := newKey(t)
	go func() {
		if _, err := e.f.Add(Invite{ID: id, Name: "ada"}, ""); err != nil {
			t.Error(err)
		}
	}()
	select {
	case isFriend := <-done:
		if !isFriend {
			t.Error("watcher of FriendAdded does not see the friend")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watcher reading the list deadlocked")
	}
}

// TestFriendsConcurrent runs readers and writers together for the race detector.
func TestFriendsConcurrent(t *testing.T) {
	e := newFriendsEnv(t)
	e.f.Watch(func(Change) {})
	ids := make([]peer.ID, 4)
	for i := range ids {
		ids[i] = e.add(fmt.Sprintf("f%d", i)).ID
	}
	seen, learnt := tcpAddrs(t, 1000, 20), tcpAddrs(t, 5000, 21)
	late := make([]peer.ID, 10)
	for i := range late {
		_, late[i] = newKey(t)
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			for j := range 20 {
				e.f.SetOnline(id, j%2 == 0, seen[j:j+1])
				e.f.LearnAddrs(id, learnt[j:j+2])
			}
		})
		wg.Go(func() {
			for range 50 {
				e.f.List()
				e.f.IsFriend(id)
				e.f.Resolve(fmt.Sprintf("f%d", i))
			}
		})
	}
	wg.Go(func() {
		for _, id := range late {
			if _, err := e.f.Add(Invite{ID: id, Name: "late"}, ""); err != nil {
				t.Error(err)
			}
			if _, err := e.f.Remove(id.String()); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	e.reopen()
	if n := len(e.f.List()); n != len(ids) {
		t.Errorf("%d friends after reopen, want %d", n, len(ids))
	}
	for _, id := range ids {
		if got := len(e.mustGet(id).Addrs); got == 0 || got > MaxStoredAddrs {
			t.Errorf("%s has %d addresses", id, got)
		}
	}
}
