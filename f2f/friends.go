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
	// AddrState is what we know of each address, in the order of Addrs
	// (absent in records written before it existed).
	AddrState []addrRecord `json:"addr_state,omitempty"`
}

// addrRecord is a storedAddr's state as stored, in Unix seconds.
type addrRecord struct {
	Learned int64 `json:"learned"`
	Worked  int64 `json:"worked,omitempty"`
	Fails   int   `json:"fails,omitempty"`
}

// storedAddr is one address of a friend with what we know of it.
type storedAddr struct {
	addr    ma.Multiaddr
	learned time.Time // when the friend last told us (invite, identify, DHT)
	worked  time.Time // when we last connected to it; zero: never
	fails   int       // failed dials while it never worked
}

// friendEntry is a friend in memory: the Friend handed out (its Addrs
// mirror addrs) and the state of each address.
type friendEntry struct {
	Friend
	addrs []storedAddr
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
	friends  map[peer.ID]*friendEntry
	watchers []func(Change)
	// endpoints counts the friends' addresses by endpoint, for the
	// admission of inbound connections (knownEndpoint).
	endpoints map[endpoint]int
	// policy filters every address before it is stored; nil until the
	// Connector sets the host's (SetAddrPolicy).
	policy *AddrPolicy
	now    func() time.Time // tests move the clock
}

// OpenFriends loads the friend list of the node self from db.
func OpenFriends(db *bolt.DB, self peer.ID) (*Friends, error) {
	if err := store.CreateBuckets(db, bucketFriends); err != nil {
		return nil, err
	}
	f := &Friends{db: db, self: self, friends: map[peer.ID]*friendEntry{}, endpoints: map[endpoint]int{}, now: time.Now}
	now := f.now()
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
			e := &friendEntry{Friend: Friend{ID: id, Name: r.Name, Added: r.Added, LastSeen: r.LastSeen}}
			var addrs []storedAddr
			for i, s := range r.Addrs {
				a, err := ma.NewMultiaddr(s)
				if err != nil || !(*AddrPolicy)(nil).Allowed(id, a) {
					continue
				}
				sa := storedAddr{addr: stripPeer(a), learned: now}
				if i < len(r.AddrState) {
					st := r.AddrState[i]
					sa.learned, sa.fails = time.Unix(st.Learned, 0), st.Fails
					if st.Worked != 0 {
						sa.worked = time.Unix(st.Worked, 0)
					}
				}
				addrs = append(addrs, sa)
			}
			f.friends[id] = e
			f.setAddrsLocked(e, addrs)
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
	e, ok := f.friends[id]
	if !ok {
		return Friend{}, false
	}
	return copyFriend(e), true
}

// List returns copies of all friends, sorted by name then peer ID.
func (f *Friends) List() []Friend {
	f.mu.RLock()
	out := make([]Friend, 0, len(f.friends))
	for _, e := range f.friends {
		out = append(out, copyFriend(e))
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
	e := &friendEntry{Friend: Friend{ID: inv.ID, Name: name, Added: f.now().UTC()}}
	f.mu.RLock()
	addrs, _ := f.mergeLocked(e, inv.Addrs)
	f.mu.RUnlock()
	rec := recordOf(&friendEntry{Friend: e.Friend, addrs: addrs})
	if err := f.write(e.ID, rec); err != nil {
		return Friend{}, err
	}
	f.mu.Lock()
	f.friends[inv.ID] = e
	f.setAddrsLocked(e, addrs)
	out := copyFriend(e)
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
	if e, ok := f.friends[fr.ID]; ok {
		f.setAddrsLocked(e, nil)
	}
	delete(f.friends, fr.ID)
	f.mu.Unlock()
	f.notify(Change{Kind: FriendRemoved, Friend: fr})
	return fr, nil
}

// Resolve finds a friend by peer ID or by name.
func (f *Friends) Resolve(ref string) (Friend, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, err := f.resolveLocked(ref)
	if err != nil {
		return Friend{}, err
	}
	return copyFriend(e), nil
}

func (f *Friends) resolveLocked(ref string) (*friendEntry, error) {
	ref = strings.TrimSpace(ref)
	if id, err := peer.Decode(ref); err == nil {
		if fr, ok := f.friends[id]; ok {
			return fr, nil
		}
	}
	var found *friendEntry
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
		fr.LastSeen = f.now().UTC()
	}
	fr.Online = online
	if len(addrs) > 0 {
		merged, _ := f.mergeLocked(fr, addrs)
		f.setAddrsLocked(fr, merged)
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

// LearnAddrs adds addresses a friend told us of (newest first) and
// persists them; addresses the policy refuses are dropped. It reports
// whether any of them was new.
func (f *Friends) LearnAddrs(id peer.ID, addrs []ma.Multiaddr) bool {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	fr, ok := f.friends[id]
	if !ok {
		f.mu.Unlock()
		return false
	}
	merged, isNew := f.mergeLocked(fr, addrs)
	f.setAddrsLocked(fr, merged)
	rec := recordOf(fr)
	f.mu.Unlock()
	if isNew {
		_ = f.write(id, rec)
	}
	return isNew
}

// AddrWorked records that we connected to the friend id at a (an address
// we dialled). The address that worked last is never expired nor pushed
// out by newer ones.
func (f *Friends) AddrWorked(id peer.ID, a ma.Multiaddr) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	fr, ok := f.friends[id]
	if !ok || !f.policy.Allowed(id, a) {
		f.mu.Unlock()
		return
	}
	a = stripPeer(a)
	now := f.now()
	if len(fr.addrs) > 0 && fr.addrs[0].addr.Equal(a) && now.Sub(fr.addrs[0].worked) < AddrWorkedRefresh {
		f.mu.Unlock()
		return // nothing worth a disk write
	}
	sa := storedAddr{addr: a, learned: now}
	rest := make([]storedAddr, 0, len(fr.addrs))
	for _, old := range fr.addrs {
		if old.addr.Equal(a) {
			sa.learned = old.learned
			continue
		}
		rest = append(rest, old)
	}
	sa.worked = now
	f.setAddrsLocked(fr, capStored(append([]storedAddr{sa}, rest...)))
	rec := recordOf(fr)
	f.mu.Unlock()
	_ = f.write(id, rec)
}

// DialFailed records a dial of the friend id that failed on every one of
// tried; addresses that never worked count the failure and go once
// expired (see ExpireAddrs). It returns the addresses dropped. The counts
// are written only with a drop (a restart forgets them; the
// UnconfirmedAddrTTL still holds), so a friend that is away costs no disk
// write per dial.
func (f *Friends) DialFailed(id peer.ID, tried []ma.Multiaddr) []ma.Multiaddr {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	fr, ok := f.friends[id]
	if !ok {
		f.mu.Unlock()
		return nil
	}
	addrs := slices.Clone(fr.addrs)
	for i := range addrs {
		if addrs[i].worked.IsZero() && slices.ContainsFunc(tried, func(t ma.Multiaddr) bool { return stripPeer(t).Equal(addrs[i].addr) }) {
			addrs[i].fails++
		}
	}
	kept, dropped := expired(addrs, f.now())
	f.setAddrsLocked(fr, kept)
	rec := recordOf(fr)
	f.mu.Unlock()
	if len(dropped) > 0 {
		_ = f.write(id, rec)
	}
	return dropped
}

// ExpireAddrs drops, for every friend, the addresses that never worked
// and were learned more than UnconfirmedAddrTTL ago or failed
// MaxUnconfirmedDials dials. It returns what it dropped, by friend.
func (f *Friends) ExpireAddrs() map[peer.ID][]ma.Multiaddr {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	now := f.now()
	out := map[peer.ID][]ma.Multiaddr{}
	recs := map[peer.ID]friendRecord{}
	f.mu.Lock()
	for id, fr := range f.friends {
		kept, dropped := expired(fr.addrs, now)
		if len(dropped) == 0 {
			continue
		}
		f.setAddrsLocked(fr, kept)
		out[id], recs[id] = dropped, recordOf(fr)
	}
	f.mu.Unlock()
	for id, rec := range recs {
		_ = f.write(id, rec)
	}
	return out
}

// SetAddrPolicy sets the policy addresses must pass to be stored; the
// Connector sets the host's. Addresses stored before are not re-checked
// here (the Gater checks every dial).
func (f *Friends) SetAddrPolicy(p *AddrPolicy) {
	f.mu.Lock()
	f.policy = p
	f.mu.Unlock()
}

// knownEndpoint reports whether e is the endpoint of a stored address of
// some friend (the Gater's admission asks it).
func (f *Friends) knownEndpoint(e endpoint) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.endpoints[e] > 0
}

// mergeLocked returns fr's addresses with fresh (those the policy admits)
// first, learned now, then the old ones, capped; and whether any was new.
// The caller holds f.mu.
func (f *Friends) mergeLocked(fr *friendEntry, fresh []ma.Multiaddr) ([]storedAddr, bool) {
	now := f.now()
	out := make([]storedAddr, 0, len(fresh)+len(fr.addrs))
	isNew := false
	for _, a := range fresh {
		if !f.policy.Allowed(fr.ID, a) {
			continue
		}
		a = stripPeer(a)
		if slices.ContainsFunc(out, func(s storedAddr) bool { return s.addr.Equal(a) }) {
			continue
		}
		sa := storedAddr{addr: a, learned: now}
		if i := slices.IndexFunc(fr.addrs, func(s storedAddr) bool { return s.addr.Equal(a) }); i >= 0 {
			sa.worked, sa.fails = fr.addrs[i].worked, fr.addrs[i].fails
		} else {
			isNew = true
		}
		out = append(out, sa)
	}
	for _, old := range fr.addrs {
		if !slices.ContainsFunc(out, func(s storedAddr) bool { return s.addr.Equal(old.addr) }) {
			out = append(out, old)
		}
	}
	return capStored(out), isNew
}

// setAddrsLocked replaces the addresses of fr, a friend on the list,
// keeping Friend.Addrs and the endpoint index in step. The caller holds
// f.mu for writing.
func (f *Friends) setAddrsLocked(fr *friendEntry, addrs []storedAddr) {
	for _, sa := range fr.addrs {
		if e, ok := addrEndpoint(sa.addr); ok {
			if f.endpoints[e]--; f.endpoints[e] <= 0 {
				delete(f.endpoints, e)
			}
		}
	}
	fr.addrs = addrs
	fr.Addrs = addrList(addrs)
	for _, sa := range addrs {
		if e, ok := addrEndpoint(sa.addr); ok {
			f.endpoints[e]++
		}
	}
}

// expired splits addrs into those kept and the addresses dropped: ones
// that never worked and are too old or failed too often.
func expired(addrs []storedAddr, now time.Time) (kept []storedAddr, dropped []ma.Multiaddr) {
	for _, sa := range addrs {
		if sa.worked.IsZero() && (now.Sub(sa.learned) >= UnconfirmedAddrTTL || sa.fails >= MaxUnconfirmedDials) {
			dropped = append(dropped, sa.addr)
			continue
		}
		kept = append(kept, sa)
	}
	return kept, dropped
}

// capStored keeps the first MaxStoredAddrs addresses, and the one that
// worked last even when it comes later.
func capStored(addrs []storedAddr) []storedAddr {
	if len(addrs) <= MaxStoredAddrs {
		return addrs
	}
	last := -1
	for i, sa := range addrs {
		if !sa.worked.IsZero() && (last < 0 || sa.worked.After(addrs[last].worked)) {
			last = i
		}
	}
	out := slices.Clone(addrs[:MaxStoredAddrs])
	if last >= MaxStoredAddrs {
		out[MaxStoredAddrs-1] = addrs[last]
	}
	return out
}

func addrList(addrs []storedAddr) []ma.Multiaddr {
	if len(addrs) == 0 {
		return nil
	}
	out := make([]ma.Multiaddr, len(addrs))
	for i, sa := range addrs {
		out[i] = sa.addr
	}
	return out
}

func recordOf(fr *friendEntry) friendRecord {
	r := friendRecord{Name: fr.Name, Added: fr.Added, LastSeen: fr.LastSeen}
	for _, sa := range fr.addrs {
		r.Addrs = append(r.Addrs, sa.addr.String())
		st := addrRecord{Learned: sa.learned.Unix(), Fails: sa.fails}
		if !sa.worked.IsZero() {
			st.Worked = sa.worked.Unix()
		}
		r.AddrState = append(r.AddrState, st)
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

func copyFriend(e *friendEntry) Friend {
	c := e.Friend
	c.Addrs = slices.Clone(e.Addrs)
	return c
}
