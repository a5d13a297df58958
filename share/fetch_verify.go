package share

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"lukechampine.com/blake3/guts"
)

// checkRunGroups is how many groups the verifier reads at once.
const checkRunGroups = 16

// startCheck starts the verifier: a goroutine that reads written groups
// back from the partial file and verifies each against the root with the
// proof that came with it. So what a source sent is checked as it is on
// the disk; the whole file is read again once it is complete (see
// checkWhole), since it may change after its groups were verified, and
// compared with the fingerprint the verifier took (fetch_print.go).
func (r *run) startCheck() error {
	f, err := os.Open(r.m.partialPath(r.root))
	if err != nil {
		return fmt.Errorf("opening partial file: %w", err)
	}
	r.m.wg.Add(1)
	go func() {
		defer r.m.wg.Done()
		defer f.Close()
		if err := r.verifyLoop(f); err != nil && !errors.Is(err, context.Canceled) {
			// The partial file cannot be read back: no source can fix
			// that, and nothing more would be verified.
			r.fail(err)
		}
	}()
	return nil
}

// verifier is the state of the verifier's goroutine: how it reads the
// partial file.
type verifier struct {
	r      *run
	f      *os.File
	mapped []byte // the partial file mapped, or nil: read into buf
	buf    []byte
	group  []byte // a private copy of the group being verified, when mapped
}

// verifyLoop verifies written groups as they come, lowest first, and ends
// when every group is verified.
func (r *run) verifyLoop(f *os.File) (err error) {
	// A mapped page past the end of the file (another program truncated
	// it) faults when it is read: let that fail this download rather than
	// kill the node with SIGBUS. The setting is the goroutine's own.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverFault(&err)
	v := &verifier{r: r, f: f}
	// Hash the page cache in place through a mapping where there is one;
	// read into a buffer otherwise.
	mapped, unmap, _ := mapFile(f, r.size)
	defer unmap()
	v.mapped = mapped
	if mapped == nil {
		v.buf = make([]byte, checkRunGroups*GroupSize)
	} else {
		v.group = make([]byte, GroupSize)
	}
	for {
		first, proofs, writers, err := r.nextWritten()
		if err != nil || proofs == nil {
			return err
		}
		good, sums, err := v.check(first, proofs)
		if err != nil {
			return err
		}
		for _, liar := range r.settle(first, good, sums, writers) {
			r.log.Warn("source sent data that does not match the root", slog.String("source", liar.Name))
			r.drop(liar, "sent data that does not match the root", true)
		}
	}
}

// recoverFault, deferred by a goroutine that reads a mapping of the partial
// file with debug.SetPanicOnFault, turns the panic of a memory fault (a
// page past the end of a truncated file) into *err. Other panics go on.
func recoverFault(err *error) {
	p := recover()
	if p == nil {
		return
	}
	if _, fault := p.(interface{ Addr() uintptr }); fault {
		*err = fmt.Errorf("reading partial file: %w (it is shorter than the download: another program truncated it)", ErrPartialChanged)
		return
	}
	panic(p)
}

// readAt returns n bytes of the partial file at off: the mapping itself,
// or v.buf read from the file.
func (v *verifier) readAt(off, n int64) ([]byte, error) {
	if v.mapped != nil {
		return v.mapped[off : off+n], nil
	}
	if _, err := v.f.ReadAt(v.buf[:n], off); err != nil {
		return nil, fmt.Errorf("reading partial file: %w", err)
	}
	return v.buf[:n], nil
}

// nextWritten waits for written groups and takes the lowest run of them,
// at most checkRunGroups, with their proofs and the sources that sent them.
// It returns no proofs once every group is verified.
func (r *run) nextWritten() (first int64, proofs [][]byte, writers []*sourceState, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for r.verifyAt < r.groups && r.state[r.verifyAt] != groupWritten {
			r.verifyAt++
		}
		if r.verifyAt < r.groups || r.ctx.Err() != nil {
			break
		}
		if r.received == r.groups {
			return 0, nil, nil, nil
		}
		r.cond.Wait()
	}
	if err := r.ctx.Err(); err != nil {
		return 0, nil, nil, err
	}
	first = r.verifyAt
	var n int64
	for first+n < r.groups && n < checkRunGroups && r.state[first+n] == groupWritten {
		n++
	}
	proofs = make([][]byte, n)
	writers = make([]*sourceState, n)
	for j := range n {
		proofs[j], writers[j] = r.proofs[first+j], r.writer[first+j]
	}
	r.verifyAt = first + n
	return first, proofs, writers, nil
}

// check reads the groups from first on, one per proof, back from the
// partial file and verifies each, and takes its fingerprint. Both hashes
// are of one private copy of the group's bytes (a mapping is copied from
// first), so that what is fingerprinted is what was verified even if
// another program writes to the file meanwhile.
func (v *verifier) check(first int64, proofs [][]byte) (good []bool, sums []uint64, err error) {
	r := v.r
	n := int64(len(proofs))
	if h := r.m.cfg.hooks; h != nil && h.beforeVerifyRead != nil {
		h.beforeVerifyRead(first)
	}
	off, _ := GroupBounds(r.size, first)
	p, err := v.readAt(off, RangeDataSize(r.size, first, n))
	if err != nil {
		return nil, nil, err
	}
	good, sums = make([]bool, n), make([]uint64, n)
	for j := range n {
		i := first + j
		_, gn := GroupBounds(r.size, i)
		b := p[:gn]
		if v.mapped != nil {
			b = v.group[:copy(v.group, b)]
		}
		node := groupNode(b, uint64(i)*(GroupSize/guts.ChunkSize))
		p = p[gn:]
		good[j] = verifyNode(r.root, r.size, i, node, proofs[j])
		sums[j] = r.prints.sum(b)
	}
	return good, sums, nil
}

// settle records the verdicts on the groups from first on: good ones go to
// the committer, bad ones are free to be fetched again, and so is every
// other unverified group their senders sent. It returns those senders, the
// liars, and closes r.complete once every group is verified.
func (r *run) settle(first int64, good []bool, sums []uint64, writers []*sourceState) (liars []*sourceState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	runStart := int64(-1)
	flush := func(end int64) {
		if runStart >= 0 {
			r.commits <- commitItem{runStart, end - runStart}
			runStart = -1
		}
	}
	n := int64(len(good))
	for j := range n {
		i := first + j
		if good[j] {
			r.keepProofLocked(i, r.proofs[i]) // swarm.go: to serve it
		}
		delete(r.proofs, i)
		delete(r.writer, i)
		r.written--
		if good[j] {
			r.state[i] = groupCommitting
			r.prints.record(i, sums[j])
			r.received++
			if runStart < 0 {
				runStart = i
			}
			continue
		}
		flush(i)
		r.bad++
		r.freeLocked(i)
		liars = append(liars, writers[j])
	}
	flush(first + n)
	// Whatever else a liar sent and is not verified yet is suspect: give
	// it back to be fetched from others.
	for _, liar := range liars {
		r.discardFromLocked(liar)
	}
	if r.received == r.groups {
		close(r.complete)
	}
	r.cond.Broadcast()
	return liars
}

// freeLocked makes group i free to be asked for again.
func (r *run) freeLocked(i int64) {
	r.state[i] = groupFree
	r.scanFrom = min(r.scanFrom, i)
}

// discardFromLocked frees every written, unverified group that liar sent.
func (r *run) discardFromLocked(liar *sourceState) {
	for i, w := range r.writer {
		if w == liar && r.state[i] == groupWritten {
			r.bad++
			r.freeLocked(i)
			delete(r.proofs, i)
			delete(r.writer, i)
			r.written--
		}
	}
}
