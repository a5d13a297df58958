package share

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Scan tuning. A scan commits hashed files in batches, so thousands of
// small files cost a few fsyncs, not thousands, and a crash loses at most
// one batch of hashing.
const (
	// scanBatchFiles is the most files in one commit.
	scanBatchFiles = 1024
	// scanBatchBytes is the most outboard bytes in one commit.
	scanBatchBytes = 32 << 20
	// scanBatchDelay is the longest a hashed file waits to be committed,
	// checked as files arrive.
	scanBatchDelay = 2 * time.Second
)

// Reasons a scan skips an entry, the keys of ScanStats.SkippedReasons.
const (
	SkipBrokenSymlink  = "broken symlink"
	SkipSymlinkOutside = "symlink outside share"
	SkipSymlinkFolder  = "symlink to folder"
	SkipNotRegular     = "not a regular file"
	SkipBadName        = "name not allowed"
	SkipPathTooLong    = "path too long"
	SkipTooLarge       = "file too large"
	SkipUnreadable     = "unreadable"
	SkipUnreadableDir  = "unreadable folder"
	SkipChangedHashing = "changed while hashing"
)

// ScanStats counts what a scan did. After Rescan they are summed over the
// shares.
type ScanStats struct {
	// Files is the number of files indexed in the scanned shares when the
	// scan ended.
	Files int
	// Hashed counts new or changed files hashed and stored.
	Hashed int
	// Unchanged counts files whose size and mtime matched their record.
	Unchanged int
	// Removed counts records dropped because their file vanished or could
	// no longer be hashed.
	Removed int
	// Skipped counts entries left out of the index; SkippedReasons says
	// why, by the Skip constants.
	Skipped        int
	SkippedReasons map[string]int
	// BytesHashed is the size of the files hashed.
	BytesHashed int64
	// Duration is how long the scan took.
	Duration time.Duration
}

// add sums o into s.
func (s *ScanStats) add(o ScanStats) {
	s.Files += o.Files
	s.Hashed += o.Hashed
	s.Unchanged += o.Unchanged
	s.Removed += o.Removed
	s.BytesHashed += o.BytesHashed
	s.Duration += o.Duration
	for r, n := range o.SkippedReasons {
		s.skip(r, n)
	}
}

func (s *ScanStats) skip(reason string, n int) {
	if s.SkippedReasons == nil {
		s.SkippedReasons = make(map[string]int)
	}
	s.SkippedReasons[reason] += n
	s.Skipped += n
}

// Rescan scans every share in turn; see RescanShare. A share that cannot
// be read is logged and left as it was, and the scan goes on with the
// others; the errors are joined. Cancelling ctx stops the scan.
func (x *Index) Rescan(ctx context.Context) (ScanStats, error) {
	start := time.Now()
	var total ScanStats
	var errs []error
	for _, sh := range x.Shares() {
		st, err := x.RescanShare(ctx, sh.Dir)
		total.add(st)
		total.Duration = time.Since(start)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return total, err
		case errors.Is(err, ErrNotShared):
			// Removed while we scanned the others.
		default:
			x.log.Warn("cannot scan share", slog.String("dir", sh.Dir), slog.Any("err", err))
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// RescanShare brings the index of the share dir up to date with the disk.
// Files whose size and mtime match their record are not read again; new
// and changed files are hashed by up to GOMAXPROCS workers and committed in
// batches; records of files gone from disk are dropped. Entries that cannot
// be shared (symlinks to folders or out of the share, broken symlinks,
// devices, FIFOs and sockets, unreadable files, files that change while
// they are hashed) are skipped, logged at Debug level and counted.
//
// Directory symlinks are never followed. A file symlink is indexed if it
// resolves to a regular file inside the share, and that file is what Lookup
// returns to be served.
//
// Scans of different shares run one after the other; RescanShare blocks
// while another runs. Cancelling ctx stops the scan cleanly: files hashed so
// far stay indexed and nothing is removed. RemoveShare cancels a running
// scan of the share it removes; the scan then returns an error wrapping
// ErrNotShared. If the share folder itself cannot be listed, the index is
// left as it was and the error wraps ErrShareUnreadable.
func (x *Index) RescanShare(ctx context.Context, dir string) (ScanStats, error) {
	abs := lookupDir(dir)
	x.scanMu.Lock()
	defer x.scanMu.Unlock()
	start := time.Now()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	x.mu.Lock()
	share, ok := x.shares[abs]
	if ok {
		x.scanning[abs] = cancel
	}
	x.mu.Unlock()
	if !ok {
		return ScanStats{}, fmt.Errorf("scanning %s: %w", abs, ErrNotShared)
	}
	defer func() {
		x.mu.Lock()
		delete(x.scanning, abs)
		x.mu.Unlock()
	}()

	s := &scan{x: x, dir: abs, name: share.Name, log: x.log.With(slog.String("share", share.Name))}
	err := s.run(ctx, cancel)
	s.stats.Duration = time.Since(start)
	x.scans.scans.Add(1)
	x.scans.hashed.Add(int64(s.stats.Hashed))
	x.scans.bytesHashed.Add(s.stats.BytesHashed)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(err, context.Canceled) {
			err = cause
		}
		return s.stats, fmt.Errorf("scanning %s: %w", abs, err)
	}
	s.log.Info("scanned share",
		slog.Int("files", s.stats.Files), slog.Int("hashed", s.stats.Hashed),
		slog.Int("removed", s.stats.Removed), slog.Int("skipped", s.stats.Skipped),
		slog.Int64("bytes_hashed", s.stats.BytesHashed), slog.Duration("took", s.stats.Duration))
	return s.stats, nil
}

// scan is one run of RescanShare.
type scan struct {
	x    *Index
	dir  string
	name string
	log  *slog.Logger

	// old holds the records of the share from before the scan, by relative
	// path. The walker deletes each one it finds on disk; what is left has
	// vanished. Only the walker touches it until the walk ends.
	old map[string]fileRecord
	// walkStats is the walker's count of unchanged and skipped entries.
	walkStats ScanStats
	// stats is what the writer counts, and at the end the sum.
	stats ScanStats
}

// hashJob is a file the walker found new or changed.
type hashJob struct {
	rel    string
	target string // see fileRecord.Target
	hadOld bool   // a record of rel exists and must go if hashing fails
}

// hashResult is a hashJob done.
type hashResult struct {
	hashJob
	rec      fileRecord
	outboard []byte
	err      error
}

// run walks the share, hashes what changed and writes the index. The
// walker and the hashing workers it starts have all returned when it
// returns.
func (s *scan) run(ctx context.Context, cancel context.CancelCauseFunc) error {
	if err := s.loadOld(); err != nil {
		return err
	}
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan hashJob, 4*workers)
	results := make(chan hashResult, 4*workers)
	var walkErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(jobs)
		walkErr = s.walk(ctx, "", jobs)
	})
	var hashers sync.WaitGroup
	for range workers {
		hashers.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				results <- s.hash(ctx, j)
			}
		})
	}
	wg.Go(func() {
		hashers.Wait()
		close(results)
	})

	var failed []string
	dbErr := s.write(ctx, cancel, results, &failed)
	wg.Wait()
	s.stats.add(s.walkStats)

	complete := dbErr == nil && walkErr == nil && ctx.Err() == nil
	if complete {
		gone := failed
		for rel := range s.old {
			gone = append(gone, rel)
		}
		n, err := s.x.removeRelFiles(s.dir, gone)
		s.stats.Removed += n
		if err != nil {
			dbErr = err
			complete = false
		}
	}
	if err := s.finish(complete); err != nil && dbErr == nil {
		dbErr = err
	}
	switch {
	case dbErr != nil:
		return fmt.Errorf("writing index: %w", dbErr)
	case walkErr != nil:
		return walkErr
	}
	return ctx.Err()
}

// loadOld reads the records of the share.
func (s *scan) loadOld() error {
	s.old = make(map[string]fileRecord)
	prefix := filePrefix(s.dir)
	return s.x.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFiles).Cursor()
		for k, _ := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rec, err := getFile(tx.Bucket(bucketFiles), k)
			if err != nil {
				// Unreadable: leave it out, so it counts as vanished
				// and is dropped, or overwritten if the file is there.
				continue
			}
			s.old[string(k[len(prefix):])] = rec
		}
		return nil
	})
}

// walk lists the folder rel of the share and everything below it, sending
// new and changed files to jobs.
func (s *scan) walk(ctx context.Context, rel string, jobs chan<- hashJob) error {
	entries, err := os.ReadDir(filepath.Join(s.dir, filepath.FromSlash(rel)))
	if err != nil && rel == "" {
		// Nothing is removed: the share may be on a drive not mounted.
		return fmt.Errorf("%w: %w", ErrShareUnreadable, err)
	}
	if err != nil {
		// Its files, if any were indexed, count as vanished.
		s.skip(SkipUnreadableDir, rel, err)
		return nil
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		child := path.Join(rel, e.Name())
		if err := CheckName(e.Name()); err != nil {
			s.skip(SkipBadName, child, err)
			continue
		}
		// The browse path (share name, "/", child) must fit a request.
		if len(s.name)+1+len(child) > MaxPathLen {
			s.skip(SkipPathTooLong, child, nil)
			continue
		}
		switch t := e.Type(); {
		case t.IsDir():
			if err := s.walk(ctx, child, jobs); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			target, fi, reason := s.resolveLink(child)
			if reason != "" {
				s.skip(reason, child, nil)
				continue
			}
			if err := s.found(ctx, child, target, fi, jobs); err != nil {
				return err
			}
		case t.IsRegular():
			fi, err := e.Info()
			if err != nil {
				s.skip(SkipUnreadable, child, err)
				continue
			}
			if err := s.found(ctx, child, "", fi, jobs); err != nil {
				return err
			}
		default:
			s.skip(SkipNotRegular, child, nil)
		}
	}
	return nil
}

// resolveLink follows the symlink rel and returns the path in the share of
// the regular file it leads to, or why it is skipped.
func (s *scan) resolveLink(rel string) (target string, fi fs.FileInfo, reason string) {
	resolved, err := filepath.EvalSymlinks(filepath.Join(s.dir, filepath.FromSlash(rel)))
	if err != nil {
		return "", nil, SkipBrokenSymlink
	}
	fi, err = os.Stat(resolved)
	switch {
	case err != nil:
		return "", nil, SkipBrokenSymlink
	case fi.IsDir():
		return "", nil, SkipSymlinkFolder
	case !within(resolved, s.dir):
		return "", nil, SkipSymlinkOutside
	case !fi.Mode().IsRegular():
		return "", nil, SkipNotRegular
	}
	target, err = filepath.Rel(s.dir, resolved)
	if err != nil {
		return "", nil, SkipSymlinkOutside
	}
	return filepath.ToSlash(target), fi, ""
}

// found handles the regular file rel (read through target if a symlink):
// counted if its record still matches, else sent to be hashed.
func (s *scan) found(ctx context.Context, rel, target string, fi fs.FileInfo, jobs chan<- hashJob) error {
	if fi.Size() > MaxFileSize {
		s.skip(SkipTooLarge, rel, nil)
		return nil
	}
	old, had := s.old[rel]
	delete(s.old, rel)
	if had && old.Size == fi.Size() && old.MTime == fi.ModTime().UnixNano() && old.Target == target {
		s.walkStats.Unchanged++
		return nil
	}
	select {
	case jobs <- hashJob{rel: rel, target: target, hadOld: had}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// skip counts and logs an entry left out by the walker.
func (s *scan) skip(reason, rel string, err error) {
	s.walkStats.skip(reason, 1)
	s.log.Debug("skipping", slog.String("path", rel), slog.String("reason", reason), slog.Any("err", err))
}

// hash reads and hashes one file. The size and mtime recorded are those
// before reading; a file that changes meanwhile is refused.
func (s *scan) hash(ctx context.Context, j hashJob) hashResult {
	r := hashResult{hashJob: j}
	// Opened as the server will open it: beneath the share, through no
	// symlink (a folder swapped for one since the walk is refused), and
	// with O_NONBLOCK, so that a file that became a FIFO cannot block.
	f, err := openInShare(s.dir, cmp.Or(j.target, j.rel))
	if err != nil {
		r.err = err
		return r
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		r.err = err
		return r
	}
	if !before.Mode().IsRegular() {
		r.err = errNotRegular
		return r
	}
	tree, err := HashReader(ctxReader{ctx, f}, before.Size())
	if err != nil {
		r.err = err
		return r
	}
	after, err := f.Stat()
	if err != nil {
		r.err = err
		return r
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		r.err = fmt.Errorf("%w: modified", ErrSizeChanged)
		return r
	}
	r.rec = fileRecord{Size: tree.Size, MTime: before.ModTime().UnixNano(), Root: tree.Root[:], Target: j.target}
	r.outboard = tree.Outboard
	return r
}

// errNotRegular is a hash error for a file replaced since the walk.
var errNotRegular = errors.New("not a regular file")

// write stores hashed files in batches until results is closed. After a
// database error it cancels the scan, drains results and returns the
// error. The relative
// paths of files that had a record but could not be hashed are appended to
// failed.
func (s *scan) write(ctx context.Context, cancel context.CancelCauseFunc, results <-chan hashResult, failed *[]string) error {
	var batch []hashResult
	var batchBytes int
	var dbErr error
	last := time.Now()
	flush := func() {
		if len(batch) == 0 || dbErr != nil {
			return
		}
		dbErr = s.x.db.Update(func(tx *bolt.Tx) error {
			for _, r := range batch {
				if err := putFile(tx, fileKey(s.dir, r.rel), r.rec, r.outboard); err != nil {
					return err
				}
			}
			return nil
		})
		if dbErr != nil {
			cancel(dbErr)
		} else {
			for _, r := range batch {
				s.stats.Hashed++
				s.stats.BytesHashed += r.rec.Size
			}
		}
		batch, batchBytes, last = batch[:0], 0, time.Now()
	}
	for r := range results {
		if dbErr != nil {
			continue
		}
		if r.err != nil {
			if ctx.Err() != nil && errors.Is(r.err, ctx.Err()) {
				continue
			}
			reason := SkipUnreadable
			switch {
			case errors.Is(r.err, ErrSizeChanged):
				reason = SkipChangedHashing
			case errors.Is(r.err, errNotRegular):
				reason = SkipNotRegular
			}
			s.stats.skip(reason, 1)
			s.log.Debug("skipping", slog.String("path", r.rel), slog.String("reason", reason), slog.Any("err", r.err))
			if r.hadOld {
				*failed = append(*failed, r.rel)
			}
			continue
		}
		batch = append(batch, r)
		batchBytes += len(r.outboard)
		if len(batch) >= scanBatchFiles || batchBytes >= scanBatchBytes || time.Since(last) >= scanBatchDelay {
			flush()
		}
	}
	flush()
	return dbErr
}

// finish counts the share's files into its record, and stamps the scan
// time if the scan was complete.
func (s *scan) finish(complete bool) error {
	var files int
	var size int64
	now := time.Now().Round(0) // as it reads back from the database
	var rec shareRecord
	err := s.x.db.Update(func(tx *bolt.Tx) error {
		shares := tx.Bucket(bucketShares)
		v := shares.Get([]byte(s.dir))
		if v == nil {
			return nil // removed
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		prefix := filePrefix(s.dir)
		c := tx.Bucket(bucketFiles).Cursor()
		for k, v := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var f fileRecord
			if json.Unmarshal(v, &f) == nil {
				files++
				size += f.Size
			}
		}
		rec.Files, rec.Bytes = files, size
		if complete {
			rec.LastScan = now
		}
		return putJSON(shares, []byte(s.dir), rec)
	})
	if err != nil {
		return err
	}
	s.stats.Files = files
	s.x.mu.Lock()
	if cur, ok := s.x.shares[s.dir]; ok {
		cur.Files, cur.Bytes = files, size
		if complete {
			cur.LastScan = now
		}
		s.x.shares[s.dir] = cur
	}
	s.x.mu.Unlock()
	return nil
}

// ctxReader stops a long read when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
