package share

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// The end of a download: the whole-file verdict, and the move into place
// under a name that is free and fits the folder.

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
