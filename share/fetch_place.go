package share

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	bolt "go.etcd.io/bbolt"
	"lukechampine.com/blake3/guts"
)

// The end of a download: the whole-file check, and the move into place
// under a name that is free and fits the folder.

// placeDone checks the finished partial file against the root and moves it
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
		if err := r.checkWhole(part); err != nil {
			return "", err
		}
	}
	r.mu.Lock()
	dir, name := r.rec.Dir, r.rec.Name
	r.mu.Unlock()
	dest, err := placeFile(part, dir, name, r.recordPlacing)
	if err != nil {
		return "", err
	}
	if h := r.m.cfg.hooks; h != nil && h.afterPlace != nil {
		h.afterPlace(dest)
	}
	os.Remove(part)
	return dest, nil
}

// recordPlacing records that the finished file is about to be linked at
// dest, before it is: a crash after the link and before the download is
// recorded as done then leaves a record that says where to look.
func (r *run) recordPlacing(dest string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.Placing = dest
	if err := r.saveLocked(); err != nil {
		return fmt.Errorf("recording where the download goes: %w", err)
	}
	return nil
}

// recoverPlaced finishes a download that a crash stopped while it was
// being placed: if the file it was being linked to (rec.Placing) is there
// and is the file (the partial file's own inode, or a file whose root is
// the download's), the download is done there, whatever the bitmap says,
// and no source is needed. It reports whether that was so; if not, the
// record is cleared and the download goes on as it was (its partial file
// and bitmap are untouched by a link that did not happen).
func (r *run) recoverPlaced() (string, bool) {
	r.mu.Lock()
	dest, size, dir := r.rec.Placing, r.rec.Size, r.rec.Dir
	r.mu.Unlock()
	if dest == "" {
		return "", false
	}
	part := r.m.partialPath(r.root)
	os.Remove(filepath.Join(dir, placeTempName(part))) // a copy cut short
	if placedFile(dest, part, size, r.root) {
		os.Remove(part)
		r.mu.Lock()
		r.resumed = Groups(size) // all of it was verified before this run
		r.mu.Unlock()
		r.log.Info("download found in place after a restart", slog.String("path", dest))
		return dest, true
	}
	r.mu.Lock()
	r.rec.Placing = ""
	r.saveLocked()
	r.mu.Unlock()
	return "", false
}

// placedFile reports whether dest holds the finished download: the same
// inode as the partial file part, or a regular file of size bytes whose
// BLAKE3 root is root.
func placedFile(dest, part string, size int64, root [32]byte) bool {
	fi, err := os.Lstat(dest)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		return false
	}
	if pfi, err := os.Lstat(part); err == nil && os.SameFile(fi, pfi) {
		return true
	}
	f, err := os.Open(dest)
	if err != nil {
		return false
	}
	defer f.Close()
	got, err := rootOfFile(f, size)
	return err == nil && got == root
}

// checkWhole reads the finished partial file from the disk, all of it,
// and checks it is what was verified. Every group was verified when it was
// written, but the file may have changed since (another program wrote to
// it, a failing disk): this pass, just before the file is placed, is what
// makes "a file with one wrong byte on disk never completes" true. If this
// run verified every group, each is compared with its fingerprint
// (fetch_print.go); otherwise (a resumed download) the file's BLAKE3 root
// is computed and compared with the link's. A file that fails it fails the
// download, and its bitmap is dropped: the bytes it names are not to be
// trusted.
func (r *run) checkWhole(part string) error {
	f, err := os.Open(part)
	if err != nil {
		return fmt.Errorf("checking the whole file: %w", err)
	}
	defer f.Close()
	r.mu.Lock()
	prints := r.prints
	if !prints.complete() {
		prints = nil
	}
	r.mu.Unlock()
	if prints != nil {
		err = checkPrints(f, r.size, prints)
		if errors.Is(err, errPrintMismatch) {
			err = fmt.Errorf("%w after its groups were verified: %w (another program wrote to it, or the disk is failing)", ErrPartialChanged, err)
		}
	} else {
		var root [32]byte
		root, err = rootOfFile(f, r.size)
		if err == nil && root != r.root {
			err = fmt.Errorf("%w after its groups were verified: its BLAKE3 root is not the link's (another program wrote to it, or the disk is failing)", ErrPartialChanged)
		}
	}
	if err != nil {
		r.m.cfg.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBitmaps).Delete(r.root[:]) })
		return fmt.Errorf("checking the whole file: %w", err)
	}
	return nil
}

// rootOfFile hashes the first size bytes of f into their BLAKE3 root, with
// one goroutine per core (at most WholeCheckWorkers), each reading its
// groups into a buffer of its own; the groups' nodes are merged in order.
// Reading (pread) is faster here than hashing through a mapping: the copy
// costs less than the page faults and the mapping's teardown, and a file
// that shrank is a short read, not a fault. A file shorter than size is an
// error.
func rootOfFile(f *os.File, size int64) ([32]byte, error) {
	b := newRootBuilder(size)
	workers := int64(min(runtime.GOMAXPROCS(0), WholeCheckWorkers))
	nodes := make([]guts.Node, workers*wholeCheckWindow)
	bufs := make([][]byte, workers)
	errs := make([]error, workers)
	for start := int64(0); start < b.groups; start += int64(len(nodes)) {
		n := min(int64(len(nodes)), b.groups-start)
		per := (n + workers - 1) / workers
		var wg sync.WaitGroup
		for w := range workers {
			lo, hi := start+w*per, min(start+(w+1)*per, start+n)
			if lo >= hi {
				break
			}
			if bufs[w] == nil {
				bufs[w] = make([]byte, GroupSize)
			}
			wg.Go(func() { errs[w] = hashGroups(f, bufs[w], size, lo, hi, nodes[lo-start:hi-start]) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return [32]byte{}, err
		}
		for _, node := range nodes[:n] {
			b.push(node)
		}
	}
	return b.root(), nil
}

// hashGroups computes the nodes of groups lo to hi of a file of size
// bytes, reading each from f into buf (GroupSize long).
func hashGroups(f *os.File, buf []byte, size, lo, hi int64, nodes []guts.Node) error {
	for i := lo; i < hi; i++ {
		off, n := GroupBounds(size, i)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("reading partial file: %w", err)
		}
		nodes[i-lo] = groupNode(buf[:n], uint64(i)*(GroupSize/guts.ChunkSize))
	}
	return nil
}

// placeFile links src at dir/name, or at "name (2).ext" and so on if that
// exists: an existing file is never overwritten. Every name tried fits the
// folder's file system (see candidateName). Before each link, before(dest)
// records where it goes. Across file systems, src is first copied whole to
// a hidden name in dir (placeTempName), and that copy is linked; so a name
// in dir only ever appears with the whole file. src is left for the caller.
func placeFile(src, dir, name string, before func(dest string) error) (string, error) {
	budget := nameMax(dir)
	from := src
	defer func() {
		if from != src {
			os.Remove(from)
		}
	}()
	for n := 1; n < maxNameTries; n++ {
		dest := filepath.Join(dir, candidateName(name, n, budget))
		if err := before(dest); err != nil {
			return "", err
		}
		err := os.Link(from, dest)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if errors.Is(err, syscall.EXDEV) && from == src {
			tmp := filepath.Join(dir, placeTempName(src))
			os.Remove(tmp) // ours, from an attempt a crash cut short
			if err = copyNew(src, tmp); err == nil {
				from = tmp
				n-- // the same name again, from the copy
				continue
			}
		}
		if err != nil {
			return "", fmt.Errorf("moving download into place: %w", err)
		}
		return dest, nil
	}
	return "", fmt.Errorf("moving download into place: too many files named %s", name)
}

// placeTempName is the hidden name under which placeFile copies the
// partial file part into a folder on another file system.
func placeTempName(part string) string { return "." + filepath.Base(part) }

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
