package share

import (
	"fmt"
	"log/slog"
	"os"
)

// The writer: the partial file (Dir/.partial/<root>.part), sized and
// reserved once the size is proven, and the received ranges written to it
// unverified, for the verifier.

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
	r.prints = newGroupPrints(r.groups)
	if r.rec.Size != size || !r.rec.SizeProven {
		if r.rec.Size >= 0 && r.rec.Size != size {
			r.log.Info("the link's size was wrong", slog.Int64("link_size", r.rec.Size), slog.Int64("size", size))
		}
		r.rec.Size, r.rec.SizeProven = size, true
		r.saveLocked()
	}
	f, err := r.openPartial()
	if err != nil {
		return err
	}
	r.file = f
	c, err := newCommitter(r)
	if err != nil {
		f.Close()
		return err
	}
	r.commit = c
	r.commits = make(chan commitItem, r.groups)
	for i := range r.groups {
		if r.bitmap.Has(i) {
			r.state[i] = groupStored
			r.stored++
		}
	}
	r.resumed = r.stored
	r.received = r.stored
	if r.stored > 0 {
		r.log.Info("resuming download", slog.Int64("stored_groups", r.stored), slog.Int64("groups", r.groups))
	}
	return nil
}

// openPartial opens the partial file, and sizes it and reserves its space
// unless it is the one the bitmap describes (which is then kept). The
// caller holds r.mu.
func (r *run) openPartial() (*os.File, error) {
	path := r.m.partialPath(r.root)
	// The downloads folder may have been removed and made again since the
	// manager made .partial in it.
	if err := os.MkdirAll(r.m.partial, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", r.m.partial, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening partial file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening partial file: %w", err)
	}
	// A bitmap is only trusted with the partial file it describes.
	if fi.Size() == r.size && int64(len(r.bitmap)) == (r.groups+7)/8 {
		return f, nil
	}
	r.bitmap = NewBitmap(r.groups)
	if err := f.Truncate(r.size); err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing partial file: %w", err)
	}
	if err := reserveSpace(f, r.size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("reserving %s for the partial file: %w", FormatSize(r.size), err)
	}
	return f, nil
}

// write stores a received range in the partial file, unverified, for the
// verifier. Only the first answer for a group is written: a group being
// written, written or verified is never written again, so no source can
// overwrite bytes another one sent (and that may already be verified).
func (r *run) write(s *sourceState, first, count int64, data, proof []byte) error {
	f, mine, all := r.takeRange(s, first, count, int64(len(data)))
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
	r.wrote(s, first, count, mine, proof, err)
	if err != nil {
		return fmt.Errorf("writing partial file: %w", err)
	}
	return nil
}

// takeRange counts a range of n bytes from s and marks the groups of it
// that no other answer took yet as being written (mine); all reports that
// every group of it is mine. It returns the partial file to write to.
func (r *run) takeRange(s *sourceState, first, count, n int64) (f *os.File, mine []bool, all bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.stalls = 0
	s.bytes += n
	s.meter.add(n)
	r.meter.add(n)
	mine = make([]bool, count)
	all = true
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
	return r.file, mine, all
}

// wrote records the groups of a range that s's answer wrote (mine): with
// their proofs for the verifier, or, if writing failed (err), free again.
func (r *run) wrote(s *sourceState, first, count int64, mine []bool, proof []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := proof
	for i := first; i < first+count; i++ {
		n := GroupProofSize(r.size, i)
		if mine[i-first] {
			if err != nil {
				r.fetched-- // not received after all: it is fetched again
				r.freeLocked(i)
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
}
