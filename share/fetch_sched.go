package share

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// The scheduler: sources attached to a run, each with Tuning.Window
// workers; the ranges they are handed (free groups the source holds,
// lowest first, up to Tuning.RangeGroups); stalls; and the end game, where
// a range in flight for DownloadEndgameAfter at one source may be asked of
// another.

// sourceState is a source attached to a running download.
type sourceState struct {
	*Source
	meter    meter
	bytes    int64
	stalls   int
	dropped  string
	ctx      context.Context
	cancel   context.CancelFunc
	attached time.Time
	asking   int // requests in flight (windowLocked bounds it)
}

// use attaches src, found for a download whose size is fixed, and starts
// its workers (counted in wg); a source claiming another size is refused.
// If sp came from src, its group is written as src's first answer; if
// spec was asked of src at this size, its ranges are src's first requests.
func (r *run) use(src *Source, sp *sizeProof, spec *speculation, wg *sync.WaitGroup) {
	if src.Have.Size != r.size {
		// Only one size verifies against the root: this one is not it.
		r.refuse(src, fmt.Sprintf("claimed %d bytes; the root proves %d", src.Have.Size, r.size), true)
		return
	}
	s := r.attach(src)
	if sp != nil && sp.src == src {
		r.deliver(s, Groups(r.size)-1, sp.data, sp.proof)
	}
	if spec != nil && spec.src == src && spec.size == r.size {
		r.adopt(s, spec, wg) // fetch_speculate.go
	}
	for range r.m.cfg.Tuning.Window {
		wg.Add(1)
		go func() { defer wg.Done(); r.worker(s) }()
	}
	r.watchHave(s, wg) // swarm_sched.go: a partial source's bitmap grows
}

// refuse turns down a source that was found but not attached, closing it;
// a liar is listed among the download's dropped sources and not taken
// again for LiarRetryAfter.
func (r *run) refuse(src *Source, reason string, liar bool) {
	r.mu.Lock()
	if liar {
		r.dropped[src.Key] = liarDrop{reason, time.Now()}
		r.gone = append(r.gone, SourceInfo{Name: src.Name, Dropped: reason})
	}
	r.mu.Unlock()
	if src.Close != nil {
		src.Close()
	}
	r.log.Info("download source refused", slog.String("source", src.Name), slog.String("reason", reason))
}

// closeSources closes sources that were found but not attached.
func closeSources(srcs []*Source) {
	for _, s := range srcs {
		if s.Close != nil {
			s.Close()
		}
	}
}

// liarDrop is why and when a source was dropped for bad data.
type liarDrop struct {
	reason string
	at     time.Time
}

// find asks the Finder for sources not in use and not dropped as liars
// within LiarRetryAfter.
func (r *run) find() []*Source {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	r.mu.Lock()
	anonymous, claimed := r.rec.Anonymous, r.rec.Size
	r.mu.Unlock()
	if r.begun {
		claimed = UnknownSize // proven: no source is asked to prove it
	}
	return r.m.cfg.Finder.FindSources(ctx, FindRequest{Root: r.root, Anonymous: anonymous, ClaimedSize: claimed, Skip: func(key string) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, inUse := r.sources[key]
		d, bad := r.dropped[key]
		return inUse || bad && time.Since(d.at) < LiarRetryAfter
	}})
}

func (r *run) activeSources() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.sources {
		if s.dropped == "" {
			n++
		}
	}
	return n
}

func (r *run) attach(src *Source) *sourceState {
	ctx, cancel := context.WithCancel(r.ctx)
	s := &sourceState{Source: src, ctx: ctx, cancel: cancel, attached: time.Now()}
	r.mu.Lock()
	r.sources[src.Key] = s
	r.mu.Unlock()
	r.log.Info("download source", slog.String("source", src.Name))
	return s
}

// drop takes a source off this download. A source that lied (bad data) is
// not taken again for LiarRetryAfter; one that failed (stalled, stream broken) may be found
// again by the next search for sources.
func (r *run) drop(s *sourceState, reason string, liar bool) {
	r.mu.Lock()
	first := s.dropped == ""
	if first {
		s.dropped = reason
		s.cancel()
		if liar {
			r.dropped[s.Key] = liarDrop{reason, time.Now()}
		}
		if r.sources[s.Key] == s {
			delete(r.sources, s.Key)
		}
		r.gone = append(r.gone, SourceInfo{Name: s.Name, Bytes: s.bytes, Dropped: reason})
		r.cond.Broadcast()
	}
	r.mu.Unlock()
	if !first {
		return
	}
	if s.Close != nil {
		s.Close()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	r.log.Info("download source dropped", slog.String("source", s.Name), slog.String("reason", reason))
	r.emit("download.source_dropped", true)
}

// claim picks the next range for s: free groups s holds, contiguous, up to
// RangeGroups; in the end game (nothing free) a range another source is
// fetching. It blocks while there is nothing to do and returns ok=false
// when s should stop.
func (r *run) claim(s *sourceState) (first, count int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if s.ctx.Err() != nil || r.received == r.groups {
			return 0, 0, false
		}
		if r.paused != nil {
			r.cond.Wait() // see fetch_pause.go
			continue
		}
		if r.written >= DownloadMaxUnverified {
			// The verifier is behind: wait rather than pile up proofs.
			r.cond.Wait()
			continue
		}
		if s.asking >= r.windowLocked(s) {
			// Enough in flight for this source's rate; its rate is
			// looked at again when a request ends, or soon.
			r.waitLocked(250 * time.Millisecond)
			continue
		}
		if first, count = r.pickFreeLocked(s); count > 0 { // swarm_sched.go
			s.asking++
			return first, count, true
		}
		// End game: help with a range in flight at one other source.
		if first, count = r.pickEndgameLocked(s); count > 0 { // swarm_sched.go
			s.asking++
			return first, count, true
		}
		r.waitLocked(DownloadEndgameAfter / 2)
	}
}

// windowLocked is how many requests s may have in flight: what it sends
// in DownloadWindowTime at its rate, between DownloadBaseWindow and
// Tuning.Window, and DownloadBaseWindow until it has been attached for a
// second (its rate is not known before).
func (r *run) windowLocked(s *sourceState) int {
	most := r.m.cfg.Tuning.Window
	base := min(DownloadBaseWindow, most)
	if time.Since(s.attached) < time.Second {
		return base
	}
	rangeBytes := float64(r.m.cfg.Tuning.RangeGroups * GroupSize)
	want := int(s.meter.rate()*DownloadWindowTime.Seconds()/rangeBytes) + 1
	return min(most, max(base, want))
}

// asked records that a request of s ended (answered or not).
func (r *run) asked(s *sourceState) {
	r.mu.Lock()
	s.asking--
	r.cond.Broadcast()
	r.mu.Unlock()
}

// pickLocked finds up to RangeGroups contiguous groups in state want with
// exactly inflight requests, held by s, and marks them asked. Groups already
// asked for (the end game) are taken only once their request is older than
// DownloadEndgameAfter, so a healthy source is not second-guessed.
func (r *run) pickLocked(s *sourceState, want uint8, inflight uint8) (int64, int64) {
	max := r.m.cfg.Tuning.RangeGroups
	now := time.Now().UnixNano()
	ok := func(i int64) bool { return r.pickableLocked(s, i, want, inflight, now) }
	start := int64(0)
	if want == groupFree {
		for r.scanFrom < r.groups && r.state[r.scanFrom] != groupFree {
			r.scanFrom++
		}
		start = r.scanFrom
	}
	for i := start; i < r.groups; i++ {
		if !ok(i) {
			continue
		}
		n := int64(0)
		for j := i; j < r.groups && n < max && ok(j); j++ {
			if r.state[j] == groupFree {
				r.askedAt[j], r.askedBy[j] = now, s
			}
			r.state[j] = groupAsked
			r.inflight[j]++
			n++
		}
		return i, n
	}
	return 0, 0
}

// pickableLocked reports whether pickLocked may give group i to s.
func (r *run) pickableLocked(s *sourceState, i int64, want, inflight uint8, now int64) bool {
	if r.state[i] != want || r.inflight[i] != inflight || !s.Have.Has(i) {
		return false
	}
	return want != groupAsked || (r.askedBy[i] != s && now-r.askedAt[i] > int64(DownloadEndgameAfter))
}

// waitLocked waits for a broadcast or at most d (so that end-game ranges
// that age are seen). The caller holds r.mu.
func (r *run) waitLocked(d time.Duration) {
	t := time.AfterFunc(d, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	r.cond.Wait()
	t.Stop()
}

// release gives back groups whose request failed.
func (r *run) release(first, count int64) {
	r.mu.Lock()
	for i := first; i < first+count; i++ {
		r.inflight[i]--
		if r.state[i] == groupAsked && r.inflight[i] == 0 {
			r.state[i] = groupFree
			r.scanFrom = min(r.scanFrom, i)
		}
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// worker fetches ranges from one source until there is nothing left or the
// source is dropped.
func (r *run) worker(s *sourceState) {
	var buf []byte // made at the worker's first request: a worker beyond its source's window has none
	for {
		first, count, ok := r.claim(s)
		if !ok {
			return
		}
		if buf == nil {
			// Room for the proof too, or the Peer allocates every reply.
			buf = make([]byte, r.m.cfg.Tuning.RangeGroups*(GroupSize+MaxGroupProofSize))
		}
		ctx, cancel := context.WithTimeout(s.ctx, r.m.cfg.Tuning.StallTimeout)
		data, proof, err := s.Fetcher.GetRange(ctx, r.root, r.size, first, count, buf)
		stalled := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		r.asked(s)
		if err != nil {
			r.release(first, count)
			if !r.requestFailed(s, err, stalled) {
				return
			}
			continue
		}
		if !r.accept(s, first, count, data, proof) {
			return
		}
	}
}

// requestFailed deals with a request of s that failed (its groups are given
// back already) and reports whether s's worker goes on: after a CodeBusy
// (it waits DownloadBusyWait) or a stall, unless DownloadMaxStalls in a row
// drop the source; any other error drops it.
func (r *run) requestFailed(s *sourceState, err error, stalled bool) bool {
	var er ErrorReply
	switch {
	case s.ctx.Err() != nil:
		return false
	case errors.As(err, &er) && er.Code == CodeBusy:
		// The source is short of memory now: try again soon.
		select {
		case <-s.ctx.Done():
			return false
		case <-time.After(DownloadBusyWait):
		}
		return true
	case stalled:
		r.mu.Lock()
		s.stalls++
		n := s.stalls
		r.mu.Unlock()
		if n >= DownloadMaxStalls {
			r.drop(s, "stalled", false)
			return false
		}
		return true
	default:
		r.drop(s, "error: "+err.Error(), false)
		return false
	}
}

// accept hands a range that s sent to the writer and reports whether
// s's worker goes on. The bytes are verified once they are on disk
// (verifyLoop): one hash per byte serves as both the check of what the
// source sent and the whole-file check of what was written. Here only the
// lengths, which the Peer checked already.
func (r *run) accept(s *sourceState, first, count int64, data, proof []byte) bool {
	if int64(len(data)) != RangeDataSize(r.size, first, count) || len(proof) != RangeProofSize(r.size, first, count) {
		r.release(first, count)
		r.drop(s, "sent a range of the wrong length", true)
		return false
	}
	if l := r.m.cfg.Limiter; l != nil {
		if err := l.Wait(s.ctx, len(data)); err != nil {
			r.release(first, count)
			return false
		}
	}
	if err := r.write(s, first, count, data, proof); err != nil {
		return r.writeFailed(err) // write gave its groups back already
	}
	return true
}
