package share

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Pauses: what on this machine can stop a download, and how it goes on.
// A full disk, or the downloads folder removed under a running download,
// are not the sources' fault and not the download's end: the run keeps
// what it verified, says in its state (StatePaused, with a reason) what is
// wrong, and looks every DownloadLocalCheck whether it was put right.

// pauseCause is something on this machine that stops a download until it
// is put right.
type pauseCause struct {
	reason string       // what people see: what is wrong and what to do
	ready  func() bool  // whether it is put right now
	resume func() error // run once it is, before the workers go on; may be nil
}

// pause stops the workers of r until what c names is put right (a cause
// already pausing r stays the one). Workers wait in claim; the verifier
// and the committer go on with what was written.
func (r *run) pause(c *pauseCause) {
	r.mu.Lock()
	if r.paused != nil {
		r.mu.Unlock()
		return
	}
	r.paused = c
	r.cond.Broadcast()
	r.mu.Unlock()
	r.log.Warn("download paused", slog.String("reason", c.reason))
	r.setStateReason(StatePaused, c.reason)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *run) isPaused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused != nil
}

// checkLocal looks at the download's folders and partial file, pausing the
// download if one is gone, and, while it is paused, whether the cause was
// put right; it reports whether the download was let go on now.
func (r *run) checkLocal() (resumed bool) {
	r.mu.Lock()
	c := r.paused
	r.mu.Unlock()
	if c == nil {
		if c = r.localTrouble(); c != nil {
			r.pause(c)
		}
		return false
	}
	if !c.ready() {
		return false
	}
	if c.resume != nil {
		if err := c.resume(); err != nil {
			r.log.Info("download still paused", slog.String("reason", c.reason), slog.Any("err", err))
			return false
		}
		if r.restart.Load() {
			return false // the run ends; its successor goes on
		}
	}
	r.mu.Lock()
	r.paused = nil
	r.cond.Broadcast()
	r.mu.Unlock()
	r.log.Info("download goes on", slog.String("was", c.reason))
	return true
}

// localTrouble returns what stops the download on this machine now: its
// folder removed, or its partial file removed or replaced (the downloads
// folder deleted with it), or nil.
func (r *run) localTrouble() *pauseCause {
	r.mu.Lock()
	dir, f := r.rec.Dir, r.file
	r.mu.Unlock()
	top := r.m.cfg.Dir
	if f != nil && !samePartial(f, r.m.partialPath(r.root)) {
		return &pauseCause{
			reason: fmt.Sprintf("the downloads folder %s (or its partial file) was removed: the download goes on by itself once the folder is back, with what it verified so far", top),
			ready:  func() bool { return isDir(top) && isDir(dir) },
			resume: r.relocate,
		}
	}
	if !isDir(dir) {
		return &pauseCause{
			reason: fmt.Sprintf("the folder %s, where the file goes, was removed: the download goes on by itself once it is back", dir),
			ready:  func() bool { return isDir(dir) },
		}
	}
	return nil
}

// samePartial reports whether path still names the open partial file f.
func samePartial(f *os.File, path string) bool {
	fi, err := f.Stat()
	if err != nil {
		return true // cannot tell: do not pause for it
	}
	pfi, err := os.Stat(path)
	return err == nil && os.SameFile(fi, pfi)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// relocate puts the partial file back where it belongs once its folder is
// back: it copies the open (removed) file, which still holds every byte
// written, to a new partial file, syncs it (the synced bitmap trusts it),
// and ends the run so that a new one resumes from the recorded bitmaps.
func (r *run) relocate() error {
	r.mu.Lock()
	for r.writingLocked() {
		r.cond.Wait() // workers are paused: the writes under way end soon
	}
	f, size := r.file, r.size
	r.mu.Unlock()
	if free, err := freeSpace(r.m.cfg.Dir); err == nil && free < size {
		return fmt.Errorf("putting back the partial file needs %s free in %s", FormatSize(size), r.m.cfg.Dir)
	}
	if err := os.MkdirAll(r.m.partial, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", r.m.partial, err)
	}
	path := r.m.partialPath(r.root)
	tmp := path + ".new"
	if err := copyPartial(f, tmp, size); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("putting back the partial file: %w", err)
	}
	r.log.Info("partial file put back; the download starts again from what it recorded", slog.String("path", path))
	r.restart.Store(true)
	r.cancel()
	return nil
}

// writingLocked reports whether a worker is writing to the partial file.
func (r *run) writingLocked() bool {
	for _, st := range r.state {
		if st == groupWriting {
			return true
		}
	}
	return false
}

// copyPartial copies size bytes of f to a new file at path and syncs it.
func copyPartial(f *os.File, path string, size int64) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("putting back the partial file: %w", err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, 0, size)); err != nil {
		out.Close()
		return fmt.Errorf("putting back the partial file: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("putting back the partial file: %w", err)
	}
	return out.Close()
}

// isNoSpace reports whether err is a full disk or an exhausted quota.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// spaceCause is a full disk under dir, which the download needs need more
// bytes of: it goes on once DownloadResumeSpace, or need if less, is free.
func spaceCause(dir string, need int64) *pauseCause {
	want := max(min(need, DownloadResumeSpace), 1)
	return &pauseCause{
		reason: fmt.Sprintf("the disk of %s is full: the download goes on by itself once %s are free there (what it verified is kept)", dir, FormatSize(want)),
		ready: func() bool {
			free, err := freeSpace(dir)
			return err == nil && free >= want
		},
	}
}

// toWrite is about how many bytes of the file are still to be written.
func (r *run) toWrite() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(r.size-(r.received+r.written)*GroupSize, 1)
}

// writeFailed deals with a write to the partial file that failed (its
// groups were given back): a full disk pauses the download, anything else
// fails it. It reports whether the download goes on.
func (r *run) writeFailed(err error) bool {
	if isNoSpace(err) {
		r.pause(spaceCause(r.m.partial, r.toWrite()))
		return true
	}
	r.fail(err)
	return false
}

// commitFailed deals with a batch the committer could not record: a full
// disk (under the partial file when syncing it, under the database when
// recording) pauses the download, and the batch is tried again; anything
// else fails the download. It reports whether the committer goes on.
func (r *run) commitFailed(err error) bool {
	if !isNoSpace(err) {
		return false
	}
	dir := filepath.Dir(r.m.cfg.DB.Path())
	var se syncError
	if errors.As(err, &se) {
		dir = r.m.partial
	}
	r.pause(spaceCause(dir, DownloadResumeSpace))
	return true
}

// syncError is a failed sync of the partial file.
type syncError struct{ err error }

func (e syncError) Error() string { return "syncing partial file: " + e.err.Error() }
func (e syncError) Unwrap() error { return e.err }

// updateState sets the state from the sources: active with one, else
// searching, and after Tuning.NoSourceAfter without any, no-source with a
// reason. Only the run's goroutine calls it.
func (r *run) updateState() {
	if r.begun && r.activeSources() > 0 {
		r.noSourceSince = time.Time{}
		r.setState(StateActive)
		return
	}
	if r.noSourceSince.IsZero() {
		r.noSourceSince = time.Now()
	}
	d := time.Since(r.noSourceSince)
	if d < r.m.cfg.Tuning.NoSourceAfter {
		r.setState(StateSearching)
		return
	}
	reason := fmt.Sprintf("no source for %s: no friend online has this file and no tunnel found one; kith keeps looking every %s",
		d.Round(time.Second), r.m.cfg.Tuning.SourceRefresh)
	r.mu.Lock()
	for i := len(r.gone) - 1; i >= 0; i-- {
		if g := r.gone[i]; g.Dropped != "" {
			reason += fmt.Sprintf(" (the last one, %s, was dropped: %s)", g.Name, g.Dropped)
			break
		}
	}
	r.mu.Unlock()
	r.setStateReason(StateNoSource, reason)
}

// searchDelay is how long the run waits before it looks for sources again:
// Tuning.SourceRefresh while one works or once it said no-source, else a
// second.
func (r *run) searchDelay() time.Duration {
	r.mu.Lock()
	state := r.rec.State
	r.mu.Unlock()
	if (r.begun && r.activeSources() > 0) || state == StateNoSource {
		return r.swarmSearchDelay(r.m.cfg.Tuning.SourceRefresh) // swarm_sched.go
	}
	return time.Second
}
