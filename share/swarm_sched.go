package share

import (
	"context"
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
		return r.pickRarestLocked(s, sw)
	}
	return r.pickLocked(s, groupFree, 0)
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
// that as few sources as possible hold, from the run's random offset on.
func (r *run) pickRarestLocked(s *sourceState, sw *swarmState) (int64, int64) {
	now := time.Now().UnixNano()
	if sw.avail == nil || now-sw.availAt > int64(availRefresh) {
		if sw.avail == nil {
			sw.avail = make([]uint16, r.groups)
		}
		clear(sw.avail)
		for _, o := range r.sources {
			if o.dropped != "" {
				continue
			}
			for i := range r.groups {
				if o.Have.Has(i) && sw.avail[i] < ^uint16(0) {
					sw.avail[i]++
				}
			}
		}
		sw.availAt = now
	}
	ok := func(i int64) bool { return r.state[i] == groupFree && s.Have.Has(i) }
	best := ^uint16(0)
	found := false
	for i := r.scanFrom; i < r.groups; i++ {
		if ok(i) && (!found || sw.avail[i] < best) {
			best, found = sw.avail[i], true
		}
	}
	if !found {
		return 0, 0
	}
	for k := range r.groups {
		i := (sw.offset + k) % r.groups
		if !ok(i) || sw.avail[i] != best {
			continue
		}
		n := int64(1)
		for i+n < r.groups && n < r.m.cfg.Tuning.RangeGroups && ok(i+n) && sw.avail[i+n] == best {
			n++
		}
		r.takeLocked(s, i, n)
		// Go on from here next time: runs stay long and sequential.
		sw.offset = (i + n) % r.groups
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
