package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"kith/internal/testkit"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// history returns every message of tp's conversation with other.
func (tp *testPeer) history(other *testPeer) []Message {
	tp.t.Helper()
	ms, err := tp.svc.History(other.ID, 0, time.Time{}, 0)
	if err != nil {
		tp.t.Fatal(err)
	}
	return ms
}

// TestPrivateOfflineDelivery: messages written while the friend is down
// wait in the outbox and arrive, in order and once, when it comes up.
func TestPrivateOfflineDelivery(t *testing.T) {
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	var sent []Message
	for i := range 3 {
		m, err := a.svc.Send(b.ID, fmt.Sprintf("message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	if s := a.svc.Summary(b.ID); s.Pending != 3 {
		t.Fatalf("pending before the friend is up: %+v", s)
	}
	b.start()
	connect(t, a, b)
	testkit.WaitFor(t, 10*time.Second, "delivery", func() bool { return a.svc.Summary(b.ID).Pending == 0 })
	got := b.history(a)
	if len(got) != 3 {
		t.Fatalf("friend stored %d messages, want 3", len(got))
	}
	for i, m := range got {
		if m.ID != sent[i].ID || m.Text != sent[i].Text || m.Out || !m.Time.Equal(sent[i].Time) {
			t.Fatalf("message %d: got %+v, sent %+v", i, m, sent[i])
		}
	}
	for _, m := range a.history(b) {
		if !m.Out || !m.Delivered {
			t.Fatalf("sender's copy not marked delivered: %+v", m)
		}
	}
	if n := b.events.count("chat.message"); n != 3 {
		t.Fatalf("receiver published %d message events, want 3", n)
	}
	testkit.WaitFor(t, 5*time.Second, "delivered events", func() bool { return a.events.count("chat.delivered") > 0 })
	if s := b.svc.Summary(a.ID); s.Unread != 3 || s.Last == nil || s.Last.ID != sent[2].ID {
		t.Fatalf("receiver's summary: %+v", s)
	}
	if err := b.svc.MarkRead(a.ID); err != nil {
		t.Fatal(err)
	}
	if s := b.svc.Summary(a.ID); s.Unread != 0 {
		t.Fatalf("unread after MarkRead: %d", s.Unread)
	}
}

// TestPrivateRestartsLoseNothing: both sides write while either side is
// restarted at random moments; at the end each history holds every
// message of both authors exactly once, each author's in the order
// written.
func TestPrivateRestartsLoseNothing(t *testing.T) {
	const perSide = 150
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	connect(t, a, b)
	rng := rand.New(rand.NewPCG(1, 2))
	sentBy := map[*testPeer][]Message{}
	for i := range 2 * perSide {
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		m, err := from.svc.Send(to.ID, fmt.Sprintf("msg %d from %p", i, from))
		if err != nil {
			t.Fatal(err)
		}
		sentBy[from] = append(sentBy[from], m)
		if rng.IntN(40) == 0 {
			victim := []*testPeer{a, b}[rng.IntN(2)]
			victim.stop()
			victim.start()
			connect(t, a, b)
		}
	}
	testkit.WaitFor(t, 60*time.Second, "both outboxes empty", func() bool {
		return a.svc.Summary(b.ID).Pending == 0 && b.svc.Summary(a.ID).Pending == 0
	})
	for _, side := range []*testPeer{a, b} {
		other := a
		if side == a {
			other = b
		}
		hist := side.history(other)
		if len(hist) != 2*perSide {
			t.Fatalf("history has %d messages, want %d", len(hist), 2*perSide)
		}
		ids := map[MsgID]bool{}
		var mine, theirs []MsgID
		for _, m := range hist {
			if ids[m.ID] {
				t.Fatalf("message %s twice in a history", m.ID)
			}
			ids[m.ID] = true
			if m.Out {
				mine = append(mine, m.ID)
			} else {
				theirs = append(theirs, m.ID)
			}
		}
		for who, got := range map[*testPeer][]MsgID{side: mine, other: theirs} {
			want := sentBy[who]
			if len(got) != len(want) {
				t.Fatalf("%d messages by one author, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i].ID {
					t.Fatalf("author's message %d out of order", i)
				}
			}
		}
	}
}

func TestPrivateSendRefuses(t *testing.T) {
	a, b := newTestPeer(t), newTestPeer(t)
	a.start()
	for _, tc := range []struct {
		text string
		err  error
	}{
		{"", ErrEmptyText},
		{"  \n", ErrEmptyText},
		{strings.Repeat("x", MaxTextSize+1), ErrTextTooLong},
		{"bad \xff utf8", ErrBadText},
	} {
		a.Friends.Add(b.ID)
		if _, err := a.svc.Send(b.ID, tc.text); !errors.Is(err, tc.err) {
			t.Errorf("Send(%.20q): %v, want %v", tc.text, err, tc.err)
		}
	}
	if _, err := a.svc.Send(a.ID, "to a stranger"); !errors.Is(err, ErrNotFriend) {
		t.Errorf("Send to a non-friend: %v", err)
	}
	if _, err := a.svc.Send(b.ID, strings.Repeat("x", MaxTextSize)); err != nil {
		t.Errorf("Send of exactly MaxTextSize: %v", err)
	}
}

// TestPrivateBadFrameClosesStream: a friend writing garbage on a chat
// stream has that stream reset, and its next, well-formed stream works.
func TestPrivateBadFrameClosesStream(t *testing.T) {
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	connect(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, garbage := range [][]byte{
		{5, 0xff, 0xff, 0xff, 0xff, 0xff},             // not protobuf
		{0xff, 0xff, 0xff, 0xff, 0x0f},                // length over MaxFrameSize
		{4, 0x0a, 0x02, 0x0a, 0x00},                   // message with an empty id
		append([]byte{3, 0x2a, 0x01, 0x0a}, 0x00),     // unknown field layout
		{0x06, 0x12, 0x04, 0x0a, 0x02, 0x01, 0x02, 0}, // ack of a 2-byte id
	} {
		s, err := b.h.NewStream(ctx, a.ID, protocol.ID(ProtocolID))
		if err != nil {
			t.Fatal(err)
		}
		s.Write(garbage)
		s.CloseWrite()
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(s)
		if err == nil {
			t.Errorf("garbage %x: stream closed cleanly, want a reset", garbage)
		}
		s.Reset()
	}
	if len(a.history(b)) != 0 {
		t.Fatal("garbage entered the history")
	}
	if _, err := b.svc.Send(a.ID, "still friends"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "delivery after garbage", func() bool { return len(a.history(b)) == 1 })
}

func TestPrivateTyping(t *testing.T) {
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	b.start()
	connect(t, a, b)
	a.svc.Typing(b.ID)
	testkit.WaitFor(t, 10*time.Second, "typing event", func() bool { return b.events.count("chat.typing") == 1 })
	a.svc.Typing(b.ID) // within TypingInterval: not sent again
	time.Sleep(300 * time.Millisecond)
	if n := b.events.count("chat.typing"); n != 1 {
		t.Fatalf("%d typing events, want 1 within TypingInterval", n)
	}
	if len(b.history(a)) != 0 {
		t.Fatal("typing entered the history")
	}
}

// TestPrivateSendKeyedOnce: a send retried with the same idempotency key
// (the client lost the first answer) returns the message the first one
// stored; the history holds it once and the friend gets it once. Another
// key sends another message; a key reused for another text is refused.
func TestPrivateSendKeyedOnce(t *testing.T) {
	a, b := newTestPeer(t), newTestPeer(t)
	befriend(a, b)
	a.start()
	first, err := a.svc.SendKeyed(b.ID, "only once", "key-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.svc.SendKeyed(b.ID, "only once", "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.Seq != first.Seq {
		t.Fatalf("the retry made %+v, the first send %+v", again, first)
	}
	if _, err := a.svc.SendKeyed(b.ID, "something else", "key-1"); !errors.Is(err, ErrIdempotencyKeyReused) {
		t.Fatalf("key reused for another text: %v", err)
	}
	if _, err := a.svc.SendKeyed(b.ID, "x", strings.Repeat("k", MaxIdempotencyKeySize+1)); !errors.Is(err, ErrBadIdempotencyKey) {
		t.Fatalf("oversize key: %v", err)
	}
	other, err := a.svc.SendKeyed(b.ID, "only once", "key-2")
	if err != nil || other.ID == first.ID {
		t.Fatalf("another key: %+v %v", other, err)
	}
	if n := len(a.history(b)); n != 2 {
		t.Fatalf("sender stored %d messages, want 2", n)
	}
	b.start()
	connect(t, a, b)
	testkit.WaitFor(t, 10*time.Second, "delivery", func() bool { return a.svc.Summary(b.ID).Pending == 0 })
	got := b.history(a)
	if len(got) != 2 || got[0].ID != first.ID || got[1].ID != other.ID {
		t.Fatalf("friend stored %+v", got)
	}
	// After delivery, a late retry still finds the stored message.
	late, err := a.svc.SendKeyed(b.ID, "only once", "key-1")
	if err != nil || late.ID != first.ID || !late.Delivered {
		t.Fatalf("late retry: %+v %v", late, err)
	}
	if n := len(a.history(b)); n != 2 {
		t.Fatalf("sender stored %d messages after the late retry, want 2", n)
	}
}
