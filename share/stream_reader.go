package share

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// StreamReader reads a file while it downloads, for a media player: an
// io.ReadSeekCloser over the verified groups of the download. A read at a
// group that is not verified yet waits for it, and makes the scheduler
// fetch, before anything else, the critical window at the read position
// (StreamCritical groups), then the file's last StreamTail groups (some
// formats keep their index there), then StreamReadAhead groups behind the
// window. Only groups the verifier read back from the partial file and
// checked against the root are handed out.
//
// Once the download is done the reader goes on over the same file (the
// partial file it opened is the finished file's inode). A StreamReader is
// for one goroutine at a time, like an *os.File being read.
type StreamReader struct {
	ctx  context.Context
	r    *run // nil: the file is complete on disk
	f    *os.File
	size int64
	off  int64
	name string
	stop func() bool
}

// OpenStream opens a reader of the file root, which is being downloaded
// (it waits, within ctx, until the download's size is proven) or was
// downloaded and is still where it was put. ctx bounds the reader's waits
// for groups: a reader of an HTTP request passes the request's context.
func (m *Manager) OpenStream(ctx context.Context, root [32]byte) (*StreamReader, error) {
	m.mu.Lock()
	r, running := m.runs[root]
	m.mu.Unlock()
	if !running {
		return m.openDone(ctx, root)
	}
	sr := &StreamReader{ctx: ctx, r: r}
	sr.stop = context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	r.mu.Lock()
	for r.state == nil {
		if err := sr.endedLocked(); err != nil {
			r.mu.Unlock()
			sr.stop()
			return nil, err
		}
		r.waitLocked(DownloadEndgameAfter / 4)
	}
	sr.size, sr.name = r.size, r.rec.Name
	r.mu.Unlock()
	f, err := os.Open(m.partialPath(root))
	if err != nil {
		sr.stop()
		if errors.Is(err, os.ErrNotExist) {
			// It ended between the lookup and now.
			return m.openDone(ctx, root)
		}
		return nil, fmt.Errorf("opening partial file: %w", err)
	}
	sr.f = f
	sr.want(0)
	return sr, nil
}

// openDone opens the finished download of root.
func (m *Manager) openDone(ctx context.Context, root [32]byte) (*StreamReader, error) {
	var rec downloadRecord
	found := false
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDownloads).Get(root[:]); v != nil && json.Unmarshal(v, &rec) == nil {
			found = true
		}
		return nil
	})
	if !found || rec.State != StateDone || rec.Path == "" {
		return nil, fmt.Errorf("%w: %x", ErrNotStreamable, root[:8])
	}
	f, err := os.Open(rec.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotStreamable, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != rec.Size {
		f.Close()
		return nil, fmt.Errorf("%w: %s changed since it was downloaded", ErrNotStreamable, rec.Path)
	}
	return &StreamReader{ctx: ctx, f: f, size: rec.Size, name: rec.Name, stop: func() bool { return true }}, nil
}

// Size returns the file's size.
func (s *StreamReader) Size() int64 { return s.size }

// Name returns the download's file name.
func (s *StreamReader) Name() string { return s.name }

// endedLocked returns why the run can give no more groups, or nil. The
// caller holds r.mu.
func (s *StreamReader) endedLocked() error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.r.done:
		return fmt.Errorf("download of %s ended: %w", s.r.rec.Name, ErrNotStreamable)
	default:
	}
	if s.r.ctx.Err() != nil {
		return fmt.Errorf("download of %s stopped: %w", s.r.rec.Name, ErrNotStreamable)
	}
	return nil
}

// want tells the scheduler what the reader needs, from group g on.
func (s *StreamReader) want(g int64) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	sw := r.sideLocked()
	if sw == nil {
		return
	}
	sw.wants[s] = []groupSpan{
		{g, StreamCritical},
		{r.groups - StreamTail, StreamTail},
		{g + StreamCritical, StreamReadAhead},
	}
	r.cond.Broadcast()
}

// Read reads verified bytes at the reader's position, waiting for them.
func (s *StreamReader) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := min(int64(len(p)), s.size-s.off)
	if s.r != nil {
		var err error
		if n, err = s.wait(n); err != nil {
			return 0, err
		}
	}
	k, err := s.f.ReadAt(p[:n], s.off)
	s.off += int64(k)
	if err == io.EOF && k > 0 {
		err = nil
	}
	return k, err
}

// wait waits until the group at the position is verified and returns how
// many of the n bytes from there are (the verified groups that follow).
func (s *StreamReader) wait(n int64) (int64, error) {
	r := s.r
	g := s.off / GroupSize
	s.want(g)
	r.mu.Lock()
	defer r.mu.Unlock()
	for !verifiedState(r.state[g]) {
		if r.received == r.groups {
			break
		}
		if err := s.endedLocked(); err != nil {
			return 0, err
		}
		r.cond.Wait()
	}
	end := s.off
	for end < s.off+n {
		i := end / GroupSize
		if !verifiedState(r.state[i]) && r.received != r.groups {
			break
		}
		_, gn := GroupBounds(r.size, i)
		end = i*GroupSize + gn
	}
	return min(end, s.off+n) - s.off, nil
}

// verifiedState reports whether a group in state st was verified.
func verifiedState(st uint8) bool { return st == groupCommitting || st == groupStored }

// Seek implements io.Seeker.
func (s *StreamReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.off
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, fmt.Errorf("seeking stream: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seeking stream: negative position")
	}
	s.off = offset
	if s.r != nil && offset < s.size {
		s.want(offset / GroupSize)
	}
	return offset, nil
}

// Close ends the reader and forgets what it wanted fetched first.
func (s *StreamReader) Close() error {
	s.stop()
	if s.r != nil {
		s.r.mu.Lock()
		if s.r.sw != nil {
			delete(s.r.sw.wants, s)
		}
		s.r.mu.Unlock()
	}
	return s.f.Close()
}

// NewFileStream returns a reader of a complete, verified file already open
// (one of the node's own shares): f is closed with the reader.
func NewFileStream(ctx context.Context, f *os.File, name string, size int64) *StreamReader {
	return &StreamReader{ctx: ctx, f: f, size: size, name: name, stop: func() bool { return true }}
}

// OpenSharedFile opens a file of the node's shares as the server does:
// beneath its share folder, through no symlink.
func OpenSharedFile(sf SharedFile) (*os.File, error) { return openShared(sf) }
