package chat

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"kith/chat/pb"
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
	// ErrOutboxFull means a conversation has MaxOutbox messages (or
	// MaxOutboxBytes of text) waiting.
	ErrOutboxFull = fmt.Errorf("outbox full: %d messages or %d MiB wait for the peer; send more once they are delivered",
		MaxOutbox, MaxOutboxBytes>>20)
	// ErrChatStorageFull means the chat history of all conversations is at
	// ChatStorageBudget: nothing that grows it is stored.
	ErrChatStorageFull = fmt.Errorf("chat storage full: %d MiB of chat history is stored; "+
		"delete what you no longer need (`kith distant rm CHATID`, `kith chat clear FRIEND`)", ChatStorageBudget>>20)
	// errRequestFull means a distant request is at its quota, or all
	// requests at theirs: the message waits in the sender's outbox until
	// the user accepts the request.
	errRequestFull = errors.New("distant request over its quota: waits until accepted")
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

// MessageCost is what a message of text counts against the budgets.
func MessageCost(text string) int64 { return int64(len(text)) + MessageOverhead }

// convKey names a conversation in the store: "f" and a friend's peer ID,
// or "d", our chat id and the peer's chat id.
type convKey string

func friendConv(p peer.ID) convKey { return convKey("f" + string(p)) }

func distantConv(local, remote ChatID) convKey {
	return convKey("d" + string(local[:]) + string(remote[:]))
}

func (c convKey) isDistant() bool { return len(c) > 0 && c[0] == 'd' }

// Keys of bucketUsage that are not conversations (those start with 'f' or
// 'd').
var (
	usageTotalKey    = []byte("\x00total")    // every conversation: Bytes, Msgs
	usageRequestsKey = []byte("\x00requests") // distant requests: Bytes, Msgs = their number
	usageVersionKey  = []byte("\x00version")  // 8 bytes: historyVersion once migrated
)

// historyVersion is the layout of the history buckets: 1 is compact
// records (recordProto) with usage counted in bucketUsage.
const historyVersion = 1

// usage is what one conversation (or all, or the requests) holds.
type usage struct {
	Bytes    int64 // MessageCost of the messages stored
	Msgs     int64
	Trimmed  int64 // messages deleted to keep HistoryBudget
	OutBytes int64 // MessageCost of the messages in the outbox
	Unread   int64 // incoming messages after the read mark
}

func (u usage) encode() []byte {
	b := make([]byte, 0, 40)
	for _, v := range []int64{u.Bytes, u.Msgs, u.Trimmed, u.OutBytes, u.Unread} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodeUsage(b []byte) usage {
	var v [5]int64
	for i := range v {
		if len(b) >= 8*(i+1) {
			v[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
		}
	}
	return usage{v[0], v[1], v[2], v[3], v[4]}
}

func getUsage(b *bolt.Bucket, k []byte) usage { return decodeUsage(b.Get(k)) }

func putUsage(b *bolt.Bucket, k []byte, u usage) error { return b.Put(k, u.encode()) }

// Record forms of a stored message.
const (
	recordProto = 0x01 // then a pb.StoredMessage
	recordJSON  = '{'  // the JSON of a Message (before version 1)
)

func encodeRecord(m Message) []byte {
	w := &pb.StoredMessage{Id: m.ID[:], TimeMs: m.Time.UnixMilli(), StoredMs: m.Stored.UnixMilli(),
		Out: m.Out, Delivered: m.Delivered, Text: m.Text}
	b, err := proto.MarshalOptions{}.MarshalAppend([]byte{recordProto}, w)
	if err != nil {
		panic("chat: encoding a stored message: " + err.Error()) // only for invalid UTF-8, checked before
	}
	return b
}

func decodeRecord(k, v []byte) (Message, error) {
	var m Message
	if len(v) == 0 {
		return m, fmt.Errorf("message %x: empty record", k)
	}
	switch v[0] {
	case recordProto:
		var w pb.StoredMessage
		if err := proto.Unmarshal(v[1:], &w); err != nil || len(w.Id) != len(MsgID{}) {
			return m, fmt.Errorf("message %x: bad record", k)
		}
		m = Message{ID: MsgID(w.Id), Time: time.UnixMilli(w.TimeMs).UTC(), Stored: time.UnixMilli(w.StoredMs).UTC(),
			Out: w.Out, Delivered: w.Delivered, Text: w.Text}
	case recordJSON:
		if err := json.Unmarshal(v, &m); err != nil {
			return m, fmt.Errorf("message %x: %w", k, err)
		}
	default:
		return m, fmt.Errorf("message %x: unknown record form %#x", k, v[0])
	}
	if len(k) == 8 {
		m.Seq = binary.BigEndian.Uint64(k)
	}
	return m, nil
}

// history is the store of every conversation: messages, the ids seen, the
// outboxes, read marks, what each conversation holds and the state of
// distant ones. Each method is one bbolt transaction.
type history struct {
	db *bolt.DB
	// budget is HistoryBudget, total ChatStorageBudget; tests lower them.
	budget, total int64
}

func openHistory(db *bolt.DB) (*history, error) {
	if err := store.CreateBuckets(db, bucketHistory, bucketSeen, bucketOutbox, bucketRead, bucketUsage, bucketDistant); err != nil {
		return nil, err
	}
	h := &history{db: db, budget: HistoryBudget, total: ChatStorageBudget}
	if err := h.migrate(); err != nil {
		return nil, fmt.Errorf("migrating chat history: %w", err)
	}
	return h, nil
}

// migrate brings a store of an earlier version to historyVersion: JSON
// records are rewritten in the compact form (in batches, so a large
// history costs bounded memory; a record that does not decode is kept as
// it is), then what each conversation holds is counted, and distant
// conversations get a state: accepted if this node ever wrote in them,
// else a request. Nothing is deleted. It is idempotent: a migration cut
// short is finished at the next open.
func (h *history) migrate() error {
	var done bool
	h.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketUsage).Get(usageVersionKey)
		done = len(v) == 8 && binary.BigEndian.Uint64(v) >= historyVersion
		return nil
	})
	if done {
		return nil
	}
	var convs [][]byte
	h.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHistory).ForEachBucket(func(k []byte) error {
			convs = append(convs, slices.Clone(k))
			return nil
		})
	})
	const batch = 4096
	for _, conv := range convs {
		var from []byte
		for {
			var next []byte
			err := h.db.Update(func(tx *bolt.Tx) error {
				hist := tx.Bucket(bucketHistory).Bucket(conv)
				type rec struct{ k, v []byte }
				var redo []rec
				c := hist.Cursor()
				k, v := c.First()
				if from != nil {
					k, v = c.Seek(from)
				}
				n := 0
				for ; k != nil && n < batch; k, v = c.Next() {
					n++
					if len(v) > 0 && v[0] == recordJSON {
						if m, err := decodeRecord(k, v); err == nil {
							redo = append(redo, rec{slices.Clone(k), encodeRecord(m)})
						}
					}
				}
				if k != nil {
					next = slices.Clone(k)
				}
				for _, r := range redo {
					if err := hist.Put(r.k, r.v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if next == nil {
				break
			}
			from = next
		}
	}
	return h.db.Update(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUsage)
		var total, requests usage
		for _, conv := range convs {
			hist := tx.Bucket(bucketHistory).Bucket(conv)
			out := tx.Bucket(bucketOutbox).Bucket(conv)
			readMark := readMarkTx(tx, convKey(conv))
			var u usage
			wrote := false
			err := hist.ForEach(func(k, v []byte) error {
				m, err := decodeRecord(k, v)
				if err != nil {
					u.Bytes += int64(len(v)) + MessageOverhead
					u.Msgs++
					return nil
				}
				cost := MessageCost(m.Text)
				u.Bytes += cost
				u.Msgs++
				if out != nil && out.Get(k) != nil {
					u.OutBytes += cost
				}
				if m.Out {
					wrote = true
				} else if m.Seq > readMark {
					u.Unread++
				}
				return nil
			})
			if err != nil {
				return err
			}
			if err := putUsage(ub, conv, u); err != nil {
				return err
			}
			total.Bytes += u.Bytes
			total.Msgs += u.Msgs
			if convKey(conv).isDistant() && tx.Bucket(bucketDistant).Get(conv) == nil {
				state := distantRequest
				if wrote {
					state = distantAccepted
				} else {
					requests.Bytes += u.Bytes
					requests.Msgs++
				}
				if err := putDistantState(tx, convKey(conv), state); err != nil {
					return err
				}
			}
		}
		if err := putUsage(ub, usageTotalKey, total); err != nil {
			return err
		}
		if err := putUsage(ub, usageRequestsKey, requests); err != nil {
			return err
		}
		return ub.Put(usageVersionKey, binary.BigEndian.AppendUint64(nil, historyVersion))
	})
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func readMarkTx(tx *bolt.Tx, conv convKey) uint64 {
	if b := tx.Bucket(bucketRead).Get([]byte(conv)); len(b) == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// convTx is one conversation's buckets in a write transaction.
type convTx struct {
	tx                   *bolt.Tx
	conv                 convKey
	hist, seen, out, use *bolt.Bucket
	u                    usage
}

func openConvTx(tx *bolt.Tx, conv convKey) (*convTx, error) {
	c := &convTx{tx: tx, conv: conv, use: tx.Bucket(bucketUsage)}
	var err error
	if c.seen, err = tx.Bucket(bucketSeen).CreateBucketIfNotExists([]byte(conv)); err != nil {
		return nil, err
	}
	if c.hist, err = tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(conv)); err != nil {
		return nil, err
	}
	if c.out, err = tx.Bucket(bucketOutbox).CreateBucketIfNotExists([]byte(conv)); err != nil {
		return nil, err
	}
	c.u = getUsage(c.use, []byte(conv))
	return c, nil
}

// adjust adds d (bytes and messages) to the conversation's usage, the
// total and, for a request, the requests'.
func (c *convTx) adjust(bytes, msgs int64, request bool) error {
	c.u.Bytes += bytes
	c.u.Msgs += msgs
	t := getUsage(c.use, usageTotalKey)
	t.Bytes += bytes
	t.Msgs += msgs
	if err := putUsage(c.use, usageTotalKey, t); err != nil {
		return err
	}
	if request {
		r := getUsage(c.use, usageRequestsKey)
		r.Bytes += bytes
		if err := putUsage(c.use, usageRequestsKey, r); err != nil {
			return err
		}
	}
	return nil
}

func (c *convTx) save() error { return putUsage(c.use, []byte(c.conv), c.u) }

// append stores m as the next message of conv. For an incoming message it
// reports dup (and stores nothing) if its id is already in the history;
// an outgoing one also enters the outbox.
func (h *history) append(conv convKey, m Message) (Message, bool, error) {
	dup := false
	err := h.db.Update(func(tx *bolt.Tx) (err error) {
		c, err := openConvTx(tx, conv)
		if err != nil {
			return err
		}
		if m.Out && conv.isDistant() {
			if err := acceptTx(tx, conv); err != nil { // the user answered
				return err
			}
		}
		m, dup, err = h.appendTx(c, m)
		if err != nil {
			return err
		}
		return c.save()
	})
	if err != nil {
		if errors.Is(err, ErrOutboxFull) || errors.Is(err, ErrChatStorageFull) {
			return Message{}, false, err
		}
		return Message{}, false, fmt.Errorf("storing message: %w", err)
	}
	return m, dup, nil
}

// appendIncoming stores the incoming messages ms of conv in one
// transaction, in order, dropping those already in the history. It
// returns the ones stored and the ids to ack (stored and duplicates);
// if a message had to be refused (ErrChatStorageFull, errRequestFull),
// it and those after it are neither stored nor acked, and refused says
// why.
func (h *history) appendIncoming(conv convKey, ms []Message) (stored []Message, ack []MsgID, refused error, err error) {
	err = h.db.Update(func(tx *bolt.Tx) error {
		stored, ack, refused = stored[:0], ack[:0], nil
		c, err := openConvTx(tx, conv)
		if err != nil {
			return err
		}
		for _, m := range ms {
			m.Out = false
			m, dup, err := h.appendTx(c, m)
			if errors.Is(err, ErrChatStorageFull) || errors.Is(err, errRequestFull) {
				refused = err
				break
			}
			if err != nil {
				return err
			}
			ack = append(ack, m.ID)
			if !dup {
				stored = append(stored, m)
			}
		}
		return c.save()
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("storing messages: %w", err)
	}
	return stored, ack, refused, nil
}

// appendTx stores m in c unless its id is there (dup), within the
// budgets: the outbox caps for an outgoing message, a request's quota
// for an incoming one of a distant request, ChatStorageBudget for any
// that would grow the store. Past HistoryBudget it deletes the oldest
// messages not waiting for delivery.
func (h *history) appendTx(c *convTx, m Message) (Message, bool, error) {
	if k := c.seen.Get(m.ID[:]); k != nil {
		// An outgoing message sent again (SendKeyed): the one stored,
		// unless it was trimmed since.
		if v := c.hist.Get(k); m.Out && v != nil {
			if old, err := decodeRecord(k, v); err == nil {
				return old, true, nil
			}
		}
		return m, true, nil
	}
	cost := MessageCost(m.Text)
	state := distantNone
	if c.conv.isDistant() {
		state = distantStateTx(c.tx, c.conv)
	}
	request := state == distantRequest
	if m.Out {
		if c.u.OutBytes+cost > MaxOutboxBytes || c.out.Stats().KeyN >= MaxOutbox {
			return m, false, ErrOutboxFull
		}
	} else if c.conv.isDistant() && state != distantAccepted {
		if state == distantNone {
			return m, false, errRequestFull // a request must be opened first (openRequest)
		}
		r := getUsage(c.use, usageRequestsKey)
		if c.u.Msgs >= DistantRequestMessages || c.u.Bytes+cost > DistantRequestBytes || r.Bytes+cost > DistantRequestsBytes {
			return m, false, errRequestFull
		}
	}
	// What this message may grow the store by: all of it below the
	// budget; at the budget the oldest make room.
	if grow := min(cost, max(0, h.budget-c.u.Bytes)); grow > 0 && getUsage(c.use, usageTotalKey).Bytes+grow > h.total {
		return m, false, ErrChatStorageFull
	}
	seq, err := c.hist.NextSequence()
	if err != nil {
		return m, false, err
	}
	m.Seq = seq
	m.Stored = time.Now().UTC().Truncate(time.Millisecond)
	if m.Out {
		if err := c.out.Put(seqKey(m.Seq), nil); err != nil {
			return m, false, err
		}
		c.u.OutBytes += cost
	} else {
		c.u.Unread++
	}
	if err := c.hist.Put(seqKey(m.Seq), encodeRecord(m)); err != nil {
		return m, false, err
	}
	if err := c.seen.Put(m.ID[:], seqKey(m.Seq)); err != nil {
		return m, false, err
	}
	if err := c.adjust(cost, 1, request); err != nil {
		return m, false, err
	}
	return m, false, h.trim(c, request)
}

// trim deletes the oldest messages of c that are not in its outbox
// while c is over its budget, at most TrimBatch of them.
func (h *history) trim(c *convTx, request bool) error {
	if c.u.Bytes <= h.budget {
		return nil
	}
	readMark := readMarkTx(c.tx, c.conv)
	type victim struct {
		k    []byte
		id   MsgID
		cost int64
		in   bool // incoming after the read mark
	}
	var vs []victim
	over := c.u.Bytes - h.budget
	cur := c.hist.Cursor()
	scanned := 0
	for k, v := cur.First(); k != nil && over > 0 && len(vs) < TrimBatch && scanned < MaxOutbox+TrimBatch; k, v = cur.Next() {
		scanned++
		if c.out.Get(k) != nil {
			continue // waits for delivery: kept
		}
		m, err := decodeRecord(k, v)
		cost := MessageCost(m.Text)
		if err != nil {
			cost = int64(len(v)) + MessageOverhead
		}
		vs = append(vs, victim{slices.Clone(k), m.ID, cost, err == nil && !m.Out && m.Seq > readMark})
		over -= cost
	}
	var freed int64
	for _, v := range vs {
		if err := c.hist.Delete(v.k); err != nil {
			return err
		}
		if sk := c.seen.Get(v.id[:]); sk != nil && string(sk) == string(v.k) {
			if err := c.seen.Delete(v.id[:]); err != nil {
				return err
			}
		}
		freed += v.cost
		if v.in {
			c.u.Unread--
		}
	}
	c.u.Trimmed += int64(len(vs))
	return c.adjust(-freed, -int64(len(vs)), request)
}

// acked removes the messages with ids from conv's outbox and marks them
// delivered; it returns those that were waiting.
func (h *history) acked(conv convKey, ids []MsgID) ([]Message, error) {
	var done []Message
	err := h.db.Update(func(tx *bolt.Tx) error {
		done = done[:0]
		seen := tx.Bucket(bucketSeen).Bucket([]byte(conv))
		hist := tx.Bucket(bucketHistory).Bucket([]byte(conv))
		out := tx.Bucket(bucketOutbox).Bucket([]byte(conv))
		if seen == nil || hist == nil || out == nil {
			return nil
		}
		ub := tx.Bucket(bucketUsage)
		u := getUsage(ub, []byte(conv))
		for _, id := range ids {
			sk := seen.Get(id[:])
			if sk == nil || out.Get(sk) == nil {
				continue // unknown, or acked before
			}
			sk = slices.Clone(sk)
			m, err := decodeRecord(sk, hist.Get(sk))
			if err != nil {
				return err
			}
			m.Delivered = true
			if err := hist.Put(sk, encodeRecord(m)); err != nil {
				return err
			}
			if err := out.Delete(sk); err != nil {
				return err
			}
			u.OutBytes -= MessageCost(m.Text)
			done = append(done, m)
		}
		return putUsage(ub, []byte(conv), u)
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
			m, err := decodeRecord(k, hist.Get(k))
			if err != nil {
				return err
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

// pageFull reports whether a page of ms, of text bytes, is full: at most
// limit messages and MaxLogPageBytes of text, at least one message.
func pageFull(n, bytes, next, limit int) bool {
	return n >= limit || (n > 0 && bytes+next > MaxLogPageBytes)
}

func pageLimit(limit int) int {
	if limit <= 0 || limit > MaxLogPage {
		return MaxLogPage
	}
	return limit
}

// list returns a page of conv: the messages stored after seq after and,
// if since is not zero, stored (received, or written here) at or after
// since by this node's clock, not the author's, which may be wrong; in
// the order they were stored; at most
// limit (MaxLogPage if 0) and MaxLogPageBytes of text. An empty page
// means there is no more.
func (h *history) list(conv convKey, after uint64, since time.Time, limit int) ([]Message, error) {
	limit = pageLimit(limit)
	since = since.Truncate(time.Millisecond) // as Stored is kept
	var ms []Message
	err := h.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory).Bucket([]byte(conv))
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		bytes := 0
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			m, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			if !since.IsZero() && m.Stored.Before(since) {
				continue
			}
			if pageFull(len(ms), bytes, len(m.Text), limit) {
				break
			}
			bytes += len(m.Text)
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading history: %w", err)
	}
	return ms, nil
}

// listBefore returns the page of conv that ends just before seq before
// (0: the newest page), oldest first, bounded as list's.
func (h *history) listBefore(conv convKey, before uint64, limit int) ([]Message, error) {
	limit = pageLimit(limit)
	var ms []Message
	err := h.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket(bucketHistory).Bucket([]byte(conv))
		if hist == nil {
			return nil
		}
		c := hist.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else if k, _ = c.Seek(seqKey(before)); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		bytes := 0
		for ; k != nil; k, v = c.Prev() {
			m, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			if pageFull(len(ms), bytes, len(m.Text), limit) {
				break
			}
			bytes += len(m.Text)
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading history: %w", err)
	}
	slices.Reverse(ms)
	return ms, nil
}

// last returns the newest message of conv, if any.
func (h *history) last(conv convKey) (Message, bool) {
	var m Message
	ok := false
	h.db.View(func(tx *bolt.Tx) error {
		if hist := tx.Bucket(bucketHistory).Bucket([]byte(conv)); hist != nil {
			if k, v := hist.Cursor().Last(); k != nil {
				var err error
				m, err = decodeRecord(k, v)
				ok = err == nil
			}
		}
		return nil
	})
	return m, ok
}

// summary returns the state of conv: unread, pending, what it holds and
// the newest message.
func (h *history) summary(conv convKey) Summary {
	var u usage
	state := distantNone
	h.db.View(func(tx *bolt.Tx) error {
		u = getUsage(tx.Bucket(bucketUsage), []byte(conv))
		if conv.isDistant() {
			state = distantStateTx(tx, conv)
		}
		return nil
	})
	sum := Summary{Unread: int(u.Unread), Pending: h.pending(conv), Messages: int(u.Msgs), Stored: u.Bytes,
		Trimmed: int(u.Trimmed), Request: state == distantRequest}
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
		ub := tx.Bucket(bucketUsage)
		if u := getUsage(ub, []byte(conv)); u.Unread != 0 {
			u.Unread = 0
			if err := putUsage(ub, []byte(conv), u); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketRead).Put([]byte(conv), seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("marking read: %w", err)
	}
	return nil
}

// clear deletes the messages of conv that are not waiting for delivery
// (keepOutbox) or all of it with its read mark and state (a distant
// conversation the user deletes).
func (h *history) clear(conv convKey, keepOutbox bool) error {
	err := h.db.Update(func(tx *bolt.Tx) error {
		k := []byte(conv)
		hist := tx.Bucket(bucketHistory).Bucket(k)
		out := tx.Bucket(bucketOutbox).Bucket(k)
		ub := tx.Bucket(bucketUsage)
		u := getUsage(ub, k)
		request := conv.isDistant() && distantStateTx(tx, conv) == distantRequest
		t := getUsage(ub, usageTotalKey)
		if !keepOutbox || hist == nil {
			t.Bytes -= u.Bytes
			t.Msgs -= u.Msgs
			for _, name := range [][]byte{bucketHistory, bucketSeen, bucketOutbox} {
				if tx.Bucket(name).Bucket(k) != nil {
					if err := tx.Bucket(name).DeleteBucket(k); err != nil {
						return err
					}
				}
			}
			for _, name := range [][]byte{bucketRead, bucketUsage, bucketDistant} {
				if err := tx.Bucket(name).Delete(k); err != nil {
					return err
				}
			}
			if request {
				r := getUsage(ub, usageRequestsKey)
				r.Bytes -= u.Bytes
				r.Msgs--
				if err := putUsage(ub, usageRequestsKey, r); err != nil {
					return err
				}
			}
			return putUsage(ub, usageTotalKey, t)
		}
		// Keep the outbox: delete the rest, a batch of keys at a time.
		seen := tx.Bucket(bucketSeen).Bucket(k)
		var keys [][]byte
		var ids []MsgID
		var freed, n int64
		err := hist.ForEach(func(key, v []byte) error {
			if out != nil && out.Get(key) != nil {
				return nil
			}
			m, err := decodeRecord(key, v)
			cost := MessageCost(m.Text)
			if err != nil {
				cost = int64(len(v)) + MessageOverhead
			}
			keys = append(keys, slices.Clone(key))
			ids = append(ids, m.ID)
			freed += cost
			n++
			return nil
		})
		if err != nil {
			return err
		}
		for i, key := range keys {
			if err := hist.Delete(key); err != nil {
				return err
			}
			if seen != nil {
				if err := seen.Delete(ids[i][:]); err != nil {
					return err
				}
			}
		}
		u.Bytes -= freed
		u.Msgs -= n
		u.Unread = 0
		t.Bytes -= freed
		t.Msgs -= n
		if err := putUsage(ub, k, u); err != nil {
			return err
		}
		return putUsage(ub, usageTotalKey, t)
	})
	if err != nil {
		return fmt.Errorf("deleting history: %w", err)
	}
	return nil
}

// totals returns what all conversations and the distant requests hold.
func (h *history) totals() (all, requests usage) {
	h.db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUsage)
		all, requests = getUsage(ub, usageTotalKey), getUsage(ub, usageRequestsKey)
		return nil
	})
	return all, requests
}

// States of a distant conversation (bucketDistant).
const (
	distantNone     byte = 0 // not a distant conversation, or unknown
	distantRequest  byte = 1 // from an identity the user has not answered
	distantAccepted byte = 2 // the user wrote in it or accepted it
)

func distantStateTx(tx *bolt.Tx, conv convKey) byte {
	if v := tx.Bucket(bucketDistant).Get([]byte(conv)); len(v) > 0 {
		return v[0]
	}
	return distantNone
}

func putDistantState(tx *bolt.Tx, conv convKey, state byte) error {
	v := binary.BigEndian.AppendUint64([]byte{state}, uint64(time.Now().UnixMilli()))
	return tx.Bucket(bucketDistant).Put([]byte(conv), v)
}

// acceptTx makes conv an accepted distant conversation; a request's
// messages leave the requests' budget.
func acceptTx(tx *bolt.Tx, conv convKey) error {
	switch distantStateTx(tx, conv) {
	case distantAccepted:
		return nil
	case distantRequest:
		ub := tx.Bucket(bucketUsage)
		u := getUsage(ub, []byte(conv))
		r := getUsage(ub, usageRequestsKey)
		r.Bytes -= u.Bytes
		r.Msgs--
		if err := putUsage(ub, usageRequestsKey, r); err != nil {
			return err
		}
	}
	return putDistantState(tx, conv, distantAccepted)
}

// openRequest makes conv, a distant conversation without a state, a
// request if there is room for one more (MaxDistantRequests); it
// returns the state conv has then.
func (h *history) openRequest(conv convKey) (byte, error) {
	state := distantNone
	err := h.db.Update(func(tx *bolt.Tx) error {
		if state = distantStateTx(tx, conv); state != distantNone {
			return nil
		}
		ub := tx.Bucket(bucketUsage)
		r := getUsage(ub, usageRequestsKey)
		if r.Msgs >= MaxDistantRequests {
			return nil
		}
		r.Msgs++
		if err := putUsage(ub, usageRequestsKey, r); err != nil {
			return err
		}
		state = distantRequest
		return putDistantState(tx, conv, distantRequest)
	})
	if err != nil {
		return distantNone, fmt.Errorf("recording a distant request: %w", err)
	}
	return state, nil
}

// distantState returns the state of conv.
func (h *history) distantState(conv convKey) byte {
	state := distantNone
	h.db.View(func(tx *bolt.Tx) error {
		state = distantStateTx(tx, conv)
		return nil
	})
	return state
}

// accept makes conv an accepted distant conversation.
func (h *history) accept(conv convKey) error {
	err := h.db.Update(func(tx *bolt.Tx) error { return acceptTx(tx, conv) })
	if err != nil {
		return fmt.Errorf("accepting a distant conversation: %w", err)
	}
	return nil
}

// distantConvs returns every distant conversation with a state.
func (h *history) distantConvs() (map[convKey]byte, error) {
	out := map[convKey]byte{}
	err := h.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDistant).ForEach(func(k, v []byte) error {
			if len(v) > 0 && convKey(k).isDistant() {
				out[convKey(slices.Clone(k))] = v[0]
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading distant conversations: %w", err)
	}
	return out, nil
}
