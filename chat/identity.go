package chat

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"filippo.io/edwards25519"
	"github.com/flynn/noise"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/curve25519"
	"lukechampine.com/blake3"

	"kith/internal/store"
)

// ChatID is a chat identity's public key: an ed25519 key that signs lobby
// messages and, in its X25519 form, is the static key of distant chat. It
// is not linked to the node's key anywhere on the wire.
type ChatID [ed25519.PublicKeySize]byte

// chatIDPrefix starts the text form of a ChatID.
const chatIDPrefix = "kc"

var chatIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// String returns the text form users share: "kc", then the key and a
// 2-byte checksum in lowercase base32 (57 characters in all).
func (id ChatID) String() string {
	sum := blake3.Sum256(id[:])
	b := append(id[:], sum[:2]...)
	return chatIDPrefix + strings.ToLower(chatIDEncoding.EncodeToString(b))
}

// Short returns the first characters of the text form, for display.
func (id ChatID) Short() string { return id.String()[:12] }

// MarshalText writes the text form of the chat id.
func (id ChatID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the text form of a chat id.
func (id *ChatID) UnmarshalText(b []byte) error {
	v, err := ParseChatID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Errors of chat identities.
var (
	// ErrBadChatID means a text is not a chat id (wrong prefix, length,
	// characters or checksum, or not a valid public key).
	ErrBadChatID = errors.New("not a chat id")
	// ErrBadNick means a nickname is empty, too long or not UTF-8 text.
	ErrBadNick = errors.New("bad nickname")
	// ErrUnknownIdentity means no chat identity of this node matches.
	ErrUnknownIdentity = errors.New("no such chat identity")
	// ErrNoIdentity means the node has no chat identity yet.
	ErrNoIdentity = errors.New("no chat identity: create one with `kith identity new NICK`")
	// ErrAmbiguousIdentity means a reference matches several identities.
	ErrAmbiguousIdentity = errors.New("several chat identities match")
)

// ParseChatID parses the text form made by ChatID.String.
func ParseChatID(s string) (ChatID, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, chatIDPrefix) || len(s) != len(chatIDPrefix)+55 {
		return ChatID{}, fmt.Errorf("%w: want %q and 55 characters", ErrBadChatID, chatIDPrefix)
	}
	b, err := chatIDEncoding.DecodeString(strings.ToUpper(s[len(chatIDPrefix):]))
	if err != nil || len(b) != 34 {
		return ChatID{}, fmt.Errorf("%w: bad characters", ErrBadChatID)
	}
	var id ChatID
	copy(id[:], b)
	sum := blake3.Sum256(id[:])
	if sum[0] != b[32] || sum[1] != b[33] {
		return ChatID{}, fmt.Errorf("%w: checksum does not match (a typo?)", ErrBadChatID)
	}
	if _, err := id.X25519(); err != nil {
		return ChatID{}, fmt.Errorf("%w: %w", ErrBadChatID, err)
	}
	return id, nil
}

// X25519 returns the Montgomery form of the key: the static public key
// that distant chat's Noise_XK handshake proves.
func (id ChatID) X25519() ([32]byte, error) {
	p, err := new(edwards25519.Point).SetBytes(id[:])
	if err != nil {
		return [32]byte{}, fmt.Errorf("converting chat id: %w", err)
	}
	return [32]byte(p.BytesMontgomery()), nil
}

// Identity is one of this node's pseudonymous chat identities.
type Identity struct {
	ID      ChatID
	Nick    string
	Created time.Time
	key     ed25519.PrivateKey
}

// Sign signs msg with the identity's key.
func (i Identity) Sign(msg []byte) []byte { return ed25519.Sign(i.key, msg) }

// DHKey returns the identity's X25519 key pair for Noise, derived from the
// ed25519 key the standard way (RFC 8032's hashed seed, clamped by X25519).
func (i Identity) DHKey() noise.DHKey {
	h := sha512.Sum512(i.key.Seed())
	priv := h[:32]
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		panic("chat: X25519 of a hashed seed failed: " + err.Error()) // only for low-order points, impossible here
	}
	return noise.DHKey{Private: priv, Public: pub}
}

// identityRecord is an Identity as stored in bbolt.
type identityRecord struct {
	Nick    string    `json:"nick"`
	Seed    []byte    `json:"seed"`
	Created time.Time `json:"created"`
}

// Identities holds this node's chat identities, in bbolt and in memory.
// It is safe for concurrent use.
type Identities struct {
	db *bolt.DB

	mu   sync.RWMutex
	byID map[ChatID]Identity
}

// OpenIdentities loads the chat identities from db.
func OpenIdentities(db *bolt.DB) (*Identities, error) {
	if err := store.CreateBuckets(db, bucketIdentities); err != nil {
		return nil, err
	}
	ids := &Identities{db: db, byID: map[ChatID]Identity{}}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdentities).ForEach(func(k, v []byte) error {
			var r identityRecord
			if err := json.Unmarshal(v, &r); err != nil || len(r.Seed) != ed25519.SeedSize || len(k) != len(ChatID{}) {
				return fmt.Errorf("chat identity %x: bad record", k)
			}
			key := ed25519.NewKeyFromSeed(r.Seed)
			id := ChatID(key.Public().(ed25519.PublicKey))
			if string(k) != string(id[:]) {
				return fmt.Errorf("chat identity %x: key does not match", k)
			}
			ids.byID[id] = Identity{ID: id, Nick: r.Nick, Created: r.Created, key: key}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading chat identities: %w", err)
	}
	return ids, nil
}

// CheckNick checks a nickname: 1 to MaxNickSize bytes of UTF-8 without
// control characters.
func CheckNick(nick string) error {
	if nick == "" || len(nick) > MaxNickSize || !utf8.ValidString(nick) {
		return fmt.Errorf("%w: 1 to %d bytes of text", ErrBadNick, MaxNickSize)
	}
	for _, r := range nick {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control characters", ErrBadNick)
		}
	}
	return nil
}

// New makes a chat identity with a fresh key and stores it.
func (ids *Identities) New(nick string) (Identity, error) {
	nick = strings.TrimSpace(nick)
	if err := CheckNick(nick); err != nil {
		return Identity{}, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Identity{}, fmt.Errorf("making chat identity: %w", err)
	}
	id := Identity{ID: ChatID(key.Public().(ed25519.PublicKey)), Nick: nick, Created: time.Now().UTC(), key: key}
	rec, _ := json.Marshal(identityRecord{Nick: nick, Seed: key.Seed(), Created: id.Created})
	err = ids.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIdentities).Put(id.ID[:], rec)
	})
	if err != nil {
		return Identity{}, fmt.Errorf("storing chat identity: %w", err)
	}
	ids.mu.Lock()
	ids.byID[id.ID] = id
	ids.mu.Unlock()
	return id, nil
}

// List returns the identities, oldest first.
func (ids *Identities) List() []Identity {
	ids.mu.RLock()
	out := make([]Identity, 0, len(ids.byID))
	for _, id := range ids.byID {
		out = append(out, id)
	}
	ids.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return string(out[i].ID[:]) < string(out[j].ID[:])
	})
	return out
}

// Get returns the identity with id.
func (ids *Identities) Get(id ChatID) (Identity, bool) {
	ids.mu.RLock()
	defer ids.mu.RUnlock()
	i, ok := ids.byID[id]
	return i, ok
}

// Resolve finds an identity by its chat id, a prefix of its text form (at
// least 6 characters) or its nickname. An empty ref means the default
// identity: the oldest.
func (ids *Identities) Resolve(ref string) (Identity, error) {
	list := ids.List()
	ref = strings.TrimSpace(ref)
	if ref == "" {
		if len(list) == 0 {
			return Identity{}, ErrNoIdentity
		}
		return list[0], nil
	}
	var found []Identity
	for _, id := range list {
		s := id.ID.String()
		if s == ref || id.Nick == ref || (len(ref) >= 6 && strings.HasPrefix(s, ref)) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: %q", ErrUnknownIdentity, ref)
	case 1:
		return found[0], nil
	default:
		return Identity{}, fmt.Errorf("%w: %q; use the chat id", ErrAmbiguousIdentity, ref)
	}
}
