package f2f

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"

	"kith/internal/store"
)

// Friend is one entry of the friend list with its presence.
type Friend struct {
	ID       peer.ID
	Name     string
	Addrs    []ma.Multiaddr // last known addresses, newest first
	Added    time.Time
	LastSeen time.Time // when the friend was last connected (zero: never)
	Online   bool      // connected and identified now; not persisted
}

// friendRecord is a Friend as stored in bbolt.
type friendRecord struct {
	Name     string    `json:"name"`
	Addrs    []string  `json:"addrs"`
	Added    time.Time `json:"added"`
	LastSeen time.Time `json:"last_seen"`
}

// ChangeKind says what happened to a friend in a Change.
type ChangeKind int

// Kinds of Change.
const (
	FriendAdded ChangeKind = iota + 1
	FriendRemoved
	FriendOnline
	FriendOffline
)

// Change is a notification from Friends to its watchers.
type Change struct {
	Kind   ChangeKind
	Friend Friend
}

// Friends is the friend list, kept in bbolt and mirrored in memory so that
// the gater can answer without touching the disk. It is safe for concurrent use.
type Friends struct {
	db   *bolt.DB
	self peer.ID

	// wmu serialises writers, so the database sees changes in the order
	// watchers do; mu guards the in-memory mirror and is never held across
	// disk I/O.
	wmu      sync.Mutex
	mu       sync.RWMutex
	friends  map[peer.ID]*Friend
	watchers []func(Change)
}

// OpenFriends loads the friend list of the node self from db.
func OpenFriends(db *bolt.DB, self peer.ID) (*Friends, error) {
	if err := store.CreateBuckets(db, bucketFriends); err != nil {
		return nil, err
	}
	f := &Friends{db: db, self: self, friends: map[peer.ID]*Friend{}}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFriends).ForEach(func(k, v []byte) error {
			id, err := peer.IDFromBytes(k)
			if err != nil {
				return fmt.Errorf("friend key %x: %w", k, err)
			}
			var r friendRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("friend %s: %w", id, err)
			}
			fr := &Friend{ID: id, Name: r.Name, Added: r.Added, LastSeen: r.LastSeen}
			for _, s := range r.Addrs {
				if a, err := ma.NewMultiaddr(s); err == nil {
					fr.Addrs = append(fr.Addrs, a)
				}
			}
			f.friends[id] = fr
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading friends: %w", err)
	}
	return f, nil
}

// Watch registers fn to be called after every change, in order. fn runs on
// the goroutine that made the change and must not call Friends' writers
// (Add, Remove, SetOnline, LearnAddrs); readers are fine.
func (f *Friends) Watch(fn func(Change)) {
	f.mu.Lock()
	f.watchers = append(f.watchers, fn)
	f.mu.Unlock()
}

func (f *Friends) notify(c Change) {
	f.mu.RLock()
	ws := slices.Clone(f.watchers)
	f.mu.RUnlock()
	for _, w := range ws {
		w(c)
	}
}

// IsFriend reports whether id is on the list. It never blocks on I/O.
func (f *Friends) IsFriend(id peer.ID) bool {
	f.mu.RLock()
	_, ok := f.friends[id]
	f.mu.RUnlock()
	return ok
}

// Get returns a copy of the friend with id.
func (f *Friends) Get(id peer.ID) (Friend, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fr, ok := f.friends[id]
	if !ok {
		return Friend{}, false
	}
	return copyFriend(fr), true
}

// List returns copies of all friends, sorted by name then peer ID.
func (f *Friends) List() []Friend {
	f.mu.RLock()
	out := make([]Friend, 0, len(f.friends))
	for _, fr := range f.friends {
		out = append(out, copyFriend(fr))
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// IDs returns the peer IDs of all friends.
func (f *Friends) IDs() []peer.ID {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]peer.ID, 0, len(f.friends))
	for id := range f.friends {
		out = append(out, id)
	}
	return out
}

// Add puts the node of a verified invite on the list, named name or, if name
// is empty, by the invite's nickname. It changes nothing on error.
func (f *Friends) Add(inv Invite, name string) (Friend, error) {
	if inv.ID == f.self {
		return Friend{}, ErrInviteOwn
	}
	if name == "" {
		name = inv.Name
	}
	if err := CheckName(name); err != nil {
		return Friend{}, err
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.IsFriend(inv.ID) {
		return Friend{}, fmt.Errorf("%w: %s", ErrAlreadyFriend, inv.ID)
	}
	fr := &Friend{ID: inv.ID, Name: name, Addrs: capAddrs(inv.Addrs), Added: time.Now().UTC()}
	if err := f.write(fr.ID, recordOf(fr)); err != nil {
		return Friend{}, err
	}
	f.mu.Lock()
	f.friends[inv.ID] = fr
	out := copyFriend(fr)
	f.mu.Unlock()
	f.notify(Change{Kind: FriendAdded, Friend: out})
	return out, nil
}

// Remove takes the friend named by ref (a peer ID or a name) off the list.
func (f *Friends) Remove(ref string) (Friend, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	fr, err := f.Resolve(ref)
	if err != nil {
		return Friend{}, err
	}
	err = f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFriends).Delete([]byte(fr.ID))
	})
	if err != nil {
		return Friend{}, fmt.Errorf("removing friend: %w", err)
	}
	f.mu.Lock()
	delete(f.friends, fr.ID)
	f.mu.Unlock()
	f.notify(Change{Kind: FriendRemoved, Friend: fr})
	return fr, nil
}

// Resolve finds a friend by peer ID or by name.
func (f *Friends) Resolve(ref string) (Friend, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fr, err := f.resolveLocked(ref)
	if err != nil {
		return Friend{}, err
	}
	return copyFriend(fr), nil
}

func (f *Friends) resolveLocked(ref string) (*Friend, error) {
	ref = strings.TrimSpace(ref)
	if id, err := peer.Decode(ref); err == nil {
		if fr, ok := f.friends[id]; ok {
			return fr, nil
		}
	}
	var found *Friend
	for _, fr := range f.friends {
		if fr.Name == ref {
			if found != nil {
				return nil, fmt.Errorf("%w: %q", ErrAmbiguousFriend, ref)
			}
			found = fr
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchFriend, ref)
	}
	return found, nil
}

// SetOnline records that a friend connected (with the addresses it is known
// to listen on, if any) or went away. It persists last-seen and addresses.
// Last-seen moves only for a friend that is or was connected.
func (f *Friends) SetOnline(id peer.ID, online bool, addrs []ma.Multiaddr) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	fr, ok := f.friends[id]
	if !ok {
		f.mu.Unlock()
		return
	}
	changed := fr.Online != online
	if online || fr.Online {
		fr.LastSeen = time.Now().UTC()
	}
	fr.Online = online
	if len(addrs) > 0 {
		fr.Addrs = mergeAddrs(addrs, fr.Addrs)
	}
	rec, out := recordOf(fr), copyFriend(fr)
	f.mu.Unlock()
	if err := f.write(id, rec); err != nil {
		return // presence is best effort; the next change writes again
	}
	if changed {
		kind := FriendOffline
		if online {
			kind = FriendOnline
		}
		f.notify(Change{Kind: kind, Friend: out})
	}
}

// LearnAddrs adds addresses for a friend (newest first) and persists them.
// It reports whether any of them was new.
func (f *Friends) LearnAddrs(id peer.ID, addrs []ma.Multiaddr) bool {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	fr, ok := f.friends[id]
	if !ok {
		f.mu.Unlock()
		return false
	}
	isNew := false
	for _, a := range addrs {
		if !slices.ContainsFunc(fr.Addrs, a.Equal) {
			isNew = true
		}
	}
	fr.Addrs = mergeAddrs(addrs, fr.Addrs)
	rec := recordOf(fr)
	f.mu.Unlock()
	if isNew {
		_ = f.write(id, rec)
	}
	return isNew
}

func recordOf(fr *Friend) friendRecord {
	r := friendRecord{Name: fr.Name, Added: fr.Added, LastSeen: fr.LastSeen}
	for _, a := range fr.Addrs {
		r.Addrs = append(r.Addrs, a.String())
	}
	return r
}

// write stores a friend record; the caller holds f.wmu (not f.mu), so the
// gater's IsFriend never waits for the disk.
func (f *Friends) write(id peer.ID, r friendRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding friend: %w", err)
	}
	err = f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFriends).Put([]byte(id), v)
	})
	if err != nil {
		return fmt.Errorf("storing friend: %w", err)
	}
	return nil
}

func copyFriend(fr *Friend) Friend {
	c := *fr
	c.Addrs = slices.Clone(fr.Addrs)
	return c
}

// mergeAddrs puts fresh first, then the old ones not in fresh, capped.
func mergeAddrs(fresh, old []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(fresh)+len(old))
	for _, a := range append(slices.Clone(fresh), old...) {
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return capAddrs(out)
}

func capAddrs(a []ma.Multiaddr) []ma.Multiaddr {
	if len(a) > MaxStoredAddrs {
		a = a[:MaxStoredAddrs]
	}
	return slices.Clone(a)
}
