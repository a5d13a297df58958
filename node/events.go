package node

import (
	"sync"
	"time"

	"kith/node/api"
)

const (
	// eventBuffer is how many events a slow subscriber may lag before it
	// loses events (it is then sent an api.EventDropped).
	eventBuffer = 256
	// EventHistory is how many recent events the bus keeps for
	// subscribers that reconnect and ask for what they missed.
	EventHistory = 1024
)

// Bus fans the node's events (api.Event, typed by the api.Event*
// constants) out to subscribers. Publishing never blocks: a subscriber
// that does not keep up loses events rather than stalling the node, and is
// told how many it lost (an api.EventDropped, which has no ID).
type Bus struct {
	mu      sync.Mutex
	last    uint64
	history []api.Event // the last EventHistory events, oldest first
	subs    map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan api.Event
	dropped uint64 // events lost since the last one delivered
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*subscriber]struct{}{}} }

// Publish sends an event to every subscriber that has room for it. data
// is the type's payload, a value of package api's types.
func (b *Bus) Publish(typ api.EventType, data any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last++
	ev := api.Event{ID: b.last, Type: typ, Time: time.Now().UTC(), Data: data}
	if len(b.history) == EventHistory {
		copy(b.history, b.history[1:])
		b.history = b.history[:EventHistory-1]
	}
	b.history = append(b.history, ev)
	for s := range b.subs {
		s.send(ev)
	}
}

// LastID returns the ID of the last event published, 0 if none.
func (b *Bus) LastID() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// send delivers ev, first telling of events lost before it, or counts it
// lost.
func (s *subscriber) send(ev api.Event) {
	if s.dropped > 0 {
		if len(s.ch)+2 > cap(s.ch) {
			s.dropped++
			return
		}
		s.ch <- api.Event{Type: api.EventDropped, Time: ev.Time, Data: api.DroppedEvent{Missed: s.dropped}}
		s.dropped = 0
	}
	select {
	case s.ch <- ev:
	default:
		s.dropped++
	}
}

// Subscribe returns a channel of the events published from now on and a
// function that ends the subscription and closes the channel.
func (b *Bus) Subscribe() (<-chan api.Event, func()) { return b.SubscribeAfter(0) }

// SubscribeAfter is Subscribe for a subscriber that saw events up to the
// one with ID after: with after > 0 the channel starts
// with the kept events published after the one with that ID (preceded by
// an api.EventDropped if some of them are no longer kept); with 0 it carries
// only events from now on.
func (b *Bus) SubscribeAfter(after uint64) (<-chan api.Event, func()) {
	b.mu.Lock()
	var replay []api.Event
	var missed uint64
	if after > 0 && after < b.last {
		oldest := b.last + 1 - uint64(len(b.history))
		if after+1 < oldest {
			missed = oldest - after - 1
			after = oldest - 1
		}
		replay = b.history[len(b.history)-int(b.last-after):]
	}
	s := &subscriber{ch: make(chan api.Event, max(eventBuffer, len(replay)+1))}
	if missed > 0 {
		s.ch <- api.Event{Type: api.EventDropped, Time: time.Now().UTC(), Data: api.DroppedEvent{Missed: missed}}
	}
	for _, ev := range replay {
		s.ch <- ev
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			close(s.ch)
		})
	}
}
