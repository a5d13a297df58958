// Package seen is a bounded set of recently seen ids that forgets them
// after a while: what a router or a lobby relay uses to drop a copy of
// something it already handled.
package seen

import "time"

// Set holds at most Max ids, each for TTL after it was added; when full,
// the oldest goes first. It is not safe for concurrent use.
type Set[K comparable] struct {
	max   int
	ttl   time.Duration
	at    map[K]time.Time
	queue []entry[K] // in the order added
}

type entry[K comparable] struct {
	id K
	at time.Time
}

// New returns an empty set of at most max ids kept for ttl.
func New[K comparable](max int, ttl time.Duration) *Set[K] {
	return &Set[K]{max: max, ttl: ttl, at: make(map[K]time.Time)}
}

// Has reports whether id is in the set.
func (s *Set[K]) Has(id K) bool {
	_, ok := s.at[id]
	return ok
}

// Add puts id in the set, seen at now, and reports whether it was new.
func (s *Set[K]) Add(id K, now time.Time) bool {
	if _, ok := s.at[id]; ok {
		return false
	}
	for len(s.queue) >= s.max {
		s.pop()
	}
	s.at[id] = now
	s.queue = append(s.queue, entry[K]{id, now})
	return true
}

// Expire forgets the ids added TTL or longer before now.
func (s *Set[K]) Expire(now time.Time) {
	for len(s.queue) > 0 && now.Sub(s.queue[0].at) >= s.ttl {
		s.pop()
	}
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
}

// Len returns the number of ids in the set.
func (s *Set[K]) Len() int { return len(s.at) }

func (s *Set[K]) pop() {
	delete(s.at, s.queue[0].id)
	s.queue = s.queue[1:]
}
