package share

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

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
	results := r.proveClaims(ctx, srcs)
	size := int64(UnknownSize)
	var won *sizeProof
	tried := map[*Source]error{}
	for res := range results {
		tried[res.src] = res.err
		if res.err == nil && size < 0 {
			size, won = res.src.Have.Size, &res.sizeProof
			cancel() // the other claims are lies: no need to finish them
			continue
		}
		r.countProof(res.err, res.src.Have.Size)
	}
	if size >= 0 {
		r.log.Info("file size proven", slog.Int64("size", size))
	}
	var keep []*Source
	for _, src := range srcs {
		if r.judgeClaim(src, size, tried) {
			keep = append(keep, src)
		}
	}
	return size, keep, won
}

// claimResult is the outcome of one source's size proof.
type claimResult struct {
	sizeProof
	err error
}

// proveClaims asks, for every size that srcs claim, its sources in turn
// for the proof of that size, until one answers or ctx ends. The results
// come on the channel, which is closed when every claim is done.
func (r *run) proveClaims(ctx context.Context, srcs []*Source) <-chan claimResult {
	var claims []int64
	byClaim := map[int64][]*Source{}
	for _, src := range srcs {
		c := src.Have.Size
		if _, ok := byClaim[c]; !ok {
			claims = append(claims, c)
		}
		byClaim[c] = append(byClaim[c], src)
	}
	results := make(chan claimResult)
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Go(func() {
			for _, src := range byClaim[c] {
				data, proof, err := r.proveClaim(ctx, src)
				results <- claimResult{sizeProof{src, data, proof}, err}
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
	return results
}

// countProof counts a size proof that did not win: a second one that
// verified (BLAKE3 would be broken: the first is kept, the other's sources
// are refused) or a group that failed verification.
func (r *run) countProof(err error, claim int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
		r.fetched++
		r.duplicates++
	case errors.Is(err, ErrMismatch) && claim > 0:
		r.fetched++
		r.bad++
	}
}

// judgeClaim decides what becomes of src once the size is proven (or not,
// size < 0), given what its proof gave (tried): kept as a source (true),
// refused as a liar, or closed to be found again.
func (r *run) judgeClaim(src *Source, size int64, tried map[*Source]error) bool {
	claim := src.Have.Size
	err, wasTried := tried[src]
	switch {
	case size >= 0 && claim != size:
		r.refuse(src, fmt.Sprintf("claimed %d bytes; the root proves %d", claim, size), true)
	case wasTried && liedAboutSize(err):
		r.refuse(src, fmt.Sprintf("could not prove its size of %d bytes: %v", claim, err), true)
	case size >= 0 && (!wasTried || err == nil || errors.Is(err, errNoLastGroup)):
		return true
	default:
		r.log.Debug("download source could not prove its size", slog.String("source", src.Name), slog.Any("err", err))
		if src.Close != nil {
			src.Close()
		}
	}
	return false
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
		r.writeFailed(err)
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
