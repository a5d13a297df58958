// Package seen is a bounded set of recently seen ids that forgets them
// after a while: what a router or a lobby relay uses to drop a copy of
// something it already handled.
package seen

import "time"

// Set holds at most Max ids, each for TTL after it was added; when full,
// the oldest goes first. It is not safe for concurrent use.
//
// An id costs its key twice (the set and the queue) and 8 bytes of time:
// the set holds no value, and the queue keeps times as offsets from the
// first Add. A lobby member holds one id per message of the lobby's last
// two hours (chat.LobbySeenTTL), so at 1,000 members the seen sets were a
// ninth of the simulator's heap with 24-byte times in both.
type Set[K comparable] struct {
	max   int
	ttl   time.Duration
	base  time.Time // the time of the first Add; offsets count from it
	in    map[K]struct{}
	queue []entry[K] // in the order added
}

type entry[K comparable] struct {
	id K
	at time.Duration // since base
}

// New returns an empty set of at most max ids kept for ttl.
func New[K comparable](max int, ttl time.Duration) *Set[K] {
	return &Set[K]{max: max, ttl: ttl, in: make(map[K]struct{})}
}

// Has reports whether id is in the set.
func (s *Set[K]) Has(id K) bool {
	_, ok := s.in[id]
	return ok
}

// Add puts id in the set, seen at now, and reports whether it was new.
// Calls give times in the order of the calls.
func (s *Set[K]) Add(id K, now time.Time) bool {
	if _, ok := s.in[id]; ok {
		return false
	}
	for len(s.queue) >= s.max {
		s.pop()
	}
	if s.base.IsZero() {
		s.base = now
	}
	s.in[id] = struct{}{}
	s.queue = append(s.queue, entry[K]{id, now.Sub(s.base)})
	return true
}

// Expire forgets the ids added TTL or longer before now.
func (s *Set[K]) Expire(now time.Time) {
	at := now.Sub(s.base)
	for len(s.queue) > 0 && at-s.queue[0].at >= s.ttl {
		s.pop()
	}
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
}

// Len returns the number of ids in the set.
func (s *Set[K]) Len() int { return len(s.in) }

func (s *Set[K]) pop() {
	delete(s.in, s.queue[0].id)
	s.queue = s.queue[1:]
}
