package share

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"lukechampine.com/blake3/guts"
)

// Group states within a running download.
const (
	groupFree       uint8 = iota // not held, not asked for
	groupAsked                   // a request for it is in flight
	groupWriting                 // a worker is writing the first answer to the partial file
	groupWritten                 // in the partial file, not yet verified; its proof is held
	groupCommitting              // read back and verified, waiting to be recorded
	groupStored                  // recorded in the resume bitmap (see resume.go)
)

// sourceState is a source attached to a running download.
type sourceState struct {
	*Source
	meter   meter
	bytes   int64
	stalls  int
	dropped string
	ctx     context.Context
	cancel  context.CancelFunc
}

// commitItem is a written, verified range waiting to be made durable.
type commitItem struct{ first, count int64 }

// run is one download while the daemon runs it: the scheduler that hands
// groups to sources, the workers that fetch and verify them, and the
// committer that makes verified groups durable.
//
// Durability: a group's data is written to the partial file as soon as it is
// verified; only after that does the committer record the group in the
// resume bitmaps in bbolt, in one transaction per batch (see resume.go for
// what a kill -9 and a power cut each keep). A bitmap never names a group
// whose bytes were not written.
type run struct {
	m    *Manager
	root [32]byte
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	cond     *sync.Cond
	rec      downloadRecord
	size     int64
	groups   int64
	state    []uint8
	inflight []uint8        // requests in flight per group (2 in the end game)
	askedAt  []int64        // when the first request in flight for a group was sent (UnixNano)
	askedBy  []*sourceState // the source of that first request
	stored   int64
	bitmap   Bitmap
	sources  map[string]*sourceState
	dropped  map[string]string
	file     *os.File
	commits  chan commitItem
	complete chan struct{}          // closed once every group is verified and written
	checked  chan error             // the whole-file check's verdict (nil: the root matches)
	received int64                  // groups verified on disk (recorded or not yet)
	written  int64                  // groups written and not yet verified
	proofs   map[int64][]byte       // proofs of written groups, until verified
	writer   map[int64]*sourceState // who sent each written group
	verifyAt int64                  // no written group below this index
	syncFile *os.File               // the committer's own handle on the partial file
	synced   Bitmap                 // the committer's: groups recorded after a sync
	lastSync time.Time              // the committer's: when the partial file was last synced
	wake     chan struct{}          // a source was dropped: look for others now
	failErr  error                  // set by fail: an error no source can fix
	scanFrom int64                  // no free group below this index
	gone     []SourceInfo           // sources dropped from this download
	meter    meter
	lastEmit time.Time

	resumed, fetched, duplicates, bad int64
}

func newRun(m *Manager, root [32]byte, rec downloadRecord, bitmap Bitmap) *run {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &run{
		m: m, root: root, rec: rec, bitmap: bitmap,
		log: m.log.With(slog.String("download", rec.Name)),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		sources: map[string]*sourceState{}, dropped: map[string]string{},
		proofs: map[int64][]byte{}, writer: map[int64]*sourceState{},
		complete: make(chan struct{}), wake: make(chan struct{}, 1), checked: make(chan error, 1),
	}
	r.cond = sync.NewCond(&r.mu)
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	return r
}

func (r *run) stop() { r.cancel() }

func (r *run) rootHex() string { return hex.EncodeToString(r.root[:]) }

// run drives the download to its end or until stopped.
func (r *run) run() {
	defer close(r.done)
	defer r.cancel()
	select {
	case r.m.slots <- struct{}{}:
		defer func() { <-r.m.slots }()
	case <-r.ctx.Done():
		return
	}
	err := r.fetchAll()
	r.mu.Lock()
	failed := r.failErr // the committer may still run: read under mu
	r.mu.Unlock()
	if failed != nil {
		err = failed
	}
	if err != nil && errors.Is(err, context.Canceled) && failed == nil {
		return // stopped: keep the state for a resume
	}
	if err != nil {
		r.finish(StateFailed, "", err)
		return
	}
	r.setState(StateVerifying)
	path, err := r.placeDone()
	if err != nil && errors.Is(err, context.Canceled) && r.ctx.Err() != nil {
		return // stopped while checking: keep the state for a resume
	}
	if err != nil {
		r.finish(StateFailed, "", err)
		return
	}
	r.finish(StateDone, path, nil)
}

// fetchAll fetches every group not yet stored, from every source it finds.
func (r *run) fetchAll() error {
	var wg sync.WaitGroup
	defer func() {
		r.mu.Lock()
		for _, s := range r.sources {
			s.cancel()
		}
		r.cond.Broadcast()
		r.mu.Unlock()
		wg.Wait()
		r.mu.Lock()
		for _, s := range r.sources {
			if s.Close != nil {
				s.Close()
			}
			r.gone = append(r.gone, SourceInfo{Name: s.Name, Bytes: s.bytes})
		}
		r.sources = map[string]*sourceState{}
		if r.file != nil {
			r.file.Close()
			r.file = nil
		}
		r.mu.Unlock()
	}()
	refresh := time.NewTicker(r.m.cfg.Tuning.SourceRefresh)
	defer refresh.Stop()
	started := false
	// begin fixes the size, opens the partial file and starts the
	// committer; done reports that nothing is left to fetch.
	begin := func(size int64) (done bool, err error) {
		if err := r.prepare(size); err != nil {
			return false, err
		}
		if r.groups > 0 {
			if err := r.startCheck(); err != nil {
				r.syncFile.Close()
				return false, err
			}
		}
		if r.groups == 0 || r.stored == r.groups {
			r.syncFile.Close()
			return true, nil
		}
		// The committer is not waited for here: a download is
		// complete when every group is verified and written; the
		// bitmap only matters until then (see commitLoop).
		r.m.wg.Add(1)
		go func() { defer r.m.wg.Done(); r.commitLoop() }()
		started = true
		return false, nil
	}
	// A proven size needs no source to begin: an empty file, or one whose
	// groups were all stored before a restart, completes without any. A
	// size from the link, or from a source, is only a claim until a proof
	// agrees (see proveSize); nothing is reserved for it before.
	r.mu.Lock()
	size, known := r.rec.Size, r.rec.SizeProven && r.rec.Size >= 0
	r.mu.Unlock()
	if r.root == EmptyRoot {
		size, known = 0, true // only the empty file has the empty root
	}
	if known {
		if done, err := begin(size); done || err != nil {
			return err
		}
	}
	for {
		if !started || r.activeSources() == 0 {
			// Look at once when starting, and often while no source works.
		} else {
			select {
			case <-r.ctx.Done():
				return r.ctx.Err()
			case <-r.complete:
				return nil
			case <-refresh.C:
			case <-r.wake:
			}
		}
		if started {
			select {
			case <-r.complete:
				return nil
			default:
			}
		}
		srcs := r.find()
		var sp *sizeProof
		if !started && len(srcs) > 0 {
			var size int64
			if size, srcs, sp = r.proveSize(srcs); size >= 0 {
				if done, err := begin(size); done || err != nil {
					closeSources(srcs) // found, never attached
					return err
				}
			}
		}
		for _, src := range srcs {
			if src.Have.Size != r.size {
				// Only one size verifies against the root: this one is
				// not it.
				r.refuse(src, fmt.Sprintf("claimed %d bytes; the root proves %d", src.Have.Size, r.size), true)
				continue
			}
			s := r.attach(src)
			if sp != nil && sp.src == src {
				r.deliver(s, Groups(r.size)-1, sp.data, sp.proof)
			}
			for range r.m.cfg.Tuning.Window {
				wg.Add(1)
				go func() { defer wg.Done(); r.worker(s) }()
			}
		}
		if !started || r.activeSources() == 0 {
			r.setState(StateSearching)
			select {
			case <-r.ctx.Done():
				return r.ctx.Err()
			case <-r.complete:
				return nil
			case <-time.After(time.Second):
			case <-r.wake:
			}
		} else {
			r.setState(StateActive)
		}
	}
}

// proveSize finds the file's size among the sizes srcs claim, before any
// space is reserved for it. For each size claimed, one source claiming it
// is asked for the last group at that size, which is checked against the
// root (the next source is asked if that one cannot answer or sends bad
// data); the claims are tried all at once. BLAKE3 and Bao bind the length
// into the tree (the last group's place and length fix its chunk counters
// and the shape of its proof), so a wrong size cannot verify and a source
// cannot fix the size by claiming it. The first claim that verifies is the
// size; the others are lies, and their proofs are cut short. It returns the
// size (UnknownSize if none verified), the sources that claim it and the
// proof, whose group is the download's first; sources that lied or sent a
// bad proof are dropped for good, those that could not answer are closed
// and may be found again.
func (r *run) proveSize(srcs []*Source) (int64, []*Source, *sizeProof) {
	ctx, cancel := context.WithTimeout(r.ctx, r.m.cfg.Tuning.StallTimeout)
	defer cancel()
	var claims []int64
	byClaim := map[int64][]*Source{}
	for _, src := range srcs {
		c := src.Have.Size
		if _, ok := byClaim[c]; !ok {
			claims = append(claims, c)
		}
		byClaim[c] = append(byClaim[c], src)
	}
	type result struct {
		sizeProof
		err error
	}
	results := make(chan result)
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Go(func() {
			for _, src := range byClaim[c] {
				data, proof, err := r.proveClaim(ctx, src)
				results <- result{sizeProof{src, data, proof}, err}
				if err == nil || ctx.Err() != nil {
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	size := int64(UnknownSize)
	var won *sizeProof
	tried := map[*Source]error{}
	for res := range results {
		tried[res.src] = res.err
		r.mu.Lock()
		switch {
		case res.err == nil && size < 0:
			size, won = res.src.Have.Size, &res.sizeProof
			cancel() // the other claims are lies: no need to finish them
		case res.err == nil:
			// A second size verified: BLAKE3 would be broken. Keep the
			// first; the other's sources are refused below.
			r.fetched++
			r.duplicates++
		case errors.Is(res.err, ErrMismatch) && res.src.Have.Size > 0:
			r.fetched++
			r.bad++
		}
		r.mu.Unlock()
	}
	if size >= 0 {
		r.log.Info("file size proven", slog.Int64("size", size))
	}
	var keep []*Source
	for _, src := range srcs {
		claim := src.Have.Size
		err, wasTried := tried[src]
		switch {
		case size >= 0 && claim != size:
			r.refuse(src, fmt.Sprintf("claimed %d bytes; the root proves %d", claim, size), true)
		case wasTried && liedAboutSize(err):
			r.refuse(src, fmt.Sprintf("could not prove its size of %d bytes: %v", claim, err), true)
		case size >= 0 && (!wasTried || err == nil || errors.Is(err, errNoLastGroup)):
			keep = append(keep, src)
		default:
			r.log.Debug("download source could not prove its size", slog.String("source", src.Name), slog.Any("err", err))
			if src.Close != nil {
				src.Close()
			}
		}
	}
	return size, keep, won
}

// sizeProof is the last group of a file from src, verified at the size src
// claimed.
type sizeProof struct {
	src         *Source
	data, proof []byte
}

// deliver writes group i, which a size proof brought from s, as if s had
// been asked for it; the verifier checks it again from the disk.
func (r *run) deliver(s *sourceState, i int64, data, proof []byte) {
	r.mu.Lock()
	if r.state[i] != groupFree {
		r.fetched++ // resumed already
		r.duplicates++
		r.mu.Unlock()
		return
	}
	r.state[i] = groupAsked
	r.inflight[i]++
	r.askedAt[i], r.askedBy[i] = time.Now().UnixNano(), s
	r.mu.Unlock()
	if err := r.write(s, i, 1, data, proof); err != nil {
		r.fail(err)
	}
}

// errNoLastGroup means a source does not hold the group that would prove
// the size it claims.
var errNoLastGroup = errors.New("source does not hold the last group")

// proveClaim fetches the last group at the size src claims and verifies it.
func (r *run) proveClaim(ctx context.Context, src *Source) (data, proof []byte, err error) {
	size := src.Have.Size
	switch {
	case size < 0 || size > MaxFileSize:
		return nil, nil, fmt.Errorf("%w: %d", ErrBadSize, size)
	case size == 0:
		return nil, nil, fmt.Errorf("empty file: %w", ErrMismatch) // the root is not EmptyRoot
	}
	last := Groups(size) - 1
	if !src.Have.Has(last) {
		return nil, nil, errNoLastGroup
	}
	data, proof, err = src.Fetcher.GetRange(ctx, r.root, size, last, 1, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := VerifyGroup(r.root, size, last, data, proof); err != nil {
		return nil, nil, err
	}
	return data, proof, nil
}

// liedAboutSize reports whether err, from proveClaim, shows the source
// claimed a size the root does not have (or cannot back its claim), rather
// than a stream that failed.
func liedAboutSize(err error) bool {
	var er ErrorReply
	switch {
	case err == nil:
		return false
	case errors.As(err, &er):
		return er.Code != CodeBusy
	}
	return errors.Is(err, ErrMismatch) || errors.Is(err, ErrBadProof) || errors.Is(err, ErrBadSize) || errors.Is(err, ErrBadReply)
}

// refuse turns down a source that was found but not attached, closing it;
// a liar is listed among the download's dropped sources and never taken
// again.
func (r *run) refuse(src *Source, reason string, liar bool) {
	r.mu.Lock()
	if liar {
		r.dropped[src.Key] = reason
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

func (r *run) find() []*Source {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	return r.m.cfg.Finder.FindSources(ctx, r.root, func(key string) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, inUse := r.sources[key]
		_, bad := r.dropped[key]
		return inUse || bad
	})
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

// prepare fixes the file size, which a proof established (or an earlier
// run recorded so), opens the partial file and loads which groups are
// already stored. Only now is space reserved for the file.
func (r *run) prepare(size int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if size < 0 || size > MaxFileSize {
		return fmt.Errorf("%w: %d", ErrBadSize, size)
	}
	r.size, r.groups = size, Groups(size)
	r.state = make([]uint8, r.groups)
	r.inflight = make([]uint8, r.groups)
	r.askedAt = make([]int64, r.groups)
	r.askedBy = make([]*sourceState, r.groups)
	if r.rec.Size != size || !r.rec.SizeProven {
		if r.rec.Size >= 0 && r.rec.Size != size {
			r.log.Info("the link's size was wrong", slog.Int64("link_size", r.rec.Size), slog.Int64("size", size))
		}
		r.rec.Size, r.rec.SizeProven = size, true
		r.saveLocked()
	}
	path := r.m.partialPath(r.root)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening partial file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening partial file: %w", err)
	}
	// A bitmap is only trusted with the partial file it describes.
	if fi.Size() != size || int64(len(r.bitmap)) != (r.groups+7)/8 {
		r.bitmap = NewBitmap(r.groups)
		if err := f.Truncate(size); err != nil {
			f.Close()
			return fmt.Errorf("sizing partial file: %w", err)
		}
		if err := reserveSpace(f, size); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("reserving %s for the partial file: %w", FormatSize(size), err)
		}
	}
	r.file = f
	if r.syncFile, err = os.Open(path); err != nil {
		f.Close()
		return fmt.Errorf("opening partial file: %w", err)
	}
	r.commits = make(chan commitItem, r.groups)
	for i := range r.groups {
		if r.bitmap.Has(i) {
			r.state[i] = groupStored
			r.stored++
		}
	}
	r.resumed = r.stored
	r.received = r.stored
	// What was recorded is the starting point of both bitmaps: it was
	// trusted as durable for this boot.
	r.synced = Bitmap(append([]byte(nil), r.bitmap...))
	r.lastSync = time.Now()
	if r.stored > 0 {
		r.log.Info("resuming download", slog.Int64("stored_groups", r.stored), slog.Int64("groups", r.groups))
	}
	return nil
}

func (r *run) attach(src *Source) *sourceState {
	ctx, cancel := context.WithCancel(r.ctx)
	s := &sourceState{Source: src, ctx: ctx, cancel: cancel}
	r.mu.Lock()
	r.sources[src.Key] = s
	r.mu.Unlock()
	r.log.Info("download source", slog.String("source", src.Name))
	return s
}

// drop takes a source off this download. A source that lied (bad data) is
// never taken again; one that failed (stalled, stream broken) may be found
// again by the next search for sources.
func (r *run) drop(s *sourceState, reason string, liar bool) {
	r.mu.Lock()
	first := s.dropped == ""
	if first {
		s.dropped = reason
		s.cancel()
		if liar {
			r.dropped[s.Key] = reason
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
		if r.written >= DownloadMaxUnverified {
			// The verifier is behind: wait rather than pile up proofs.
			r.cond.Wait()
			continue
		}
		if first, count = r.pickLocked(s, groupFree, 0); count > 0 {
			return first, count, true
		}
		// End game: help with a range in flight at one other source.
		if first, count = r.pickLocked(s, groupAsked, 1); count > 0 {
			return first, count, true
		}
		r.waitLocked(DownloadEndgameAfter / 2)
	}
}

// pickLocked finds up to RangeGroups contiguous groups in state want with
// exactly inflight requests, held by s, and marks them asked. Groups already
// asked for (the end game) are taken only once their request is older than
// DownloadEndgameAfter, so a healthy source is not second-guessed.
func (r *run) pickLocked(s *sourceState, want uint8, inflight uint8) (int64, int64) {
	max := r.m.cfg.Tuning.RangeGroups
	now := time.Now().UnixNano()
	ok := func(i int64) bool {
		if r.state[i] != want || r.inflight[i] != inflight || !s.Have.Has(i) {
			return false
		}
		return want != groupAsked || (r.askedBy[i] != s && now-r.askedAt[i] > int64(DownloadEndgameAfter))
	}
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
	// Room for the proof too, or the Peer allocates every reply.
	buf := make([]byte, r.m.cfg.Tuning.RangeGroups*(GroupSize+MaxGroupProofSize))
	for {
		first, count, ok := r.claim(s)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, r.m.cfg.Tuning.StallTimeout)
		data, proof, err := s.Fetcher.GetRange(ctx, r.root, r.size, first, count, buf)
		stalled := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		if err != nil {
			r.release(first, count)
			var er ErrorReply
			switch {
			case s.ctx.Err() != nil:
				return
			case errors.As(err, &er) && er.Code == CodeBusy:
				// The source is short of memory now: try again soon.
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(DownloadBusyWait):
				}
				continue
			case stalled:
				r.mu.Lock()
				s.stalls++
				n := s.stalls
				r.mu.Unlock()
				if n >= DownloadMaxStalls {
					r.drop(s, "stalled", false)
					return
				}
				continue
			default:
				r.drop(s, "error: "+err.Error(), false)
				return
			}
		}
		// The bytes are verified once they are on disk (verifyLoop): one
		// hash per byte serves as both the check of what the source sent
		// and the whole-file check of what was written. Here only the
		// lengths, which the Peer checked already.
		if int64(len(data)) != RangeDataSize(r.size, first, count) || len(proof) != RangeProofSize(r.size, first, count) {
			r.release(first, count)
			r.drop(s, "sent a range of the wrong length", true)
			return
		}
		if l := r.m.cfg.Limiter; l != nil {
			if err := l.Wait(s.ctx, len(data)); err != nil {
				r.release(first, count)
				return
			}
		}
		if err := r.write(s, first, count, data, proof); err != nil {
			r.fail(err) // write gave its groups back already
			return
		}
	}
}

// write stores a received range in the partial file, unverified, for the
// verifier. Only the first answer for a group is written: a group being
// written, written or verified is never written again, so no source can
// overwrite bytes another one sent (and that may already be verified).
func (r *run) write(s *sourceState, first, count int64, data, proof []byte) error {
	r.mu.Lock()
	s.stalls = 0
	s.bytes += int64(len(data))
	s.meter.add(int64(len(data)))
	r.meter.add(int64(len(data)))
	mine := make([]bool, count)
	all := true
	for i := first; i < first+count; i++ {
		r.inflight[i]--
		r.fetched++
		if r.state[i] == groupAsked {
			r.state[i] = groupWriting
			mine[i-first] = true
		} else {
			r.duplicates++ // the end game: another source was faster
			all = false
		}
	}
	f := r.file
	r.mu.Unlock()

	var err error
	if all {
		_, err = f.WriteAt(data, first*GroupSize)
	} else {
		for i := first; i < first+count && err == nil; i++ {
			if mine[i-first] {
				off, n := GroupBounds(r.size, i)
				rel := off - first*GroupSize
				_, err = f.WriteAt(data[rel:rel+n], off)
			}
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	p := proof
	for i := first; i < first+count; i++ {
		n := GroupProofSize(r.size, i)
		if mine[i-first] {
			if err != nil {
				r.state[i] = groupFree
				r.scanFrom = min(r.scanFrom, i)
			} else {
				r.state[i] = groupWritten
				r.proofs[i] = append([]byte(nil), p[:n]...)
				r.writer[i] = s
				r.written++
				r.verifyAt = min(r.verifyAt, i)
			}
		}
		p = p[n:]
	}
	r.cond.Broadcast()
	if err != nil {
		return fmt.Errorf("writing partial file: %w", err)
	}
	return nil
}

// fail ends the download with an error that no source can fix (a full disk).
func (r *run) fail(err error) {
	r.mu.Lock()
	if r.failErr == nil {
		r.failErr = err
	}
	r.mu.Unlock()
	r.cancel()
}

// commitLoop makes written groups durable in batches: sync the partial
// file, then record the groups in the bitmap in one bbolt transaction. It
// runs beside the workers and never blocks them; the bitmap therefore lags
// what was received by the disk's write-back. That lag is all a crash can
// cost: a restart fetches again the groups not yet recorded, and never
// trusts a group whose bytes might not be on disk. Once every group is
// received the committer stops: the download no longer needs a bitmap.
func (r *run) commitLoop() {
	defer r.syncFile.Close()
	for {
		var batch []commitItem
		select {
		case <-r.ctx.Done():
			return
		case <-r.complete:
			return
		case it := <-r.commits:
			batch = append(batch, it)
		}
		timer := time.NewTimer(DownloadCommitDelay)
	gather:
		for {
			select {
			case it := <-r.commits:
				batch = append(batch, it)
			case <-timer.C:
				break gather
			case <-r.ctx.Done():
				break gather
			}
		}
		timer.Stop()
		if err := r.commit(batch); err != nil {
			if r.ctx.Err() == nil {
				select {
				case <-r.complete:
				default:
					r.fail(err)
				}
			}
			return
		}
	}
}

// commit records a batch of written groups in the fast bitmap, and every
// DownloadSyncInterval syncs the partial file and copies the fast bitmap to
// the synced one (see resume.go).
func (r *run) commit(batch []commitItem) error {
	synced := r.synced
	doSync := bootID() == "" || time.Since(r.lastSync) >= DownloadSyncInterval
	if doSync {
		// Every group of this batch (and of earlier ones) was written
		// before this point, so the sync covers all of next below.
		if err := syncData(r.syncFile); err != nil {
			return fmt.Errorf("syncing partial file: %w", err)
		}
		r.lastSync = time.Now()
	}
	select {
	case <-r.complete:
		return nil // the download is past needing a bitmap
	case <-r.ctx.Done():
		return nil
	default:
	}
	r.mu.Lock()
	next := Bitmap(append([]byte(nil), r.bitmap...))
	for _, it := range batch {
		for i := it.first; i < it.first+it.count; i++ {
			if r.state[i] == groupCommitting {
				next.Set(i)
			}
		}
	}
	r.mu.Unlock()
	if doSync {
		synced = next
	}
	err := r.m.cfg.DB.Update(func(tx *bolt.Tx) error {
		// The committer may outlive the run by one batch: never write a
		// bitmap for a download that was finished or cancelled meanwhile.
		v := tx.Bucket(bucketDownloads).Get(r.root[:])
		var rec downloadRecord
		if v == nil || json.Unmarshal(v, &rec) != nil || rec.State == StateDone || rec.State == StateFailed {
			return nil
		}
		return tx.Bucket(bucketBitmaps).Put(r.root[:], encodeResume(bootID(), next, synced))
	})
	if err != nil {
		return fmt.Errorf("recording verified groups: %w", err)
	}
	r.synced = synced
	r.mu.Lock()
	r.bitmap = next
	for _, it := range batch {
		for i := it.first; i < it.first+it.count; i++ {
			if r.state[i] == groupCommitting {
				r.state[i] = groupStored
				r.stored++
			}
		}
	}
	r.cond.Broadcast()
	r.mu.Unlock()
	r.emit("download.progress", false)
	return nil
}

// placeDone waits for the verifier's whole-file verdict and moves the file
// into place without overwriting anything.
func (r *run) placeDone() (string, error) {
	part := r.m.partialPath(r.root)
	if r.size == 0 {
		if r.root != EmptyRoot {
			return "", fmt.Errorf("empty file: %w", ErrMismatch)
		}
		if err := os.WriteFile(part, nil, 0o600); err != nil {
			return "", err
		}
	}
	if r.size > 0 {
		var err error
		select {
		case err = <-r.checked:
		case <-r.ctx.Done():
			return "", r.ctx.Err()
		}
		if err != nil {
			// Every group was verified, so the disk changed the bytes.
			r.m.cfg.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBitmaps).Delete(r.root[:]) })
			return "", fmt.Errorf("checking the whole file: %w", err)
		}
	}
	r.mu.Lock()
	dir, name := r.rec.Dir, r.rec.Name
	r.mu.Unlock()
	dest, err := placeFile(part, dir, name)
	if err != nil {
		return "", err
	}
	return dest, nil
}

// startCheck starts the verifier: a goroutine that reads received groups
// back from the partial file, verifies each against the root with its proof,
// and feeds them in order to the whole-file root. Every byte is hashed once,
// from the disk, and that one hash is both the verification of what a
// source sent and the check of the whole file against its root.
func (r *run) startCheck() error {
	f, err := os.Open(r.m.partialPath(r.root))
	if err != nil {
		return fmt.Errorf("opening partial file: %w", err)
	}
	r.m.wg.Add(1)
	go func() {
		defer r.m.wg.Done()
		defer f.Close()
		r.checked <- r.verifyLoop(f)
	}()
	return nil
}

// verifyLoop verifies written groups as they come, lowest first, and ends
// when the whole file's root is known (nil if it is the expected one).
func (r *run) verifyLoop(f *os.File) error {
	b := newRootBuilder(r.size)
	// Hash the page cache in place through a mapping where there is one;
	// read into a buffer otherwise.
	mapped, unmap, _ := mapFile(f, r.size)
	defer unmap()
	var buf []byte
	if mapped == nil {
		buf = make([]byte, checkRunGroups*GroupSize)
	}
	readAt := func(off, n int64) ([]byte, error) {
		if mapped != nil {
			return mapped[off : off+n], nil
		}
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return nil, fmt.Errorf("reading partial file: %w", err)
		}
		return buf[:n], nil
	}
	pending := map[int64]guts.Node{} // verified nodes ahead of the builder

	// Groups recorded before this run are on disk but have no proofs: they
	// are hashed into the root, which the end compares.
	r.mu.Lock()
	var resumed []int64
	for i := range r.groups {
		if r.state[i] == groupStored {
			resumed = append(resumed, i)
		}
	}
	r.mu.Unlock()
	for _, i := range resumed {
		off, n := GroupBounds(r.size, i)
		data, err := readAt(off, n)
		if err != nil {
			return err
		}
		pending[i] = groupNode(data, uint64(i)*(GroupSize/guts.ChunkSize))
		for node, ok := pending[b.next]; ok; node, ok = pending[b.next] {
			delete(pending, b.next)
			b.push(node)
		}
	}

	for b.next < b.groups {
		r.mu.Lock()
		var first, n int64
		for {
			for r.verifyAt < r.groups && r.state[r.verifyAt] != groupWritten {
				r.verifyAt++
			}
			if r.verifyAt < r.groups || r.ctx.Err() != nil {
				break
			}
			r.cond.Wait()
		}
		if err := r.ctx.Err(); err != nil {
			r.mu.Unlock()
			return err
		}
		first = r.verifyAt
		for first+n < r.groups && n < checkRunGroups && r.state[first+n] == groupWritten {
			n++
		}
		proofs := make([][]byte, n)
		writers := make([]*sourceState, n)
		for j := range n {
			proofs[j], writers[j] = r.proofs[first+j], r.writer[first+j]
		}
		r.verifyAt = first + n
		r.mu.Unlock()

		off, _ := GroupBounds(r.size, first)
		p, err := readAt(off, RangeDataSize(r.size, first, n))
		if err != nil {
			return err
		}
		var liars []*sourceState
		good := make([]bool, n)
		for j := range n {
			i := first + j
			_, gn := GroupBounds(r.size, i)
			node := groupNode(p[:gn], uint64(i)*(GroupSize/guts.ChunkSize))
			p = p[gn:]
			if verifyNode(r.root, r.size, i, node, proofs[j]) {
				good[j] = true
				pending[i] = node
			}
		}
		r.mu.Lock()
		runStart := int64(-1)
		flush := func(end int64) {
			if runStart >= 0 {
				r.commits <- commitItem{runStart, end - runStart}
				runStart = -1
			}
		}
		for j := range n {
			i := first + j
			delete(r.proofs, i)
			delete(r.writer, i)
			r.written--
			if good[j] {
				r.state[i] = groupCommitting
				r.received++
				if runStart < 0 {
					runStart = i
				}
				continue
			}
			flush(i)
			r.bad++
			r.state[i] = groupFree
			r.scanFrom = min(r.scanFrom, i)
			liars = append(liars, writers[j])
		}
		flush(first + n)
		// Whatever else a liar sent and is not verified yet is suspect:
		// give it back to be fetched from others.
		for _, liar := range liars {
			for i, w := range r.writer {
				if w == liar && r.state[i] == groupWritten {
					r.bad++
					r.state[i] = groupFree
					r.scanFrom = min(r.scanFrom, i)
					delete(r.proofs, i)
					delete(r.writer, i)
					r.written--
				}
			}
		}
		done := r.received == r.groups
		if done {
			close(r.complete)
		}
		r.cond.Broadcast()
		r.mu.Unlock()
		for _, liar := range liars {
			r.log.Warn("source sent data that does not match the root", slog.String("source", liar.Name))
			r.drop(liar, "sent data that does not match the root", true)
		}
		for node, ok := pending[b.next]; ok; node, ok = pending[b.next] {
			delete(pending, b.next)
			b.push(node)
		}
	}
	if b.root() != r.root {
		return fmt.Errorf("%w (the partial file changed on disk)", ErrMismatch)
	}
	return nil
}

// checkRunGroups is how many groups the whole-file check reads at once.
const checkRunGroups = 16

// placeFile moves src to dir/name, or to "name (2).ext" and so on if that
// exists: an existing file is never overwritten. Every name tried fits the
// folder's file system (see candidateName).
func placeFile(src, dir, name string) (string, error) {
	budget := nameMax(dir)
	for n := 1; n < maxNameTries; n++ {
		dest := filepath.Join(dir, candidateName(name, n, budget))
		err := os.Link(src, dest)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if errors.Is(err, syscall.EXDEV) {
			err = copyNew(src, dest)
			if errors.Is(err, os.ErrExist) {
				continue
			}
		}
		if err != nil {
			return "", fmt.Errorf("moving download into place: %w", err)
		}
		os.Remove(src)
		return dest, nil
	}
	return "", fmt.Errorf("moving download into place: too many files named %s", name)
}

// maxNameTries bounds the names placeFile tries: name, "name (2)" and so
// on up to "name (999)".
const maxNameTries = 1000

// candidateName returns the n-th name to try for a download called name
// in a folder whose file system takes names of at most budget bytes: name
// itself for n = 1, else "stem (n).ext". A name that does not fit has its
// stem cut, at a character boundary, and keeps its extension (an extension
// of more than a quarter of the budget counts as part of the stem).
func candidateName(name string, n, budget int) string {
	ext := filepath.Ext(name)
	if len(ext) > budget/4 {
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	suffix := ""
	if n > 1 {
		suffix = fmt.Sprintf(" (%d)", n)
	}
	return truncateUTF8(stem, max(budget-len(suffix)-len(ext), 0)) + suffix + ext
}

// checkPlaceable checks, before a download starts, that a file of the name
// it will get can be created in dir: it creates the first free candidate
// name and removes it again. So a folder that cannot take the file fails
// the download at once, not after its last byte.
func checkPlaceable(dir, name string) error {
	budget := nameMax(dir)
	for n := 1; n < maxNameTries; n++ {
		p := filepath.Join(dir, candidateName(name, n, budget))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cannot create the download in %s: %w", dir, err)
		}
		f.Close()
		os.Remove(p)
		return nil
	}
	return fmt.Errorf("cannot create the download in %s: too many files named %s", dir, name)
}

// copyNew copies src to dest, which must not exist (another file system).
func copyNew(src, dest string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dest)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(dest)
		return err
	}
	return out.Close()
}

func (r *run) setState(s DownloadState) {
	r.mu.Lock()
	changed := r.rec.State != s
	r.rec.State = s
	if changed {
		r.saveLocked()
	}
	r.mu.Unlock()
	if changed {
		r.emit("download.progress", true)
	}
}

// finish records the final state of the download.
func (r *run) finish(state DownloadState, path string, err error) {
	r.mu.Lock()
	r.rec.State = state
	r.rec.Path = path
	r.rec.Finished = time.Now().UTC()
	if err != nil {
		r.rec.Error = err.Error()
	} else if state == StateDone {
		r.rec.Error = ""
	}
	r.saveLocked()
	r.mu.Unlock()
	if state == StateDone {
		r.m.cfg.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBitmaps).Delete(r.root[:]) })
		r.log.Info("download done", slog.String("path", path))
		r.emit("download.done", true)
	} else {
		// A failed download starts afresh if added again: its partial
		// data is of no more use.
		r.m.cfg.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBitmaps).Delete(r.root[:]) })
		os.Remove(r.m.partialPath(r.root))
		r.log.Warn("download failed", slog.Any("err", err))
		r.emit("download.failed", true)
	}
}

func (r *run) saveLocked() {
	rec := r.rec
	err := r.m.cfg.DB.Update(func(tx *bolt.Tx) error { return putRecord(tx, r.root, rec) })
	if err != nil {
		r.log.Warn("saving download state", slog.Any("err", err))
	}
}

// emit sends an event; progress events are throttled to a few a second.
func (r *run) emit(typ string, force bool) {
	if r.m.cfg.OnEvent == nil {
		return
	}
	r.mu.Lock()
	if !force && time.Since(r.lastEmit) < 250*time.Millisecond {
		r.mu.Unlock()
		return
	}
	r.lastEmit = time.Now()
	r.mu.Unlock()
	r.m.cfg.OnEvent(typ, r.info())
}

// info is a snapshot of the download.
func (r *run) info() DownloadInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := DownloadInfo{
		Root: r.rootHex(), Name: r.rec.Name, Size: r.rec.Size, SizeProven: r.rec.SizeProven, Dir: r.rec.Dir,
		State: r.rec.State, Path: r.rec.Path, Error: r.rec.Error,
		Groups: r.groups, Verified: r.stored, Received: r.received, Rate: r.meter.rate(),
		Added: r.rec.Added, Finished: r.rec.Finished, Sources: []SourceInfo{},
		ResumedGroups: r.resumed, FetchedGroups: r.fetched, DuplicateGroups: r.duplicates, BadRanges: r.bad,
	}
	if r.groups == 0 && r.rec.Size > 0 {
		info.Groups = Groups(r.rec.Size)
	}
	if r.rec.State == StateDone {
		// The whole file was checked against its root.
		info.Verified, info.Received = info.Groups, info.Groups
	}
	if r.received == r.groups {
		info.Done = r.size
	} else {
		info.Done = min(r.received*GroupSize, r.size)
	}
	for _, s := range r.sources {
		info.Sources = append(info.Sources, SourceInfo{Name: s.Name, Bytes: s.bytes, Rate: s.meter.rate()})
	}
	info.Sources = append(info.Sources, r.gone...)
	return info
}

// meter measures a byte rate over the last few seconds. Not safe for
// concurrent use; callers hold the run's lock.
type meter struct {
	buckets [4]int64 // bytes per second, ring
	stamp   int64    // second of buckets[stamp%4]
}

func (m *meter) advance(now int64) {
	if now-m.stamp >= int64(len(m.buckets)) {
		m.buckets = [4]int64{}
	} else {
		for s := m.stamp + 1; s <= now; s++ {
			m.buckets[s%4] = 0
		}
	}
	if now > m.stamp {
		m.stamp = now
	}
}

func (m *meter) add(n int64) {
	now := time.Now().Unix()
	m.advance(now)
	m.buckets[now%4] += n
}

// rate averages the last three whole seconds and the current one, weighted
// by elapsed time.
func (m *meter) rate() float64 {
	t := time.Now()
	now := t.Unix()
	m.advance(now)
	var sum int64
	for _, b := range m.buckets {
		sum += b
	}
	elapsed := 3 + float64(t.Nanosecond())/1e9
	return float64(sum) / elapsed
}
