package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"kith/node/api"
)

func TestBusIDsAndReplay(t *testing.T) {
	b := NewBus()
	for range 10 {
		b.Publish("x", nil)
	}
	ch, stop := b.SubscribeAfter(7)
	defer stop()
	for _, want := range []uint64{8, 9, 10} {
		if ev := <-ch; ev.ID != want {
			t.Fatalf("replayed event %d, want %d", ev.ID, want)
		}
	}
	b.Publish("x", nil)
	if ev := <-ch; ev.ID != 11 {
		t.Fatalf("live event %d, want 11", ev.ID)
	}
}

// A subscriber that asks for events the bus no longer keeps is told how
// many it missed before it gets the rest.
func TestBusReplayTooOld(t *testing.T) {
	b := NewBus()
	for range EventHistory + 5 {
		b.Publish("x", nil)
	}
	ch, stop := b.SubscribeAfter(2)
	defer stop()
	ev := <-ch
	if ev.Type != api.EventDropped || ev.Data.(api.DroppedEvent).Missed != 3 {
		t.Fatalf("first event %+v, want events.dropped of 3", ev)
	}
	if ev := <-ch; ev.ID != 6 {
		t.Fatalf("first kept event %d, want 6", ev.ID)
	}
}

// A subscriber that falls behind loses events and is told how many.
func TestBusSlowSubscriberToldOfDrops(t *testing.T) {
	b := NewBus()
	ch, stop := b.Subscribe()
	defer stop()
	n := eventBuffer + 100
	for range n {
		b.Publish("x", nil)
	}
	var got, missed uint64
	drain := func() {
		for {
			select {
			case ev := <-ch:
				if ev.Type == api.EventDropped {
					missed += ev.Data.(api.DroppedEvent).Missed
				} else {
					got++
				}
			default:
				return
			}
		}
	}
	drain()
	b.Publish("x", nil) // room again: the drop is reported, then this one
	drain()
	if missed == 0 {
		t.Fatal("no events.dropped for a subscriber that fell behind")
	}
	if got+missed != uint64(n+1) {
		t.Fatalf("got %d and %d missed of %d published", got, missed, n+1)
	}
}

// The API's event stream carries ids, and a client that reconnects with
// the last id it saw gets what it missed, in order, without a gap.
func TestEventStreamResumes(t *testing.T) {
	n, home := testNode(t, "ana")
	c := api.NewClient(home)
	base := n.events.LastID()
	for range 5 {
		n.events.Publish("test.event", map[string]int{"n": 1})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var ids []uint64
	errDone := errors.New("done")
	err := c.EventsSince(ctx, base+2, func(ev api.Event) error {
		ids = append(ids, ev.ID)
		if len(ids) == 3 {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	for i, id := range ids {
		if id != base+3+uint64(i) {
			t.Fatalf("resumed after %d with ids %v, want %d, %d, %d", base+2, ids, base+3, base+4, base+5)
		}
	}
}

// The API socket serves Go's profiles.
func TestAPIProfiles(t *testing.T) {
	_, home := testNode(t, "ana")
	c := api.NewClient(home)
	for _, path := range []string{"/debug/pprof/goroutine?debug=1", "/debug/pprof/heap?debug=1"} {
		resp, err := c.Stream(t.Context(), path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte("goroutine")) && !bytes.Contains(b, []byte("heap")) {
			t.Fatalf("%s: %.200s", path, b)
		}
	}
}
