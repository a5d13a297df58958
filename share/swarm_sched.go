package share

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// The scheduler's choices beyond lowest first (fetch_sched.go): the spans
// stream readers wait for come first; then, when a source holds only part
// of the file (another downloader), the rarest groups among the sources,
// from a random place, so that downloaders that start together fetch
// different groups from the owner and then from each other.

// haver is a Fetcher that can be asked again what it holds (a Peer).
type haver interface {
	Have(ctx context.Context, root [32]byte) (HaveReply, error)
}

// pickFreeLocked picks free groups for s (see pickLocked). The caller
// holds r.mu.
func (r *run) pickFreeLocked(s *sourceState) (int64, int64) {
	sw := r.sideLocked()
	if sw == nil {
		return r.pickLocked(s, groupFree, 0)
	}
	for _, spans := range sw.wants {
		for _, sp := range spans {
			if first, count := r.pickSpanLocked(s, sp); count > 0 {
				return first, count
			}
		}
	}
	if r.groups <= maxRarestGroups && r.partialSourcesLocked() {
		if s.Have.Complete && r.askedOfLocked(s) >= swarmOwnerWindow*r.m.cfg.Tuning.RangeGroups {
			// What is in flight is invisible to the other downloaders,
			// which may ask the owner for it too: keep it small.
			return 0, 0
		}
		first, count := r.pickRarestLocked(s, sw, s.Have.Complete)
		if count > 0 || !s.Have.Complete {
			delete(sw.yielding, s)
			return first, count
		}
		// A complete source (the owner) is asked for groups another
		// downloader holds only once it has waited ownerYield for them
		// to come from there: so the owner uploads each group about once,
		// and downloaders fetch the rest from each other.
		if since, ok := sw.yielding[s]; !ok {
			sw.yielding[s] = time.Now()
			return 0, 0
		} else if time.Since(since) < ownerYield {
			return 0, 0
		}
		delete(sw.yielding, s)
		return r.pickRarestLocked(s, sw, false)
	}
	return r.pickLocked(s, groupFree, 0)
}

// askedOfLocked counts the groups in flight whose first request went to s.
func (r *run) askedOfLocked(s *sourceState) int64 {
	n := int64(0)
	for i := r.scanFrom; i < r.groups; i++ {
		if r.state[i] == groupAsked && r.askedBy[i] == s {
			n++
		}
	}
	return n
}

// partialSourcesLocked reports whether an attached source holds only part
// of the file.
func (r *run) partialSourcesLocked() bool {
	for _, o := range r.sources {
		if o.dropped == "" && !o.Have.Complete {
			return true
		}
	}
	return false
}

// pickSpanLocked picks up to RangeGroups free groups of sp that s holds,
// lowest first.
func (r *run) pickSpanLocked(s *sourceState, sp groupSpan) (int64, int64) {
	end := min(sp.first+sp.count, r.groups)
	for i := max(sp.first, 0); i < end; i++ {
		if r.state[i] != groupFree || !s.Have.Has(i) {
			continue
		}
		n := int64(1)
		for i+n < end && n < r.m.cfg.Tuning.RangeGroups && r.state[i+n] == groupFree && s.Have.Has(i+n) {
			n++
		}
		r.takeLocked(s, i, n)
		return i, n
	}
	return 0, 0
}

// pickRarestLocked picks up to RangeGroups contiguous free groups s holds
// that as few sources as possible hold, beginning at a random one of them;
// onlyUnique, only groups that no partial source holds (only complete
// sources do).
func (r *run) pickRarestLocked(s *sourceState, sw *swarmState, onlyUnique bool) (int64, int64) {
	now := time.Now().UnixNano()
	if sw.avail == nil || now-sw.availAt > int64(availRefresh) {
		if sw.avail == nil {
			sw.avail = make([]uint16, r.groups)
		}
		clear(sw.avail)
		sw.complete = 0
		for _, o := range r.sources {
			if o.dropped == "" && o.Have.Complete {
				sw.complete++
			}
			if o.dropped != "" {
				continue
			}
			for i := range r.groups {
				// A group another downloader is fetching counts as held:
				// it will be, and asking the owner for it too is waste.
				if (o.Have.Has(i) || o.Have.Fetching.Has(i)) && sw.avail[i] < ^uint16(0) {
					sw.avail[i]++
				}
			}
		}
		sw.availAt = now
	}
	ok := func(i int64) bool {
		return r.state[i] == groupFree && s.Have.Has(i) && (!onlyUnique || int(sw.avail[i]) <= sw.complete)
	}
	best, candidates := ^uint16(0), int64(0)
	for i := r.scanFrom; i < r.groups; i++ {
		switch {
		case !ok(i):
		case candidates == 0 || sw.avail[i] < best:
			best, candidates = sw.avail[i], 1
		case sw.avail[i] == best:
			candidates++
		}
	}
	if candidates == 0 {
		return 0, 0
	}
	// A random one of the rarest: two downloaders that went on from where
	// they were would soon fetch the same groups from the owner together.
	k := rand.Int64N(candidates)
	for i := r.scanFrom; i < r.groups; i++ {
		if !ok(i) || sw.avail[i] != best {
			continue
		}
		if k > 0 {
			k--
			continue
		}
		n := int64(1)
		for i+n < r.groups && n < r.m.cfg.Tuning.RangeGroups && ok(i+n) && sw.avail[i+n] == best {
			n++
		}
		r.takeLocked(s, i, n)
		return i, n
	}
	return 0, 0
}

// takeLocked marks n free groups from i as asked of s.
func (r *run) takeLocked(s *sourceState, i, n int64) {
	now := time.Now().UnixNano()
	for j := i; j < i+n; j++ {
		r.askedAt[j], r.askedBy[j] = now, s
		r.state[j] = groupAsked
		r.inflight[j]++
	}
}

// watchHave asks a source that holds part of the file what it holds, every
// SwarmHaveRefresh, until it holds all of it, the source is dropped or the
// download has every group; it runs in wg. A source's bitmap only grows:
// a reply that takes a group back is ignored for that group.
func (r *run) watchHave(s *sourceState, wg *sync.WaitGroup) {
	h, ok := s.Fetcher.(haver)
	if !ok || s.Have.Complete {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(SwarmHaveRefresh)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-r.complete:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(s.ctx, r.m.cfg.Tuning.StallTimeout)
			have, err := h.Have(ctx, r.root)
			cancel()
			if err != nil {
				continue // a broken stream fails the workers, which drop it
			}
			r.mu.Lock()
			if have.Size == r.size {
				switch {
				case have.Complete:
					s.Have = have
				case len(have.Bitmap) == len(s.Have.Bitmap):
					merged := append(Bitmap(nil), s.Have.Bitmap...)
					for i := range merged {
						merged[i] |= have.Bitmap[i]
					}
					s.Have.Bitmap = merged
					s.Have.Fetching = have.Fetching
				}
				r.cond.Broadcast()
			}
			done := s.Have.Complete
			r.mu.Unlock()
			if done {
				return
			}
		}
	}()
}

// pickEndgameLocked picks a range in flight at another source for s, in
// the end game (see endgameLocked). The caller holds r.mu.
func (r *run) pickEndgameLocked(s *sourceState) (int64, int64) {
	if !r.endgameLocked() {
		return 0, 0
	}
	if !s.Have.Complete || !r.partialSourcesLocked() {
		return r.pickLocked(s, groupAsked, 1)
	}
	// The owner, with other downloaders as sources: ask it again only for
	// what has been in flight for swarmOwnerEndgame elsewhere, or it
	// uploads what the others are sending anyway.
	now := time.Now().UnixNano()
	ok := func(i int64) bool {
		return r.state[i] == groupAsked && r.inflight[i] == 1 && s.Have.Has(i) &&
			r.askedBy[i] != s && now-r.askedAt[i] > int64(swarmOwnerEndgame)
	}
	for i := r.scanFrom; i < r.groups; i++ {
		if !ok(i) {
			continue
		}
		n := int64(0)
		for j := i; j < r.groups && n < r.m.cfg.Tuning.RangeGroups && ok(j); j++ {
			r.inflight[j]++
			n++
		}
		return i, n
	}
	return 0, 0
}

// endgameLocked reports whether the end game may begin: always when every
// source holds the whole file; with partial sources (other downloaders),
// only once no group is free, so that a source with nothing of its own to
// do (the owner, yielding to them) does not ask again for what a
// downloader is sending. The caller holds r.mu.
func (r *run) endgameLocked() bool {
	if !r.partialSourcesLocked() {
		return true
	}
	for i := r.scanFrom; i < r.groups; i++ {
		if r.state[i] == groupFree {
			return false
		}
	}
	return true
}

// swarmSearchDelay is the delay between searches for sources of a running
// download: with swarming, at most SwarmSourceRefresh, so that friends who
// began the same download are found while it is worth fetching from them.
func (r *run) swarmSearchDelay(d time.Duration) time.Duration {
	if r.m.cfg.NoSwarm {
		return d
	}
	return min(d, SwarmSourceRefresh)
}
