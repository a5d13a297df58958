package chat

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"kith/internal/store"
)

// MsgID is a message's random 128-bit id.
type MsgID [16]byte

// String returns the id in hex.
func (id MsgID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the id in hex.
func (id MsgID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads an id in hex.
func (id *MsgID) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(id) {
		return fmt.Errorf("message id: want %d hex digits", 2*len(id))
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// NewMsgID returns a fresh random id.
func NewMsgID() MsgID {
	var id MsgID
	if _, err := rand.Read(id[:]); err != nil {
		panic("chat: crypto/rand failed: " + err.Error())
	}
	return id
}

// Message is one message of a conversation's history.
type Message struct {
	// Seq is the message's place in this node's history of the
	// conversation, from 1.
	Seq uint64 `json:"seq"`
	ID  MsgID  `json:"id"`
	// Time is the author's clock when it was written.
	Time time.Time `json:"time"`
	// Stored is this node's clock when it entered the history.
	Stored time.Time `json:"stored"`
	// Out is set for messages this node wrote.
	Out  bool   `json:"out"`
	Text string `json:"text"`
	// Delivered is set on an outgoing message once the peer acked it.
	Delivered bool `json:"delivered,omitempty"`
}

// Errors of messages and history.
var (
	// ErrEmptyText means a message has no text.
	ErrEmptyText = errors.New("empty message")
	// ErrTextTooLong means a message's text is over MaxTextSize.
	ErrTextTooLong = fmt.Errorf("message longer than %d bytes", MaxTextSize)
	// ErrBadText means a message's text is not UTF-8.
	ErrBadText = errors.New("message is not UTF-8 text")
	// ErrOutboxFull means a conversation has MaxOutbox messages waiting.
	ErrOutboxFull = fmt.Errorf("outbox full: %d messages wait for the peer", MaxOutbox)
)

// CheckText checks the text of a message before it is stored or sent.
func CheckText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return ErrEmptyText
	case len(text) > MaxTextSize:
		return fmt.Errorf("%w (%d bytes)", ErrTextTooLong, len(text))
	case !utf8.ValidString(text):
		return ErrBadText
	}
	return nil
}

// convKey names a conversation in the store: "f" and a friend's peer ID,
// or "d", our chat id and the peer's chat id.
type convKey string

func friendConv(p peer.ID) convKey { return convKey("f" + string(p)) }

func distantConv(local, remote ChatID) convKey {
	return convKey("d" + string(local[:]) + string(remote[:]))
}

// history is the store of every conversation: messages, the ids seen, the
// outboxes and read marks. Each method is one bbolt transaction.
type history struct {
	db *bolt.DB
}

func openHistory(db *bolt.DB) (*history, error) {
	if err := store.CreateBuckets(db, bucketHistory, bucketSeen, bucketOutbox, bucketRead); err != nil {
		return nil, err
	}
	return &history{db: db}, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// append stores m as the next message of conv. For an incoming message it
// reports dup (and stores nothing) if its id is already in the history;
// an outgoing one also enters the outbox.
func (h *history) append(conv convKey, m Message) (Message, bool, error) {
	dup := false
	err := h.db.Update(func(tx *bolt.Tx) (err error) {
		m, dup, err = appendTx(tx, conv, m)
		return err
	})
	if err != nil {
		return Message{}, false, fmt.Errorf("storing message: %w", err)
	}
	return m, dup, nil
}

// appendIncoming stores the incoming messages ms of conv in one
// transaction, dropping those already in the history; it returns the ones
// stored.
func (h *history) appendIncoming(conv convKey, ms []Message) ([]Message, error) {
	var stored []Message
	err := h.db.Update(func(tx *bolt.Tx) error {
		stored = stored[:0]
		for _, m := range ms {
			m.Out = false
			m, dup, err := appendTx(tx, conv, m)
			if err != nil {
				return err
			}
			if !dup {
				stored = append(stored, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing messages: %w", err)
	}
	return stored, nil
}

func appendTx(tx *bolt.Tx, conv convKey, m Message) (Message, bool, error) {
	seen, err := tx.Bucket(bucketSeen).CreateBucketIfNotExists([]byte(conv))
	if err != nil {
		return m, false, err
	}
	if seen.Get(m.ID[:]) != nil {
		return m, true, nil
	}
	hist, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(conv))
	if err != nil {
		return m, false, err
	}
	if m.Out {
		out, err := tx.Bucket(bucketOutbox).CreateBucketIfNotExists([]byte(conv))
		if err != nil {
			return m, false, err
		}
		if out.Stats().KeyN >= MaxOutbox {
			return m, false, ErrOutboxFull
		}
		if m.Seq, err = hist.NextSequence(); err != nil {
			return m, false, err
		}
		if err := out.Put(seqKey(m.Seq), nil); err != nil {
			return m, false, err
		}
	} else if m.Seq, err = hist.NextSequence(); err != nil {
		return m, false, err
	}
	m.Stored = time.Now().UTC()
	b, err := json.Marshal(m)
	if err != nil {
		return m, false, err
	}
	if err := hist.Put(seqKey(m.Seq), b); err != nil {
		return m, false, err
	}
	return m, false, seen.Put(m.ID[:], seqKey(m.Seq))
}

// acked removes the messages with ids from conv's outbox and marks them
// delivered; it returns those that were waiting.
func (h *history) acked(conv convKey, ids []MsgID) ([]Message, error) {
	var done []Message
	err := h.db.Update(func(tx *bolt.Tx) error {
		seen := tx.Bucket(bucketSeen).Bucket([]byte(conv))
		hist := tx.Bucket(bucketHistory).Bucket([]byte(conv))
		out := tx.Bucket(bucketOutbox).Bucket([]byte(conv))
		if seen == nil || hist == nil || out == nil {
			return nil
		}
		for _, id := range ids {
			sk := seen.Get(id[:])
			if sk == nil || out.Get(sk) == nil {
				continue // unknown, or acked before
			}
			var m Message
			if err := json.Unmarshal(hist.Get(sk), &m); err != nil {
				return fmt.Errorf("message %x: %w", sk, err)
			}
			m.Delivered = true
			b, _ := json.Marshal(m)
			if err := hist.Put(sk, b); err != nil {
				return err
			}
			if err := out.Delete(sk); err != nil {
				return err
			}
			done = append(done, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording acks: %w", err)
	}
	return done, nil
}

// outbox returns up to limit messages of conv waiting for an ack, with a
// sequence number above after, in order.
func (h *history) outbox(conv convKey, after uint64, limit int) ([]Message, error) {
	var ms []Message
	err := h.db.View(func(tx *bolt.Tx) error {
		out := tx.Bucket(bucketOutbox).Bucket([]byte(conv))
		hist := tx.Bucket(bucketHistory).Bucket([]byte(conv))
		if out == nil || hist == nil {
			return nil
		}
		c := out.Cursor()
		for k, _ := c.Seek(seqKey(after + 1)); k != nil && len(ms) < limit; k, _ = c.Next() {
			var m Message
			if err := json.Unmarshal(hist.Get(k), &m); err != nil {
				return fmt.Errorf("message %x: %w", k, err)
			}
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	return ms, nil
}

// pending returns how many messages of conv wait for an ack.
func (h *history) pending(conv convKey) int {
	n := 0
	h.db.View(func(tx *bolt.Tx) error {
		if out := tx.Bucket(bucketOutbox).Bucket([]byte(conv)); out != nil {
			n = out.Stats().KeyN
		}
		return nil
	})
	return n
}

// pendingConvs returns the conversations whose outbox is not empty.
func (h *history) pendingConvs() ([]convKey, error) {
	var out []convKey
	err := h.db.View(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		return ob.ForEachBucket(func(k []byte) error {
			if first, _ := ob.Bucket(k).Cursor().First(); first != nil {
				out = append(out, convKey(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading outboxes: %w", err)
	}
	return out, nil
}

// list returns up to limit messages of conv stored after seq after and,
// if since is not zero, written at or after since, in order.
func (h *history) list(conv convKey, after uint64, since time.Time, limit int) ([]Message, error) {
	if limit <= 0 || limit > MaxLogPage {
		limit = MaxLogPage
	}
	var ms []Message
	err := h.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory).Bucket([]byte(conv))
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(ms) < limit; k, v = c.Next() {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("message %x: %w", k, err)
			}
			if !since.IsZero() && m.Time.Before(since) {
				continue
			}
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading history: %w", err)
	}
	return ms, nil
}

// last returns the newest message of conv, if any.
func (h *history) last(conv convKey) (Message, bool) {
	var m Message
	ok := false
	h.db.View(func(tx *bolt.Tx) error {
		if hist := tx.Bucket(bucketHistory).Bucket([]byte(conv)); hist != nil {
			if k, v := hist.Cursor().Last(); k != nil {
				ok = json.Unmarshal(v, &m) == nil
			}
		}
		return nil
	})
	return m, ok
}

// summary returns the state of conv: unread, pending and the newest message.
func (h *history) summary(conv convKey) Summary {
	sum := Summary{Unread: h.unread(conv), Pending: h.pending(conv)}
	if m, ok := h.last(conv); ok {
		sum.Last = &m
	}
	return sum
}

// markRead records that everything in conv up to now has been read.
func (h *history) markRead(conv convKey) error {
	err := h.db.Update(func(tx *bolt.Tx) error {
		var seq uint64
		if hist := tx.Bucket(bucketHistory).Bucket([]byte(conv)); hist != nil {
			seq = hist.Sequence()
		}
		return tx.Bucket(bucketRead).Put([]byte(conv), seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("marking read: %w", err)
	}
	return nil
}

// unread counts the incoming messages of conv after its read mark.
func (h *history) unread(conv convKey) int {
	n := 0
	h.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory).Bucket([]byte(conv))
		if hist == nil {
			return nil
		}
		var from uint64
		if b := tx.Bucket(bucketRead).Get([]byte(conv)); len(b) == 8 {
			from = binary.BigEndian.Uint64(b)
		}
		c := hist.Cursor()
		for k, v := c.Seek(seqKey(from + 1)); k != nil; k, v = c.Next() {
			var m struct {
				Out bool `json:"out"`
			}
			if json.Unmarshal(v, &m) == nil && !m.Out {
				n++
			}
		}
		return nil
	})
	return n
}
