package chat

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"kith/chat/pb"
	"kith/internal/store"
)

// lobbyRecord is a joined lobby as stored in bbolt.
type lobbyRecord struct {
	Name    string    `json:"name"`
	Topic   string    `json:"topic"`
	Private bool      `json:"private"`
	As      []byte    `json:"as"` // the ChatID the node speaks as
	Joined  time.Time `json:"joined"`
	// Members are the friends (peer IDs) a private lobby's traffic may go
	// to: the one that invited this node and those it invited.
	Members []string `json:"members,omitempty"`
	// Size is the lobby's estimated number of members when the service
	// last stopped, or last drifted by a tenth (sizeDrifted): a restarted
	// member starts from it, so its
	// keep-alives keep to a large lobby's long interval before it hears
	// the lobby again.
	Size int `json:"size,omitempty"`
}

// lobbyStore keeps joined lobbies, their histories and pending invites.
// Each method is one bbolt transaction.
type lobbyStore struct {
	db *bolt.DB
}

func openLobbyStore(db *bolt.DB) (*lobbyStore, error) {
	if err := store.CreateBuckets(db, bucketLobbies, bucketLobbyHistory, bucketLobbySeen, bucketLobbyInvites, bucketLobbyUsage); err != nil {
		return nil, err
	}
	// Lobbies joined before their bytes were counted are counted once.
	err := db.Update(func(tx *bolt.Tx) error {
		use := tx.Bucket(bucketLobbyUsage)
		return tx.Bucket(bucketLobbyHistory).ForEachBucket(func(id []byte) error {
			if use.Get(id) != nil {
				return nil
			}
			var n int64
			tx.Bucket(bucketLobbyHistory).Bucket(id).ForEach(func(k, v []byte) error {
				n += int64(len(v)) + MessageOverhead
				return nil
			})
			return use.Put(id, binary.BigEndian.AppendUint64(nil, uint64(n)))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("counting lobby histories: %w", err)
	}
	return &lobbyStore{db: db}, nil
}

// storedCost is what a stored lobby message counts against
// MaxLobbyHistoryBytes: its record and MessageOverhead.
func storedCost(v []byte) int64 { return int64(len(v)) + MessageOverhead }

// lobbies returns every joined lobby.
func (s *lobbyStore) lobbies() (map[LobbyID]lobbyRecord, error) {
	out := map[LobbyID]lobbyRecord{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLobbies).ForEach(func(k, v []byte) error {
			var r lobbyRecord
			if len(k) != len(LobbyID{}) || json.Unmarshal(v, &r) != nil || len(r.As) != len(ChatID{}) {
				return fmt.Errorf("lobby %x: bad record", k)
			}
			out[LobbyID(k)] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading lobbies: %w", err)
	}
	return out, nil
}

// join stores r as joined and removes any invite to it.
func (s *lobbyStore) join(id LobbyID, r lobbyRecord) error {
	b, _ := json.Marshal(r)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketLobbyInvites).Delete(id[:]); err != nil {
			return err
		}
		return tx.Bucket(bucketLobbies).Put(id[:], b)
	})
	if err != nil {
		return fmt.Errorf("storing lobby: %w", err)
	}
	return nil
}

// StoreJoinedLobby writes into db, before a Lobbies is opened on it, the
// record of public lobby id as a member finds it that was in the lobby,
// speaking as identity as, when it last stopped, knowing it at size
// members. Started on db, the service is in the lobby at once and says no
// JOIN, as after a restart; its friends subscribe it as their links come
// up. The simulator starts its nodes this way in a lobby that exists
// already, so that a lobby of many members is measured as it runs rather
// than as it forms; kith up has no use for it.
func StoreJoinedLobby(db *bolt.DB, id LobbyID, name, topic string, as ChatID, size int) error {
	if err := checkLobbyName(name, topic); err != nil {
		return err
	}
	st, err := openLobbyStore(db)
	if err != nil {
		return err
	}
	return st.join(id, lobbyRecord{Name: name, Topic: topic, As: as[:], Joined: time.Now().UTC(), Size: min(max(size, 0), MaxLobbySize)})
}

// setSizes stores the estimated sizes of joined lobbies; a lobby left
// meanwhile stays left.
func (s *lobbyStore) setSizes(sizes map[LobbyID]int) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLobbies)
		for id, n := range sizes {
			v := b.Get(id[:])
			var r lobbyRecord
			if v == nil || json.Unmarshal(v, &r) != nil || r.Size == n {
				continue
			}
			r.Size = n
			nv, _ := json.Marshal(r)
			if err := b.Put(id[:], nv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing lobby sizes: %w", err)
	}
	return nil
}

// leave forgets a lobby and its history.
func (s *lobbyStore) leave(id LobbyID) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketLobbies).Delete(id[:]); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketLobbyHistory, bucketLobbySeen} {
			if b := tx.Bucket(name); b.Bucket(id[:]) != nil {
				if err := b.DeleteBucket(id[:]); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketLobbyUsage).Delete(id[:])
	})
	if err != nil {
		return fmt.Errorf("leaving lobby: %w", err)
	}
	return nil
}

// encodeStored is a stored message: the time it was stored, then its
// wire form.
func encodeStored(m *LobbyMessage) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, uint64(m.Stored.UnixMilli()))
	return proto.MarshalOptions{}.MarshalAppend(b, lobbyMessageToWire(m))
}

// storedHead reads a stored message's id and kind from its wire form
// without decoding the rest (protobuf fields 2 and 3 of LobbyMessage):
// what newestIDs and recentText need of the joins they skip. ok is false
// for a record it cannot read, which the caller decodes in full.
func storedHead(v []byte) (id MsgID, kind LobbyKind, ok bool) {
	if len(v) < 8 {
		return MsgID{}, 0, false
	}
	b := v[8:]
	gotID, gotKind := false, false
	for len(b) > 0 && !(gotID && gotKind) {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return MsgID{}, 0, false
		}
		b = b[n:]
		switch {
		case num == 2 && typ == protowire.BytesType:
			f, n := protowire.ConsumeBytes(b)
			if n < 0 || len(f) != len(id) {
				return MsgID{}, 0, false
			}
			id, gotID, b = MsgID(f), true, b[n:]
		case num == 3 && typ == protowire.VarintType:
			k, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return MsgID{}, 0, false
			}
			kind, gotKind, b = LobbyKind(k), true, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return MsgID{}, 0, false
			}
			b = b[n:]
		}
	}
	// A text's kind (1) is never left out: proto3 leaves out only 0.
	return id, kind, gotID && gotKind
}

func decodeStored(seq uint64, v []byte) (LobbyMessage, error) {
	if len(v) < 8 {
		return LobbyMessage{}, fmt.Errorf("lobby message %d: short record", seq)
	}
	var w pb.LobbyMessage
	if err := proto.Unmarshal(v[8:], &w); err != nil {
		return LobbyMessage{}, fmt.Errorf("lobby message %d: %w", seq, err)
	}
	m, err := lobbyMessageFromWire(&w)
	if err != nil {
		return LobbyMessage{}, fmt.Errorf("lobby message %d: %w", seq, err)
	}
	m.Seq = seq
	m.Stored = time.UnixMilli(int64(binary.BigEndian.Uint64(v[:8]))).UTC()
	return m, nil
}

// append stores m as the next message of its lobby unless its id is
// there already (dup), and deletes the oldest beyond MaxLobbyHistory
// messages or MaxLobbyHistoryBytes (at most TrimBatch at a time). It
// fails if the lobby is not joined.
func (s *lobbyStore) append(m LobbyMessage) (LobbyMessage, bool, error) {
	dup := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		m, dup, err = appendTx(tx, m)
		return err
	})
	if err != nil {
		return LobbyMessage{}, false, fmt.Errorf("storing lobby message: %w", err)
	}
	return m, dup, nil
}

// appendBatch is append for each of ms in one transaction, for the joins
// and leaves taken from friends (Lobbies.storePresence): it returns the
// messages stored, with their sequence numbers, leaving out those
// already there and those of lobbies no longer joined.
func (s *lobbyStore) appendBatch(ms []LobbyMessage) ([]LobbyMessage, error) {
	var out []LobbyMessage
	err := s.db.Update(func(tx *bolt.Tx) error {
		out = out[:0]
		for _, m := range ms {
			stored, dup, err := appendTx(tx, m)
			if errors.Is(err, ErrNotJoined) || dup {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, stored)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing lobby messages: %w", err)
	}
	return out, nil
}

// appendTx is append's work in tx.
func appendTx(tx *bolt.Tx, m LobbyMessage) (LobbyMessage, bool, error) {
	dup := false
	err := func() error {
		if tx.Bucket(bucketLobbies).Get(m.Lobby[:]) == nil {
			return ErrNotJoined
		}
		seen, err := tx.Bucket(bucketLobbySeen).CreateBucketIfNotExists(m.Lobby[:])
		if err != nil {
			return err
		}
		if seen.Get(m.ID[:]) != nil {
			dup = true
			return nil
		}
		hist, err := tx.Bucket(bucketLobbyHistory).CreateBucketIfNotExists(m.Lobby[:])
		if err != nil {
			return err
		}
		if m.Seq, err = hist.NextSequence(); err != nil {
			return err
		}
		m.Stored = time.Now().UTC().Truncate(time.Millisecond)
		v, err := encodeStored(&m)
		if err != nil {
			return err
		}
		if err := hist.Put(seqKey(m.Seq), v); err != nil {
			return err
		}
		if err := seen.Put(m.ID[:], seqKey(m.Seq)); err != nil {
			return err
		}
		use := tx.Bucket(bucketLobbyUsage)
		var bytes int64
		if b := use.Get(m.Lobby[:]); len(b) == 8 {
			bytes = int64(binary.BigEndian.Uint64(b))
		}
		bytes += storedCost(v)
		drop := func(k, ov []byte) error {
			if om, err := decodeStored(0, ov); err == nil {
				if err := seen.Delete(om.ID[:]); err != nil {
					return err
				}
			}
			bytes -= storedCost(ov)
			return hist.Delete(k)
		}
		if m.Seq > MaxLobbyHistory {
			old := seqKey(m.Seq - MaxLobbyHistory)
			if ov := hist.Get(old); ov != nil {
				if err := drop(old, ov); err != nil {
					return err
				}
			}
		}
		for i := 0; bytes > MaxLobbyHistoryBytes && i < TrimBatch; i++ {
			k, ov := hist.Cursor().First()
			if k == nil || string(k) == string(seqKey(m.Seq)) {
				break
			}
			k = slices.Clone(k)
			if err := drop(k, ov); err != nil {
				return err
			}
		}
		return use.Put(m.Lobby[:], binary.BigEndian.AppendUint64(nil, uint64(max(bytes, 0))))
	}()
	return m, dup, err
}

// list returns a page of a lobby's history: messages after sequence
// number after, oldest first, at most limit (MaxLogPage if 0) and
// MaxLogPageBytes of text. An empty page means there are no more.
func (s *lobbyStore) list(lobby LobbyID, after uint64, limit int) ([]LobbyMessage, error) {
	limit = pageLimit(limit)
	var out []LobbyMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketLobbyHistory).Bucket(lobby[:])
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		bytes := 0
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			m, err := decodeStored(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			if pageFull(len(out), bytes, len(m.Text), limit) {
				break
			}
			bytes += len(m.Text)
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading lobby history: %w", err)
	}
	return out, nil
}

// recentText returns the newest text messages of a lobby, at most max
// of them and of at most maxBytes in wire form, among its newest
// LobbySyncScan x max records, oldest first: what a history reply
// carries. Joins and leaves are left out for the reason sync leaves them
// out (newestIDs): a joiner of a large lobby would get, and check, a
// hundred JOINs of members that mostly joined before it, instead of what
// was said.
func (s *lobbyStore) recentText(lobby LobbyID, max, maxBytes int) ([]LobbyMessage, error) {
	var out []LobbyMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketLobbyHistory).Bucket(lobby[:])
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		size, read := 0, 0
		for k, v := c.Last(); k != nil && len(out) < max && read < LobbySyncScan*max; k, v = c.Prev() {
			read++
			if _, kind, ok := storedHead(v); ok && isPresence(kind) {
				continue
			}
			m, err := decodeStored(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			if isPresence(m.Kind) {
				continue
			}
			size += len(v) + 8
			if size > maxBytes {
				break
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading lobby history: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// LobbyInvite is an invite into a lobby received from a friend and not
// acted on yet.
type LobbyInvite struct {
	Lobby    LobbyID   `json:"lobby"`
	Name     string    `json:"name"`
	Topic    string    `json:"topic"`
	Private  bool      `json:"private"`
	From     string    `json:"from"` // the friend's peer ID
	Nick     string    `json:"nick"` // the inviter's chat nickname
	Received time.Time `json:"received"`
}

// addInvite stores an invite, replacing one to the same lobby; it
// reports false when MaxLobbyInvites others wait.
func (s *lobbyStore) addInvite(inv LobbyInvite) (bool, error) {
	ok := true
	b, _ := json.Marshal(inv)
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketLobbyInvites)
		if bk.Get(inv.Lobby[:]) == nil && bk.Stats().KeyN >= MaxLobbyInvites {
			ok = false
			return nil
		}
		return bk.Put(inv.Lobby[:], b)
	})
	if err != nil {
		return false, fmt.Errorf("storing lobby invite: %w", err)
	}
	return ok, nil
}

// invites returns the pending invites, dropping those older than
// LobbyInviteTTL.
func (s *lobbyStore) invites(now time.Time) ([]LobbyInvite, error) {
	var out []LobbyInvite
	var expired [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLobbyInvites).ForEach(func(k, v []byte) error {
			var inv LobbyInvite
			if json.Unmarshal(v, &inv) != nil || now.Sub(inv.Received) > LobbyInviteTTL {
				expired = append(expired, slices.Clone(k))
				return nil
			}
			out = append(out, inv)
			return nil
		})
	})
	if err == nil && len(expired) > 0 {
		err = s.db.Update(func(tx *bolt.Tx) error {
			for _, k := range expired {
				if err := tx.Bucket(bucketLobbyInvites).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("reading lobby invites: %w", err)
	}
	slices.SortFunc(out, func(a, b LobbyInvite) int { return a.Received.Compare(b.Received) })
	return out, nil
}

// invite returns the pending invite to a lobby, if any.
func (s *lobbyStore) invite(id LobbyID) (LobbyInvite, bool) {
	var inv LobbyInvite
	ok := false
	s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketLobbyInvites).Get(id[:]); v != nil {
			ok = json.Unmarshal(v, &inv) == nil
		}
		return nil
	})
	return inv, ok && time.Since(inv.Received) <= LobbyInviteTTL
}

// newestIDs returns the ids of a lobby's newest stored text messages, at
// most max, newest first, among the newest LobbySyncScan x max records:
// what a "have" frame lists. Joins and leaves are presence, which each
// link's budget thins on purpose (lobby_presence.go): synced, the joins
// a burst had dropped would come back to every member by another path,
// the cost the budget is there to bound.
func (s *lobbyStore) newestIDs(lobby LobbyID, max int) ([]MsgID, error) {
	var out []MsgID
	err := s.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketLobbyHistory).Bucket(lobby[:])
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		read := 0
		for k, v := c.Last(); k != nil && len(out) < max && read < LobbySyncScan*max; k, v = c.Prev() {
			read++
			id, kind, ok := storedHead(v)
			if !ok {
				m, err := decodeStored(binary.BigEndian.Uint64(k), v)
				if err != nil {
					return err
				}
				id, kind = m.ID, m.Kind
			}
			if !isPresence(kind) {
				out = append(out, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading lobby history: %w", err)
	}
	return out, nil
}

// missing returns the ids of ids that are not in a lobby's history.
func (s *lobbyStore) missing(lobby LobbyID, ids []MsgID) ([]MsgID, error) {
	var out []MsgID
	err := s.db.View(func(tx *bolt.Tx) error {
		seen := tx.Bucket(bucketLobbySeen).Bucket(lobby[:])
		for _, id := range ids {
			if seen == nil || seen.Get(id[:]) == nil {
				out = append(out, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading lobby history: %w", err)
	}
	return out, nil
}

// byIDs returns the stored messages of ids in a lobby's history, in the
// order of ids, until their wire form would pass maxBytes (at least
// one); truncated reports that some held were left out for that bound.
func (s *lobbyStore) byIDs(lobby LobbyID, ids []MsgID, maxBytes int) (out []LobbyMessage, truncated bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		seen := tx.Bucket(bucketLobbySeen).Bucket(lobby[:])
		hist := tx.Bucket(bucketLobbyHistory).Bucket(lobby[:])
		if seen == nil || hist == nil {
			return nil
		}
		size := 0
		for _, id := range ids {
			k := seen.Get(id[:])
			if len(k) != 8 {
				continue
			}
			v := hist.Get(k)
			if v == nil {
				continue
			}
			size += len(v) + 8
			if size > maxBytes && len(out) > 0 {
				truncated = true
				return nil
			}
			m, err := decodeStored(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("reading lobby history: %w", err)
	}
	return out, truncated, nil
}
