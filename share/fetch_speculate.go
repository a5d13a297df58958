package share

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Speculation: the first ranges of a download asked for at the link's size
// while the size is still being proven.
//
// A download proves its size with the last group before it reserves any
// space (proveSize), and its workers ask for ranges only once it is
// proven. Over a long path (a tunnel of three 50 ms links) that wait is
// the proof's group coming through (50-330 ms on cold connections) and
// one more round trip before the first range moves. A source marked
// Source.Speculate is asked for the first window of ranges (up to
// DownloadBaseWindow ranges of Tuning.RangeGroups, lowest first, the last
// group not among them) at the size the link claims, right after it is
// found: the ranges come while the proof does. The replies are held in
// memory until the size is proven; if it is the claimed one and the
// source is attached, they are written as the source's first answers
// (and verified from the disk like any other), counted in its window;
// otherwise they are dropped, and their requests cut short. No byte is
// written before the size is proven, and none is trusted before it is
// verified: a wrong claim (a bad link) costs the bandwidth of one window.

// speculation is the first ranges asked of one source before the size is
// proven.
type speculation struct {
	src    *Source
	size   int64 // the size claimed, at which the ranges were asked
	cancel context.CancelFunc
	wg     sync.WaitGroup // the requests
	ranges []*specRange
	taken  bool // adopted by the run: its ranges are the run's now
}

// specRange is one range of a speculation, and its reply once done is
// closed.
type specRange struct {
	first, count int64
	done         chan struct{}
	data, proof  []byte
	err          error
	stalled      bool
}

// speculate asks the first source of srcs that is marked Speculate, holds
// the whole file and claims the link's size for the first window of
// ranges at that size, and returns what it asked (nil if nothing). The
// requests end within Tuning.StallTimeout, or when the speculation is
// dropped.
func (r *run) speculate(srcs []*Source) *speculation {
	r.mu.Lock()
	claimed, bitmap := r.rec.Size, r.bitmap
	r.mu.Unlock()
	if claimed <= 0 || claimed > MaxFileSize {
		return nil
	}
	var src *Source
	for _, s := range srcs {
		if s.Speculate && s.Have.Complete && s.Have.Size == claimed {
			src = s
			break
		}
	}
	if src == nil {
		return nil
	}
	tu := r.m.cfg.Tuning
	last := Groups(claimed) - 1 // the proof brings it
	sp := &speculation{src: src, size: claimed}
	for i := int64(0); i < last && len(sp.ranges) < min(DownloadBaseWindow, tu.Window); {
		if bitmap.Has(i) {
			i++
			continue
		}
		j := i
		for j < last && j-i < tu.RangeGroups && !bitmap.Has(j) {
			j++
		}
		sp.ranges = append(sp.ranges, &specRange{first: i, count: j - i, done: make(chan struct{})})
		i = j
	}
	if len(sp.ranges) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, tu.StallTimeout)
	sp.cancel = cancel
	for _, sr := range sp.ranges {
		sp.wg.Go(func() {
			defer close(sr.done)
			sr.data, sr.proof, sr.err = src.Fetcher.GetRange(ctx, r.root, claimed, sr.first, sr.count, nil)
			sr.stalled = errors.Is(ctx.Err(), context.DeadlineExceeded)
		})
	}
	return sp
}

// drop cuts short the requests of a speculation the run did not adopt and
// waits for them; the replies are dropped. It does nothing to an adopted
// one, or nil.
func (sp *speculation) drop() {
	if sp == nil || sp.taken {
		return
	}
	sp.cancel()
	sp.wg.Wait()
}

// adopt makes the speculation's ranges the first requests of s, the
// source they were asked of, attached at the size they were asked at:
// their groups are marked asked (in s's window) and each reply, when it
// comes, is handled as a worker's would be (goroutines counted in wg).
// A group some other request took meanwhile (the proof's) is not
// in any range, so every range is still free here.
func (r *run) adopt(s *sourceState, sp *speculation, wg *sync.WaitGroup) {
	sp.taken = true
	now := time.Now().UnixNano()
	var mine []*specRange
	r.mu.Lock()
	for _, sr := range sp.ranges {
		free := true
		for i := sr.first; i < sr.first+sr.count; i++ {
			free = free && r.state[i] == groupFree
		}
		if !free {
			continue // its reply is dropped when it comes
		}
		for i := sr.first; i < sr.first+sr.count; i++ {
			r.state[i] = groupAsked
			r.inflight[i]++
			r.askedAt[i], r.askedBy[i] = now, s
		}
		s.asking++
		mine = append(mine, sr)
	}
	r.mu.Unlock()
	for _, sr := range mine {
		wg.Go(func() {
			<-sr.done // the source's Close ends it if s is dropped first
			r.asked(s)
			if sr.err != nil {
				r.release(sr.first, sr.count)
				r.requestFailed(s, sr.err, sr.stalled)
				return
			}
			r.accept(s, sr.first, sr.count, sr.data, sr.proof)
		})
	}
	wg.Go(func() {
		sp.wg.Wait()
		sp.cancel()
	})
}
