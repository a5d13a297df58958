package share

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A running download is one run, whose work is split by role over these
// files:
//
//   - fetch.go (here): the run's life, from a slot to its end, and the
//     loop that looks for sources until every group is verified;
//   - fetch_size.go: proving the file's size before anything is reserved;
//   - fetch_sched.go: the scheduler: sources, the ranges handed to their
//     workers, stalls and the end game;
//   - fetch_write.go: the partial file, and writing received ranges to it;
//   - fetch_verify.go: the verifier, which reads written groups back and
//     checks them against the root;
//   - resume.go: the committer, which records verified groups in the
//     resume bitmaps;
//   - fetch_place.go: the whole-file check and the move into place;
//   - fetch_meter.go: rates, events and the snapshot the API shows.
//
// All of them share the run's state under run.mu; each group moves
// through the states below, and only the role named beside a state moves
// a group out of it.

// Group states within a running download.
const (
	groupFree       uint8 = iota // not held, not asked for (scheduler)
	groupAsked                   // a request for it is in flight (worker)
	groupWriting                 // a worker is writing the first answer to the partial file (writer)
	groupWritten                 // in the partial file, not yet verified; its proof is held (verifier)
	groupCommitting              // read back and verified, waiting to be recorded (committer)
	groupStored                  // recorded in the resume bitmap (see resume.go)
)

// run is one download while the daemon runs it: the scheduler that hands
// groups to sources, the workers that fetch them, the writer, the verifier
// and the committer that makes verified groups durable.
//
// Durability: a group's data is written to the partial file before it is
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
	dropped  map[string]liarDrop
	file     *os.File
	commits  chan commitItem
	complete chan struct{}          // closed once every group is verified and written
	received int64                  // groups verified on disk (recorded or not yet)
	written  int64                  // groups written and not yet verified
	proofs   map[int64][]byte       // proofs of written groups, until verified
	writer   map[int64]*sourceState // who sent each written group
	verifyAt int64                  // no written group below this index
	prints   *groupPrints           // fingerprints of the groups verified by this run (fetch_print.go)
	commit   *committer             // set by prepare; owned by the committer's goroutine once started
	wake     chan struct{}          // a source was dropped: look for others now
	failErr  error                  // set by fail: an error no source can fix
	scanFrom int64                  // no free group below this index
	gone     []SourceInfo           // sources dropped from this download
	meter    meter
	lastEmit time.Time
	paused   *pauseCause // what stops the workers now (see fetch_pause.go), or nil
	sw       *swarmState // swarming and stream readers (swarm.go), once the size is fixed
	begun    bool        // the size is fixed and the partial file open; only the run's goroutine uses it

	noSourceSince time.Time // since when no source works; only the run's goroutine uses it
	committing    bool      // the committer's goroutine was started; only the run's goroutine uses it

	stopped atomic.Bool // stop was called: the run must not start again
	restart atomic.Bool // the run ended to start again from what it recorded (see relocate)

	resumed, fetched, duplicates, bad int64
}

func newRun(m *Manager, root [32]byte, rec downloadRecord, bitmap Bitmap) *run {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &run{
		m: m, root: root, rec: rec, bitmap: bitmap,
		log: m.log.With(slog.String("download", rec.Name)),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		sources: map[string]*sourceState{}, dropped: map[string]liarDrop{},
		proofs: map[int64][]byte{}, writer: map[int64]*sourceState{},
		complete: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	r.cond = sync.NewCond(&r.mu)
	context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	return r
}

func (r *run) stop() {
	r.stopped.Store(true)
	r.cancel()
}

func (r *run) rootHex() string { return hex.EncodeToString(r.root[:]) }

// endFetch ends the fetching, whose result is err, and reports whether
// every group is there to be checked and placed. Otherwise the run was
// stopped or is to start again (its state is kept for a resume), or it
// failed (recorded).
func (r *run) endFetch(err error) bool {
	if r.restart.Load() {
		// Its successor reads what the committer recorded: let it finish.
		if r.committing {
			<-r.commit.done
		}
		return false
	}
	r.mu.Lock()
	failed := r.failErr // the committer may still run: read under mu
	r.mu.Unlock()
	if failed != nil {
		err = failed
	}
	if err != nil && errors.Is(err, context.Canceled) && failed == nil {
		return false // stopped: keep the state for a resume
	}
	if err != nil {
		r.finish(StateFailed, "", err)
		return false
	}
	return true
}

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
	if path, ok := r.recoverPlaced(); ok {
		r.finish(StateDone, path, nil)
		return
	}
	if !r.endFetch(r.fetchAll()) {
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
// It looks for sources at once, then every searchDelay or when a source is
// dropped, and looks at the download's folders every DownloadLocalCheck
// (see checkLocal); while the download is paused it looks for nothing.
func (r *run) fetchAll() error {
	var wg sync.WaitGroup
	defer r.detachAll(&wg)
	local := time.NewTicker(DownloadLocalCheck)
	defer local.Stop()
	next := time.NewTimer(0) // the next search for sources
	defer next.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-r.complete:
			return nil
		case <-local.C:
			if !r.checkLocal() {
				continue
			}
		case <-r.wake:
		case <-next.C:
		}
		if r.isPaused() {
			continue // checkLocal lets it go on
		}
		if done, err := r.step(&wg); done || err != nil {
			return err
		}
		next.Reset(r.searchDelay())
	}
}

// step begins the download if its size is known, else looks for sources
// (which prove it), and sets the state; done reports that nothing is left
// to fetch.
func (r *run) step(wg *sync.WaitGroup) (done bool, err error) {
	// A proven size needs no source to begin: an empty file, or one whose
	// groups were all stored before a restart, completes without any. A
	// size from the link, or from a source, is only a claim until a proof
	// agrees (see proveSize); nothing is reserved for it before.
	if size, known := r.knownSize(); !r.begun && known {
		if done, err := r.begin(size); done || err != nil {
			return done, err
		}
	}
	if r.isPaused() {
		return false, nil // begin found the disk full
	}
	if r.begun && r.isComplete() {
		return true, nil
	}
	if done, err := r.addSources(wg); done || err != nil {
		return done, err
	}
	if !r.isPaused() {
		r.updateState()
	}
	return false, nil
}

// knownSize returns the file's size if it is proven: recorded as proven by
// an earlier run, or that of the empty file.
func (r *run) knownSize() (int64, bool) {
	r.mu.Lock()
	size, known := r.rec.Size, r.rec.SizeProven && r.rec.Size >= 0
	r.mu.Unlock()
	if r.root == EmptyRoot {
		return 0, true // only the empty file has the empty root
	}
	return size, known
}

// begin fixes the size, opens the partial file and starts the verifier
// and the committer; done reports that nothing is left to fetch. A disk too
// full for the partial file pauses the download instead (begin is tried
// again when there is space).
func (r *run) begin(size int64) (done bool, err error) {
	if err := r.prepare(size); err != nil {
		if isNoSpace(err) {
			r.pause(spaceCause(r.m.partial, size))
			return false, nil
		}
		return false, err
	}
	if r.groups == 0 || r.stored == r.groups {
		r.commit.close()
		return true, nil
	}
	if err := r.startCheck(); err != nil {
		r.commit.close()
		return false, err
	}
	// The committer is not waited for here: a download is complete when
	// every group is verified and written; the bitmap only matters until
	// then (see commitLoop).
	r.m.wg.Add(1)
	go func() { defer r.m.wg.Done(); r.commit.loop() }()
	r.begun, r.committing = true, true
	return false, nil
}

// addSources looks for sources and attaches those that hold the file at
// its size, up to DownloadMaxSources at once (the others are closed).
// Before the size is known, the sources found prove it first;
// done reports that the size proven leaves nothing to fetch.
func (r *run) addSources(wg *sync.WaitGroup) (done bool, err error) {
	srcs := r.find()
	var sp *sizeProof
	var spec *speculation
	if !r.begun && len(srcs) > 0 {
		spec = r.speculate(srcs) // fetch_speculate.go
		defer spec.drop()
		var size int64
		if size, srcs, sp = r.proveSize(srcs); size >= 0 {
			if done, err := r.begin(size); done || err != nil {
				closeSources(srcs) // found, never attached
				return true, err
			}
		}
	}
	if !r.begun {
		closeSources(srcs) // no size proven, or no room for it yet
		return false, nil
	}
	for i, src := range srcs {
		if r.activeSources() >= DownloadMaxSources {
			closeSources(srcs[i:]) // enough sources: the rest are not needed
			break
		}
		r.use(src, sp, spec, wg)
	}
	return false, nil
}

// isComplete reports whether every group is verified and written.
func (r *run) isComplete() bool {
	select {
	case <-r.complete:
		return true
	default:
		return false
	}
}

// detachAll stops every source's workers, waits for them (wg) and closes
// the sources and the partial file.
func (r *run) detachAll(wg *sync.WaitGroup) {
	r.mu.Lock()
	for _, s := range r.sources {
		s.cancel()
	}
	r.cond.Broadcast()
	r.mu.Unlock()
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
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

// setState sets the state, with no reason.
func (r *run) setState(s DownloadState) { r.setStateReason(s, "") }

// setStateReason sets the state and the reason people see for it.
func (r *run) setStateReason(s DownloadState, reason string) {
	r.mu.Lock()
	changed := r.rec.State != s || r.rec.Reason != reason
	r.rec.State, r.rec.Reason = s, reason
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
	r.rec.Placing, r.rec.Reason = "", ""
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

// saveLocked stores the download's record; an error is logged, and
// returned for the callers that depend on it. The caller holds r.mu.
func (r *run) saveLocked() error {
	rec := r.rec
	err := r.m.cfg.DB.Update(func(tx *bolt.Tx) error { return putRecord(tx, r.root, rec) })
	if err != nil {
		r.log.Warn("saving download state", slog.Any("err", err))
	}
	return err
}
