package share

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A folder download is its manifest, fetched and verified against the
// folder's root, then one download per file (the engine's, each verified
// and resumable), into a new folder named after the manifest. The folder's
// record keeps the manifest, so that after a restart it goes on: the
// files' downloads resume by themselves, and the folder's goroutine
// (runFolder) watches them, queues any that is missing and reports
// progress. Files with the same root are fetched once; the others are
// linked (or copied) from the first once it is done.

// FetchManifest fetches the manifest of the folder root from the first
// source f finds that has it, verifies it against root and decodes it.
// A source that claims a manifest over MaxManifestSize is not asked for
// it. A manifest that verifies but breaks the rules is refused with
// ErrBadManifest: the folder itself is bad, whoever serves it.
// With anonymous, only anonymous tunnels are asked (FindRequest.Anonymous).
func FetchManifest(ctx context.Context, f Finder, root [32]byte, anonymous bool) (Manifest, []byte, error) {
	srcs := f.FindSources(ctx, FindRequest{Root: root, Anonymous: anonymous, ClaimedSize: UnknownSize, Skip: func(string) bool { return false }})
	defer closeSources(srcs)
	last := ErrNoManifest
	for _, s := range srcs {
		enc, err := fetchSmall(ctx, s, root, MaxManifestSize)
		if err != nil {
			last = fmt.Errorf("%w: %s: %w", ErrNoManifest, s.Name, err)
			continue
		}
		m, err := DecodeManifest(enc)
		if err != nil {
			return Manifest{}, nil, err
		}
		return m, enc, nil
	}
	return Manifest{}, nil, last
}

// fetchSmall fetches the whole file root from s into memory, if it is at
// most limit bytes, verifying every range.
func fetchSmall(ctx context.Context, s *Source, root [32]byte, limit int64) ([]byte, error) {
	size := s.Have.Size
	if size > limit {
		return nil, fmt.Errorf("claims %d bytes (at most %d)", size, limit)
	}
	if !s.Have.Complete {
		return nil, errors.New("holds only part of it")
	}
	if size == 0 {
		if root != EmptyRoot {
			return nil, fmt.Errorf("%w: empty", ErrMismatch)
		}
		return []byte{}, nil
	}
	enc := make([]byte, 0, size)
	for first := int64(0); first < Groups(size); first += MaxRangeGroups {
		count := min(MaxRangeGroups, Groups(size)-first)
		data, proof, err := s.Fetcher.GetRange(ctx, root, size, first, count, nil)
		if err != nil {
			return nil, err
		}
		if err := VerifyRange(root, size, first, count, data, proof); err != nil {
			return nil, err
		}
		enc = append(enc, data...)
	}
	return enc, nil
}

// folderRecord is a folder download as stored in bucketFolders.
type folderRecord struct {
	Name string `json:"name"`
	// Dir is the folder made for the download, where its files go.
	Dir      string        `json:"dir"`
	Manifest []byte        `json:"manifest"`
	State    DownloadState `json:"state"`
	Error    string        `json:"error,omitempty"`
	Added    time.Time     `json:"added"`
	Finished time.Time     `json:"finished,omitzero"`
	// Anonymous: the manifest and every file through anonymous tunnels
	// only (AddOptions.Anonymous).
	Anonymous bool `json:"anonymous,omitempty"`
}

// FolderDownload is a folder download as the API shows it.
type FolderDownload struct {
	Root string `json:"root"`
	Name string `json:"name"`
	// Dir is the folder the files go into.
	Dir   string        `json:"dir"`
	State DownloadState `json:"state"`
	Error string        `json:"error,omitempty"`
	// Size and Done are the bytes of all files, and of those verified.
	Size      int64        `json:"size"`
	Done      int64        `json:"bytes_done"`
	FilesDone int          `json:"files_done"`
	Files     []FolderFile `json:"files"`
	Added     time.Time    `json:"added"`
	Finished  time.Time    `json:"finished,omitzero"`
	Anonymous bool         `json:"anonymous,omitempty"`
}

// FolderFile is one file of a folder download.
type FolderFile struct {
	Path  string        `json:"path"`
	Root  string        `json:"root"`
	Size  int64         `json:"size"`
	State DownloadState `json:"state"`
	Done  int64         `json:"bytes_done"`
	Error string        `json:"error,omitempty"`
}

// AddFolder fetches the manifest of the folder link names (within ctx),
// makes a new folder for it in dir (the downloads folder if ""), named
// after the manifest, or "name (2)" and so on if that is taken, and
// downloads every file into it. A manifest that breaks the rules refuses
// the whole folder with ErrBadManifest, before anything is created. With
// opts.Anonymous, the manifest and every file come through anonymous
// tunnels only.
func (m *Manager) AddFolder(ctx context.Context, link Link, dir string, opts AddOptions) (FolderDownload, error) {
	if m.ctx.Err() != nil {
		return FolderDownload{}, ErrManagerClosed
	}
	root := link.Root
	if rec, ok := m.folderRecord(root); ok && rec.State != StateDone && rec.State != StateFailed {
		return FolderDownload{}, fmt.Errorf("%w: folder %s", ErrDownloadExists, rec.Name)
	}
	man, enc, err := FetchManifest(ctx, m.cfg.Finder, root, opts.Anonymous)
	if err != nil {
		return FolderDownload{}, fmt.Errorf("fetching folder manifest: %w", err)
	}
	if dir == "" {
		dir = m.cfg.Dir
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return FolderDownload{}, fmt.Errorf("download folder: %w", err)
	}
	name := man.Name
	if name == "" {
		name = link.Name
	}
	if CheckName(name) != nil {
		name = hex.EncodeToString(root[:8])
	}
	target, err := makeNewFolder(dir, name)
	if err != nil {
		return FolderDownload{}, err
	}
	for _, f := range man.Files {
		if d := path.Dir(f.Path); d != "." {
			if err := mkdirBeneath(target, d); err != nil {
				return FolderDownload{}, err
			}
		}
	}
	rec := folderRecord{Name: filepath.Base(target), Dir: target, Manifest: enc, State: StateActive, Added: time.Now().UTC(), Anonymous: opts.Anonymous}
	if err := m.putFolder(root, rec); err != nil {
		return FolderDownload{}, err
	}
	m.startFolder(root)
	return m.FolderInfo(root)
}

// makeNewFolder creates a new folder name in dir, or "name (2)" and so on:
// never one that exists.
func makeNewFolder(dir, name string) (string, error) {
	for n := 1; n < 1000; n++ {
		try := name
		if n > 1 {
			try = truncateUTF8(name, MaxNameLen-8) + " (" + strconv.Itoa(n) + ")"
		}
		p := filepath.Join(dir, try)
		err := os.Mkdir(p, 0o755)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("making folder for download: %w", err)
		}
	}
	return "", fmt.Errorf("making folder for download: %s and 999 others exist", name)
}

// mkdirBeneath makes the folders of rel (slash-separated, checked by
// DecodeManifest) beneath base, one at a time, refusing any that is not a
// plain folder (a symlink planted there would lead outside).
func mkdirBeneath(base, rel string) error {
	p := base
	for _, elem := range splitPath(rel) {
		if err := CheckName(elem); err != nil {
			return err
		}
		p = filepath.Join(p, elem)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("making folder %s: %w", p, err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("making folder %s: %w", p, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("making folder %s: %w: not a folder", p, ErrBadManifest)
		}
	}
	return nil
}

func splitPath(rel string) []string {
	var out []string
	for rel != "" {
		i := 0
		for i < len(rel) && rel[i] != '/' {
			i++
		}
		out = append(out, rel[:i])
		if i == len(rel) {
			break
		}
		rel = rel[i+1:]
	}
	return out
}

func (m *Manager) folderRecord(root [32]byte) (folderRecord, bool) {
	var rec folderRecord
	found := false
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketFolders).Get(root[:]); v != nil && json.Unmarshal(v, &rec) == nil {
			found = true
		}
		return nil
	})
	return rec, found
}

func (m *Manager) putFolder(root [32]byte, rec folderRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := m.cfg.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketFolders).Put(root[:], v) }); err != nil {
		return fmt.Errorf("saving folder download: %w", err)
	}
	return nil
}

// resumeFolders starts the goroutine of every unfinished folder download.
func (m *Manager) resumeFolders() {
	var roots [][32]byte
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFolders).ForEach(func(k, v []byte) error {
			var rec folderRecord
			if len(k) == 32 && json.Unmarshal(v, &rec) == nil && rec.State != StateDone && rec.State != StateFailed {
				roots = append(roots, [32]byte(k))
			}
			return nil
		})
	})
	for _, root := range roots {
		m.startFolder(root)
	}
}

// folderRun is a folder download's goroutine.
type folderRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startFolder runs the folder download of root in the manager's wg.
func (m *Manager) startFolder(root [32]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	if m.folders == nil {
		m.folders = map[[32]byte]*folderRun{}
	}
	if m.folders[root] != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	fr := &folderRun{cancel: cancel, done: make(chan struct{})}
	m.folders[root] = fr
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(fr.done)
		defer func() {
			m.mu.Lock()
			if m.folders[root] == fr {
				delete(m.folders, root)
			}
			m.mu.Unlock()
		}()
		m.runFolder(ctx, root)
	}()
}

// CancelFolder stops a folder download and forgets it, cancelling the
// downloads of its files that are not done (their partial data is
// deleted). Files already done stay where they are.
func (m *Manager) CancelFolder(root [32]byte) error {
	m.mu.Lock()
	fr := m.folders[root]
	m.mu.Unlock()
	if fr != nil {
		fr.cancel()
		<-fr.done
	}
	rec, ok := m.folderRecord(root)
	if !ok {
		return fmt.Errorf("%w: %x", ErrNoSuchFolder, root[:8])
	}
	if files, err := plan(rec); err == nil {
		for _, f := range files {
			if info, ok := m.Info(f.Root); ok && f.primary && info.Dir == f.dir && info.Name == f.name && info.State != StateDone {
				m.Cancel(f.Root)
			}
		}
	}
	if err := m.cfg.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketFolders).Delete(root[:]) }); err != nil {
		return fmt.Errorf("cancelling folder download: %w", err)
	}
	return nil
}

// folderFile is one file of a folder download as its goroutine sees it.
type folderFile struct {
	ManifestFile
	dir, name string // where it goes: dir/name
	primary   bool   // the first file with its root: downloaded; others are copied from it
}

// plan returns the files of rec's manifest with where they go.
func plan(rec folderRecord) ([]folderFile, error) {
	man, err := DecodeManifest(rec.Manifest)
	if err != nil {
		return nil, err
	}
	seen := map[[32]byte]bool{}
	out := make([]folderFile, len(man.Files))
	for i, f := range man.Files {
		d := rec.Dir
		if pd := path.Dir(f.Path); pd != "." {
			d = filepath.Join(rec.Dir, filepath.FromSlash(pd))
		}
		out[i] = folderFile{ManifestFile: f, dir: d, name: path.Base(f.Path), primary: !seen[f.Root]}
		seen[f.Root] = true
	}
	return out, nil
}

// runFolder queues the folder's files and watches them until every one is
// done, one failed, or ctx ends (the manager closes, or CancelFolder).
func (m *Manager) runFolder(ctx context.Context, root [32]byte) {
	rec, ok := m.folderRecord(root)
	if !ok {
		return
	}
	files, err := plan(rec)
	if err != nil {
		m.endFolder(root, rec, StateFailed, err)
		return
	}
	log := m.log.With(slog.String("folder", rec.Name))
	byRoot := map[[32]byte]string{} // where each root's primary file was placed
	done := make([]bool, len(files))
	t := time.NewTicker(folderPoll)
	defer t.Stop()
	for {
		// At most maxFolderActive files are queued at once: each queued
		// download is a record and a goroutine waiting for a slot.
		left, budget := 0, maxFolderActive
		for i, f := range files {
			if done[i] {
				continue
			}
			st, err := m.folderStep(f, byRoot, &budget, AddOptions{Anonymous: rec.Anonymous})
			if err != nil {
				log.Warn("folder download failed", slog.String("file", f.Path), slog.Any("err", err))
				m.endFolder(root, rec, StateFailed, fmt.Errorf("%s: %w", f.Path, err))
				return
			}
			if done[i] = st == StateDone; !done[i] {
				left++
			}
		}
		if left == 0 {
			log.Info("folder download done", slog.Int("files", len(files)))
			m.endFolder(root, rec, StateDone, nil)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// folderStep moves one file on: queues its download if there is none (and
// *budget allows; each file not done takes one), or copies it from the
// file with the same root once that is done. It returns the file's state.
func (m *Manager) folderStep(f folderFile, byRoot map[[32]byte]string, budget *int, opts AddOptions) (DownloadState, error) {
	dst := filepath.Join(f.dir, f.name)
	if !f.primary {
		if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() && fi.Size() == f.Size {
			return StateDone, nil
		}
		src, ok := byRoot[f.Root]
		if !ok {
			return StateQueued, nil
		}
		if err := copyInto(src, dst); err != nil {
			return "", err
		}
		return StateDone, nil
	}
	info, ok := m.Info(f.Root)
	mine := ok && info.Dir == f.dir && info.Name == f.name
	switch {
	case mine && info.State == StateDone:
		if fi, err := os.Stat(info.Path); err == nil && fi.Size() == f.Size {
			byRoot[f.Root] = info.Path
			return StateDone, nil
		}
	case mine && info.State == StateFailed:
		return "", errors.New(info.Error)
	case mine:
		*budget--
		return info.State, nil
	case ok && info.State != StateDone && info.State != StateFailed:
		// Downloading elsewhere (another folder, or by itself): wait, then
		// download ours.
		return StateQueued, nil
	}
	if *budget <= 0 {
		return StateQueued, nil
	}
	*budget--
	if _, err := m.AddWith(Link{Root: f.Root, Name: f.name, Size: f.Size}, f.dir, opts); err != nil {
		if errors.Is(err, ErrDownloadExists) {
			return StateQueued, nil
		}
		return "", err
	}
	return StateQueued, nil
}

// copyInto makes dst a copy of src: a hard link if it can, else a copy under
// a hidden name that is then linked; never over an existing file.
func copyInto(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".copy")
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, dst)
	}
	os.Remove(tmp)
	if err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	return nil
}

func (m *Manager) endFolder(root [32]byte, rec folderRecord, state DownloadState, err error) {
	rec.State, rec.Finished = state, time.Now().UTC()
	if err != nil {
		rec.Error = err.Error()
	}
	m.putFolder(root, rec)
}

// FolderInfo returns the state of a folder download, with each file's.
func (m *Manager) FolderInfo(root [32]byte) (FolderDownload, error) {
	rec, ok := m.folderRecord(root)
	if !ok {
		return FolderDownload{}, fmt.Errorf("%w: %x", ErrNoSuchFolder, root[:8])
	}
	out := FolderDownload{Root: hex.EncodeToString(root[:]), Name: rec.Name, Dir: rec.Dir, State: rec.State, Error: rec.Error,
		Added: rec.Added, Finished: rec.Finished, Files: []FolderFile{}, Anonymous: rec.Anonymous}
	files, err := plan(rec)
	if err != nil {
		return out, nil
	}
	for _, f := range files {
		ff := FolderFile{Path: f.Path, Root: hex.EncodeToString(f.Root[:]), Size: f.Size, State: StateQueued}
		if rec.State == StateDone {
			ff.State, ff.Done = StateDone, f.Size
		} else if f.primary {
			if info, ok := m.Info(f.Root); ok && info.Dir == f.dir && info.Name == f.name {
				ff.State, ff.Done, ff.Error = info.State, info.Done, info.Error
			}
		} else if fi, err := os.Lstat(filepath.Join(f.dir, f.name)); err == nil && fi.Size() == f.Size {
			ff.State, ff.Done = StateDone, f.Size
		}
		out.Size += f.Size
		out.Done += ff.Done
		if ff.State == StateDone {
			out.FilesDone++
		}
		out.Files = append(out.Files, ff)
	}
	return out, nil
}

// ListFolders returns every folder download, newest first.
func (m *Manager) ListFolders() []FolderDownload {
	var roots [][32]byte
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFolders).ForEach(func(k, _ []byte) error {
			if len(k) == 32 {
				roots = append(roots, [32]byte(k))
			}
			return nil
		})
	})
	var out []FolderDownload
	for _, r := range roots {
		if info, err := m.FolderInfo(r); err == nil {
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b FolderDownload) int { return b.Added.Compare(a.Added) })
	return out
}
