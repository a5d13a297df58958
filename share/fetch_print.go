package share

import (
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"runtime"
	"sync"
)

// Fingerprints of verified groups, for the whole-file check.
//
// The verifier hashes each group with BLAKE3 as it reads it back from the
// partial file, and so proves it against the root. What the whole-file
// check must show once the file is complete is only that those bytes are
// still there: nobody wrote to the file since (another program, a failing
// disk). For that a second BLAKE3 pass is more than needed: the verifier
// also takes a fingerprint of each group, from the same private copy of the
// bytes it hashed, with hash/maphash (AES-based where the CPU has AES, about
// ten times BLAKE3's speed here), seeded at random per download run. The
// whole-file check then reads every group again and compares fingerprints.
//
// What this gives up: maphash is not a cryptographic hash, so a writer who
// knew the seed could change a group and keep its fingerprint. The seed
// lives only in this process's memory and no fingerprint leaves it, so a
// program writing to the partial file writes blind: a change is missed with
// probability 2^-64 per changed group. Groups verified by an earlier run
// (a resumed download, whose seed is gone) have no fingerprint; a download
// with any such group is checked the old way, with BLAKE3 over the whole
// file (rootOfFile).

// groupPrints holds the fingerprints of a run's verified groups. The
// verifier records them (record, under run.mu); the whole-file check reads
// them once every group is verified.
type groupPrints struct {
	seed maphash.Seed
	sums []uint64
	set  Bitmap
	n    int64 // groups with a fingerprint
}

func newGroupPrints(groups int64) *groupPrints {
	return &groupPrints{seed: maphash.MakeSeed(), sums: make([]uint64, groups), set: NewBitmap(groups)}
}

// sum is the fingerprint of a group's bytes.
func (p *groupPrints) sum(b []byte) uint64 { return maphash.Bytes(p.seed, b) }

// record keeps the fingerprint of group i, verified just now.
func (p *groupPrints) record(i int64, sum uint64) {
	if !p.set.Has(i) {
		p.set.Set(i)
		p.n++
	}
	p.sums[i] = sum
}

// complete reports whether every group has a fingerprint of this run.
func (p *groupPrints) complete() bool { return p.n == int64(len(p.sums)) }

// errPrintMismatch is what checkPrints returns for a group whose bytes
// changed since they were verified.
var errPrintMismatch = errors.New("a group changed since it was verified")

// checkPrints reads every group of the first size bytes of f and compares
// its fingerprint with p's, with one goroutine per core (at most
// WholeCheckWorkers), each reading into a buffer of its own.
func checkPrints(f *os.File, size int64, p *groupPrints) error {
	groups := int64(len(p.sums))
	workers := min(int64(runtime.GOMAXPROCS(0)), WholeCheckWorkers, groups)
	per := (groups + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*per, min((w+1)*per, groups)
		if lo >= hi {
			break
		}
		wg.Go(func() {
			buf := make([]byte, GroupSize)
			for i := lo; i < hi; i++ {
				off, n := GroupBounds(size, i)
				if _, err := f.ReadAt(buf[:n], off); err != nil {
					errs[w] = fmt.Errorf("reading partial file: %w", err)
					return
				}
				if p.sum(buf[:n]) != p.sums[i] {
					errs[w] = fmt.Errorf("group %d: %w", i, errPrintMismatch)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
