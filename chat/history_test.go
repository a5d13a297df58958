package chat

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"kith/internal/store"
)

// writeOldHistory writes conversations as the JSON records of the store
// before version 1 did: a friend's (with one message waiting in the
// outbox) and two distant ones, one this node answered and one it did
// not.
func writeOldHistory(t *testing.T, db *bolt.DB, friend peer.ID, answered, stranger convKey, n int) {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketHistory, bucketSeen, bucketOutbox, bucketRead} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		for _, conv := range []convKey{friendConv(friend), answered, stranger} {
			hist, _ := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(conv))
			seen, _ := tx.Bucket(bucketSeen).CreateBucketIfNotExists([]byte(conv))
			out, _ := tx.Bucket(bucketOutbox).CreateBucketIfNotExists([]byte(conv))
			for i := range n {
				seq, _ := hist.NextSequence()
				m := Message{Seq: seq, ID: NewMsgID(), Time: time.UnixMilli(1700000000000 + int64(i)).UTC(),
					Stored: time.Now().UTC(), Text: fmt.Sprintf("<%d> old & <b>escaped</b>", i)}
				m.Out = conv != stranger && i%2 == 1
				m.Delivered = m.Out && i != n-2
				b, _ := json.Marshal(m)
				if err := hist.Put(seqKey(seq), b); err != nil {
					return err
				}
				seen.Put(m.ID[:], seqKey(seq))
				if m.Out && !m.Delivered {
					out.Put(seqKey(seq), nil)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHistoryMigratesJSON: a store of the JSON era opens with every
// message kept, rewritten compactly, counted, and its distant
// conversations sorted into accepted and requests.
func TestHistoryMigratesJSON(t *testing.T) {
	const n = 5001 // more than one migration batch
	a := newTestPeer(t)
	db, err := store.Open(a.dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	me, stranger, other := testIdentity(t, "me"), testIdentity(t, "stranger"), testIdentity(t, "other")
	friend := newTestPeer(t).ID
	answeredConv, strangerConv := distantConv(me.ID, other.ID), distantConv(me.ID, stranger.ID)
	writeOldHistory(t, db, friend, answeredConv, strangerConv, n)
	var before int
	db.View(func(tx *bolt.Tx) error {
		before = len(tx.Bucket(bucketHistory).Bucket([]byte(friendConv(friend))).Get(seqKey(1)))
		return nil
	})
	db.Close()

	a.Friends.Add(friend)
	a.start()
	h := a.svc.e.hist
	for _, conv := range []convKey{friendConv(friend), answeredConv, strangerConv} {
		var all []Message
		for after := uint64(0); ; {
			page, err := h.list(conv, after, time.Time{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].Seq
		}
		if len(all) != n {
			t.Fatalf("%d messages after the migration, want %d", len(all), n)
		}
		for i, m := range all {
			if m.Seq != uint64(i+1) || m.Text != fmt.Sprintf("<%d> old & <b>escaped</b>", i) || !m.Time.Equal(time.UnixMilli(1700000000000+int64(i))) {
				t.Fatalf("message %d after the migration: %+v", i, m)
			}
		}
		s := h.summary(conv)
		if s.Messages != n || s.Stored == 0 {
			t.Fatalf("summary after the migration: %+v", s)
		}
	}
	if s := h.summary(friendConv(friend)); s.Pending != 1 {
		t.Fatalf("the waiting message left the outbox: %+v", s)
	}
	if h.distantState(answeredConv) != distantAccepted || h.distantState(strangerConv) != distantRequest {
		t.Fatalf("distant states after the migration: answered %d, stranger %d", h.distantState(answeredConv), h.distantState(strangerConv))
	}
	var after int
	a.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketHistory).Bucket([]byte(friendConv(friend))).Get(seqKey(1))
		after = len(v)
		if v[0] != recordProto {
			t.Errorf("record not rewritten: %q", v)
		}
		return nil
	})
	if after >= before {
		t.Fatalf("a record of %d B as JSON takes %d B after the migration", before, after)
	}
	all, req := h.totals()
	if all.Msgs != 3*n || req.Msgs != 1 || req.Bytes != h.summary(strangerConv).Stored {
		t.Fatalf("totals after the migration: %+v, requests %+v", all, req)
	}
	// Opening again changes nothing.
	a.stop()
	a.start()
	if all2, _ := a.svc.e.hist.totals(); all2 != all {
		t.Fatalf("totals after a second open: %+v, want %+v", all2, all)
	}
}

// FuzzStoredMessage feeds the decoder of stored chat records: it never
// panics, and what it accepts in the compact form encodes back the same.
func FuzzStoredMessage(f *testing.F) {
	m := Message{ID: MsgID{1}, Time: time.UnixMilli(1700000000000).UTC(), Stored: time.UnixMilli(1700000000001).UTC(), Out: true, Text: "hi <there>"}
	f.Add(encodeRecord(m))
	old, _ := json.Marshal(m)
	f.Add(old)
	f.Add([]byte{recordProto})
	f.Add([]byte{0x02, 0x0a})
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := decodeRecord(seqKey(1), v)
		if err != nil || len(v) == 0 || v[0] != recordProto || !strings.Contains(string(v), got.Text) {
			return
		}
		again, err := decodeRecord(seqKey(1), encodeRecord(got))
		if err != nil || again.ID != got.ID || again.Text != got.Text || !again.Time.Equal(got.Time) || again.Out != got.Out {
			t.Fatalf("record does not survive a round trip: %v", err)
		}
	})
}

// TestHistorySinceByReceived is issue 13 point 3's `chat log --since`: a
// message that arrived a moment ago from a friend whose clock is a day
// behind is in the page since a minute ago; one stored before is not,
// whatever its author's clock says.
func TestHistorySinceByReceived(t *testing.T) {
	db, err := store.Open(t.TempDir()+"/kith.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err := openHistory(db)
	if err != nil {
		t.Fatal(err)
	}
	conv := friendConv(peer.ID("friend"))
	early := Message{ID: NewMsgID(), Time: time.Now().Add(time.Hour).UTC(), Text: "stored first, dated ahead"}
	if _, _, err := h.append(conv, early); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	late := Message{ID: NewMsgID(), Time: time.Now().Add(-24 * time.Hour).UTC(), Text: "from a clock a day behind"}
	if _, _, err := h.append(conv, late); err != nil {
		t.Fatal(err)
	}
	ms, err := h.list(conv, 0, since, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].ID != late.ID {
		var got []string
		for _, m := range ms {
			got = append(got, m.Text)
		}
		t.Fatalf("since a moment ago: %q, want only the message just received", got)
	}
}
