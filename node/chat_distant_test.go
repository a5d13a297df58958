package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"kith/chat"
)

// distantStored sums the stored records of n's distant conversations and
// counts their messages.
func distantStored(t *testing.T, n *Node) (bytes, msgs int) {
	t.Helper()
	err := n.db.View(func(tx *bolt.Tx) error {
		hist := tx.Bucket([]byte("chat.history"))
		return hist.ForEachBucket(func(conv []byte) error {
			if conv[0] != 'd' {
				return nil
			}
			return hist.Bucket(conv).ForEach(func(k, v []byte) error {
				bytes += len(k) + len(v)
				msgs++
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return bytes, msgs
}

// TestDistantStrangersCannotFillDisk: a friend of a friend writes to our
// chat identity under a fresh chat identity per conversation, as many
// as it likes, with the largest messages. What it can store here is
// bounded by the requests quota however many identities it makes; what
// is refused stays in its outbox (never silently lost); and the
// requests are listed, can be accepted and deleted.
func TestDistantStrangersCannotFillDisk(t *testing.T) {
	const identities, perIdentity = 40, 4
	nodes := tunnelNet(t, []string{"mallory", "relay", "victim"}, chainEdges(3), nil)
	mallory, victim := nodes[0], nodes[2]
	me, err := victim.Chat().Identities().New("victim")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("<", chat.MaxTextSize-16)
	var puppets []chat.Identity
	for i := range identities {
		p, err := mallory.Chat().Identities().New(fmt.Sprintf("puppet%d", i))
		if err != nil {
			t.Fatal(err)
		}
		puppets = append(puppets, p)
		for j := range perIdentity {
			if _, err := mallory.Chat().SendDistant(p.ID.String(), me.ID, fmt.Sprintf("%d/%d %s", i, j, text)); err != nil {
				t.Fatal(err)
			}
		}
	}
	pending := func() int {
		n := 0
		for _, p := range puppets {
			s, _ := mallory.Chat().DistantSummary(p.ID.String(), me.ID)
			n += s.Pending
		}
		return n
	}
	// The attack runs until everything is delivered or for a bounded time.
	deadline := time.Now().Add(20 * time.Second)
	for pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	bytes, msgs := distantStored(t, victim)
	left := pending()
	t.Logf("%d messages of %d B from %d identities: victim stores %d messages in %d B; %d wait in the sender's outbox",
		identities*perIdentity, len(text), identities, msgs, bytes, left)
	// Nothing is lost: every message is stored by the victim or waits in
	// the sender's outbox (or both, while an ack is on its way).
	for _, p := range puppets {
		mine, _ := mallory.Chat().DistantHistory(p.ID.String(), me.ID, 0, 0)
		theirs, _ := victim.Chat().DistantHistory("", p.ID, 0, 0)
		got := map[chat.MsgID]bool{}
		for _, m := range theirs {
			got[m.ID] = true
		}
		for _, m := range mine {
			if m.Delivered && !got[m.ID] {
				t.Fatalf("message %s acked but not stored: lost", m.ID)
			}
		}
		if len(mine) != perIdentity {
			t.Fatalf("the sender has %d messages of %s, want %d", len(mine), p.ID.Short(), perIdentity)
		}
	}
	if limit := 2 << 20; bytes > limit {
		t.Fatalf("strangers stored %d B on the victim's disk, over %d B", bytes, limit)
	}
	st := victim.Chat().Stats()
	if st.RequestBytes > chat.DistantRequestsBytes || st.Requests > chat.MaxDistantRequests || st.RefusedRequests+st.SessionsLimited == 0 {
		t.Fatalf("stats %+v: want requests within their budget and refusals counted", st)
	}

	// The requests are listed; accepting one lets the rest of its
	// messages in, deleting another forgets it.
	convs, err := victim.Chat().DistantConversations()
	if err != nil {
		t.Fatal(err)
	}
	requests := map[chat.ChatID]chat.DistantConversation{}
	for _, c := range convs {
		if c.Local != me.ID || !c.Request {
			t.Fatalf("listed %+v: want requests to %s", c, me.ID.Short())
		}
		requests[c.Remote] = c
	}
	if len(requests) == 0 || len(requests) > chat.MaxDistantRequests {
		t.Fatalf("%d requests listed", len(requests))
	}
	var accepted, deleted chat.ChatID
	for _, p := range puppets {
		if c, ok := requests[p.ID]; ok && c.Messages > 0 {
			if accepted == (chat.ChatID{}) {
				accepted = p.ID
			} else if deleted == (chat.ChatID{}) {
				deleted = p.ID
			}
		}
	}
	if err := victim.Chat().AcceptDistant("", accepted); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.Chat().SendDistant(accepted.String(), me.ID, "one more, now that you accepted"); err != nil {
		t.Fatal(err) // also wakes the courier from its backoff
	}
	waitFor(t, time.Minute, "the accepted identity's messages", func() bool {
		s, _ := mallory.Chat().DistantSummary(accepted.String(), me.ID)
		return s.Pending == 0
	})
	if s, _ := victim.Chat().DistantSummary("", accepted); s.Request || s.Messages != perIdentity+1 {
		t.Fatalf("accepted conversation: %+v, want %d messages", s, perIdentity+1)
	}
	if deleted != (chat.ChatID{}) {
		if err := victim.Chat().DeleteDistant("", deleted); err != nil {
			t.Fatal(err)
		}
		if ms, _ := victim.Chat().DistantHistory("", deleted, 0, 0); len(ms) != 0 {
			t.Fatalf("deleted conversation still has %d messages", len(ms))
		}
		convs, _ := victim.Chat().DistantConversations()
		for _, c := range convs {
			if c.Remote == deleted {
				t.Fatalf("deleted conversation still listed: %+v", c)
			}
		}
	}
	if err := victim.Chat().DeleteDistant("", deleted); deleted != (chat.ChatID{}) && !errors.Is(err, chat.ErrNoConversation) {
		t.Fatalf("deleting twice: %v", err)
	}
}
