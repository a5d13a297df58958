package share

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"kith/internal/store"
)

// Fetcher fetches ranges of groups with their proofs; Peer implements it
// for a share stream, whatever carries the stream (a friend connection or a
// tunnel). Data is read into buf when it is large enough.
type Fetcher interface {
	GetRange(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) (data, proof []byte, err error)
}

// Source is one place a download can fetch a file from.
type Source struct {
	// Key identifies the source within a download, e.g. "friend:<peer ID>";
	// a source dropped for lying is not taken again under the same key.
	Key string
	// Name is what people see, e.g. "bob" or "tunnel 2".
	Name string
	// Fetcher fetches the ranges.
	Fetcher Fetcher
	// Have says which groups the source holds.
	Have HaveReply
	// Close releases the source (closes its stream). May be nil.
	Close func() error
	// Speculate asks the download, while its size is not proven yet, to
	// ask this source for its first ranges at the size the link claims
	// without waiting for the proof (fetch_speculate.go): for a source
	// on a long path, where that wait is a round trip or more.
	Speculate bool
}

// Finder finds sources for a file. FindSources returns the sources it can
// reach now for req.Root, skipping keys for which req.Skip returns true;
// it must return within ctx and may return none.
type Finder interface {
	FindSources(ctx context.Context, req FindRequest) []*Source
}

// FindRequest is what a download asks its Finder for.
type FindRequest struct {
	Root [32]byte
	// Anonymous is set for a download asked for with AddOptions.Anonymous:
	// the Finder must not ask friends, only anonymous tunnels.
	Anonymous bool
	// Skip reports whether a source key is in use by the download already,
	// or was dropped by it.
	Skip func(key string) bool
	// ClaimedSize is the size the download's link claims while no source
	// has proven the size yet, UnknownSize (or 0) otherwise. A Finder may then
	// ask a source for the last group at that size together with its Have
	// (Peer.HaveAndLast), the group the download proves the size with.
	ClaimedSize int64
}

// AddOptions are the choices of one Add.
type AddOptions struct {
	// Anonymous downloads through anonymous tunnels only: the Finder is
	// told not to ask friends (FindRequest.Anonymous). The mark is kept
	// with the download, so it survives restarts, and goes with it when
	// the download is cancelled; adding the file again without it clears
	// it.
	Anonymous bool
}

// DownloadState is where a download is in its life.
type DownloadState string

// Download states.
const (
	StateQueued    DownloadState = "queued"    // waiting for a slot
	StateSearching DownloadState = "searching" // no source yet
	StateActive    DownloadState = "active"    // fetching
	StateVerifying DownloadState = "verifying" // checking the whole file
	StateDone      DownloadState = "done"
	StateFailed    DownloadState = "failed"
	// StatePaused: something on this machine stops the download (a full
	// disk, its folder removed); Reason says what, and it goes on by
	// itself once that is put right. Nothing verified is lost.
	StatePaused DownloadState = "paused"
	// StateNoSource: no source for DownloadNoSourceAfter; Reason says
	// since when. The download keeps looking and goes on when one comes.
	StateNoSource DownloadState = "no-source"
)

// SourceInfo is a source of a running download as people see it.
type SourceInfo struct {
	Name    string  `json:"name"`
	Bytes   int64   `json:"bytes"`
	Rate    float64 `json:"rate"` // bytes per second, recent
	Dropped string  `json:"dropped,omitempty"`
}

// DownloadInfo is a download as the API shows it.
type DownloadInfo struct {
	Root string `json:"root"`
	Name string `json:"name"`
	// Size is the file size in bytes, UnknownSize (-1) if not known yet.
	// Until SizeProven it is only what the link said.
	Size       int64         `json:"size"`
	SizeProven bool          `json:"size_proven"`
	Dir        string        `json:"dir"`
	State      DownloadState `json:"state"`
	// Reason says why a download is paused or without a source, and what
	// would make it go on.
	Reason   string       `json:"reason,omitempty"`
	Path     string       `json:"path,omitempty"` // final path, once done
	Error    string       `json:"error,omitempty"`
	Groups   int64        `json:"groups"`
	Verified int64        `json:"verified"` // groups verified and durably recorded (a restart keeps them)
	Received int64        `json:"received"` // groups verified and written, recorded or not yet
	Done     int64        `json:"bytes_done"`
	Rate     float64      `json:"rate"`
	Sources  []SourceInfo `json:"sources"`
	Added    time.Time    `json:"added"`
	Finished time.Time    `json:"finished,omitzero"`
	// Anonymous is set for a download through anonymous tunnels only.
	Anonymous bool `json:"anonymous,omitempty"`
	// Counters of this run of the daemon, for tests and diagnostics.
	ResumedGroups   int64 `json:"resumed_groups"`   // verified before this run started
	FetchedGroups   int64 `json:"fetched_groups"`   // received in this run (good, bad and duplicate)
	DuplicateGroups int64 `json:"duplicate_groups"` // received while another answer was already taken
	BadRanges       int64 `json:"bad_ranges"`       // groups discarded: failed verification, or unverified from a source caught lying
}

// downloadRecord is a download as stored in bucketDownloads.
type downloadRecord struct {
	Name string `json:"name"`
	// Size is the file's size: a claim (the link's) until SizeProven,
	// when a proof from a source or from the data verified it.
	Size       int64         `json:"size"`
	SizeProven bool          `json:"size_proven,omitempty"`
	Dir        string        `json:"dir"`
	State      DownloadState `json:"state"`
	Reason     string        `json:"reason,omitempty"`
	Path       string        `json:"path,omitempty"`
	Error      string        `json:"error,omitempty"`
	Added      time.Time     `json:"added"`
	Finished   time.Time     `json:"finished,omitzero"`
	// Placing is where the finished file is being linked: recorded before
	// the link, so that a crash between the link and the record of the
	// download as done is found at the next start (see recoverPlaced).
	Placing string `json:"placing,omitempty"`
	// Anonymous marks a download through anonymous tunnels only
	// (AddOptions.Anonymous).
	Anonymous bool `json:"anonymous,omitempty"`
}

// ManagerConfig configures a download Manager.
type ManagerConfig struct {
	DB *bolt.DB
	// Dir is the downloads folder: the default destination, and the home
	// of partial files (Dir/.partial).
	Dir    string
	Finder Finder
	Log    *slog.Logger
	// Limiter caps download bytes per second for all downloads; nil: none.
	Limiter *RateLimiter
	// OnEvent, if set, receives download events ("download.progress",
	// "download.done", "download.failed", "download.source_dropped").
	OnEvent func(typ string, info DownloadInfo)
	// Tuning; zero values take the defaults of limits.go.
	Tuning Tuning
	// NoSwarm stops the node serving the verified groups of files it is
	// still downloading (see swarm.go). Swarming is on by default; its
	// cost is privacy: a friend who asks learns what you are fetching.
	NoSwarm bool

	hooks *testHooks // nil but in the package's tests
}

// testHooks let the package's tests act at fixed points of a run, to do
// there what another program or a crash could (truncate the partial file,
// stop the process).
type testHooks struct {
	// beforeVerifyRead is called by the verifier once it took the written
	// groups from first on, before it reads them back.
	beforeVerifyRead func(first int64)
	// afterPlace is called once the finished file is linked at path, before
	// the partial file is removed and the download recorded as done.
	afterPlace func(path string)
}

// Tuning holds the download engine's knobs.
type Tuning struct {
	// RangeGroups is the number of groups asked for in one request.
	RangeGroups int64
	// Window is the most requests in flight per source; a source has
	// fewer (at most DownloadBaseWindow) until its rate asks for more
	// (DownloadWindowTime).
	Window int
	// StallTimeout is how long one request may take before its groups go
	// to other sources.
	StallTimeout time.Duration
	// SourceRefresh is how often a running download looks for new sources.
	SourceRefresh time.Duration
	// NoSourceAfter is how long a download searches without any source
	// before its state says so (StateNoSource).
	NoSourceAfter time.Duration
}

func (t Tuning) withDefaults() Tuning {
	if t.RangeGroups <= 0 {
		t.RangeGroups = DownloadRangeGroups
	}
	// More would make every request fail CheckRange, and drop every source.
	t.RangeGroups = min(t.RangeGroups, MaxRangeGroups)
	if t.Window <= 0 {
		t.Window = DownloadWindow
	}
	if t.StallTimeout <= 0 {
		t.StallTimeout = DownloadStallTimeout
	}
	if t.SourceRefresh <= 0 {
		t.SourceRefresh = DownloadSourceRefresh
	}
	if t.NoSourceAfter <= 0 {
		t.NoSourceAfter = DownloadNoSourceAfter
	}
	return t
}

// Manager runs the node's downloads: it keeps them in bbolt, runs each one
// that is not finished, and resumes them after a restart. Safe for
// concurrent use.
type Manager struct {
	cfg     ManagerConfig
	log     *slog.Logger
	partial string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// slots bounds the downloads fetching at once.
	slots chan struct{}

	mu   sync.Mutex
	runs map[[32]byte]*run
	// ended keeps the last state of downloads that ended in this run of
	// the daemon, with their counters.
	ended map[[32]byte]DownloadInfo
	// folders marks the folder downloads whose goroutine runs
	// (folder_download.go).
	folders map[[32]byte]*folderRun
	// seeds are finished downloads still served to others (swarm.go).
	seeds []*run
	once  sync.Once
}

// Manager errors.
var (
	// ErrDownloadExists means the file is already being downloaded.
	ErrDownloadExists = errors.New("already downloading this file")
	// ErrNoSuchDownload means no download has the given root.
	ErrNoSuchDownload = errors.New("no such download")
	// ErrManagerClosed means the manager was closed.
	ErrManagerClosed = errors.New("download manager closed")
)

// NewManager opens the downloads kept in cfg.DB and resumes every
// unfinished one.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Tuning = cfg.Tuning.withDefaults()
	if err := store.CreateBuckets(cfg.DB, bucketDownloads, bucketBitmaps, bucketFolders); err != nil {
		return nil, err
	}
	if err := migrateAnonymous(cfg.DB); err != nil {
		return nil, err
	}
	partial := filepath.Join(cfg.Dir, ".partial")
	if err := os.MkdirAll(partial, 0o700); err != nil {
		return nil, fmt.Errorf("creating downloads folder: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, log: cfg.Log, partial: partial, ctx: ctx, cancel: cancel, runs: map[[32]byte]*run{}, ended: map[[32]byte]DownloadInfo{},
		slots: make(chan struct{}, MaxConcurrentDownloads)}
	var resume [][32]byte
	err := cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDownloads).ForEach(func(k, v []byte) error {
			var rec downloadRecord
			if len(k) != 32 || json.Unmarshal(v, &rec) != nil {
				return nil // unreadable record: leave it, it is listed as nothing
			}
			if rec.State != StateDone && rec.State != StateFailed {
				resume = append(resume, [32]byte(k))
			}
			return nil
		})
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("loading downloads: %w", err)
	}
	for _, root := range resume {
		if err := m.start(root); err != nil {
			m.log.Warn("cannot resume download", slog.String("root", hex.EncodeToString(root[:])), slog.Any("err", err))
		}
	}
	m.resumeFolders() // folder_download.go
	return m, nil
}

// Close stops every running download, keeping its state for a resume, and
// waits for the engine's goroutines. Safe to call twice.
func (m *Manager) Close() error {
	m.once.Do(func() {
		// Under mu, so that no Add starts a run (m.wg.Add) once Wait has
		// begun: startLocked checks m.ctx under mu.
		m.mu.Lock()
		m.cancel()
		m.mu.Unlock()
		m.wg.Wait()
	})
	return nil
}

// Add queues a download of the file named by link into dir (the downloads
// folder if empty) and starts it.
func (m *Manager) Add(link Link, dir string) (DownloadInfo, error) {
	return m.AddWith(link, dir, AddOptions{})
}

// AddWith is Add with options: Add is AddWith with none.
func (m *Manager) AddWith(link Link, dir string, opts AddOptions) (DownloadInfo, error) {
	if m.ctx.Err() != nil {
		return DownloadInfo{}, ErrManagerClosed
	}
	if link.Folder {
		return DownloadInfo{}, fmt.Errorf("%w: download it with AddFolder", ErrIsFolder)
	}
	dir, name, err := m.destination(link, dir)
	if err != nil {
		return DownloadInfo{}, err
	}
	rec := downloadRecord{Name: name, Size: link.Size, Dir: dir, State: StateQueued, Added: time.Now().UTC(), Anonymous: opts.Anonymous}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[link.Root]; ok {
		select {
		case <-r.done:
			// It just ended; its goroutine has not let go of it yet.
			delete(m.runs, link.Root)
		default:
			return DownloadInfo{}, fmt.Errorf("%w: %s", ErrDownloadExists, name)
		}
	}
	err = m.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDownloads)
		if old := b.Get(link.Root[:]); old != nil {
			var o downloadRecord
			if json.Unmarshal(old, &o) == nil && o.State != StateDone && o.State != StateFailed {
				return fmt.Errorf("%w: %s", ErrDownloadExists, name)
			}
		}
		tx.Bucket(bucketBitmaps).Delete(link.Root[:])
		return putRecord(tx, link.Root, rec)
	})
	if err != nil {
		return DownloadInfo{}, err
	}
	delete(m.ended, link.Root)
	if err := m.startLocked(link.Root); err != nil {
		return DownloadInfo{}, err
	}
	return m.runs[link.Root].info(), nil
}

// destination returns the folder (absolute; the downloads folder if dir is
// "") and the name of a download of link, once it is sure a file of that
// name can be created there.
func (m *Manager) destination(link Link, dir string) (string, string, error) {
	if dir == "" {
		dir = m.cfg.Dir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("download folder: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", "", fmt.Errorf("download folder %s: not a folder", dir)
	}
	name := link.Name
	if name == "" {
		name = hex.EncodeToString(link.Root[:8])
	}
	if err := checkPlaceable(dir, name); err != nil {
		return "", "", err
	}
	return dir, name, nil
}

// List returns every download the node knows, newest first.
func (m *Manager) List() []DownloadInfo {
	// Info is called outside the read transaction: it opens its own, and
	// it takes a run's lock, which a run holds while it writes to the
	// database; a writer that must remap waits for every reader.
	var roots [][32]byte
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDownloads).ForEach(func(k, v []byte) error {
			if len(k) == 32 {
				roots = append(roots, [32]byte(k))
			}
			return nil
		})
	})
	var out []DownloadInfo
	for _, root := range roots {
		if info, ok := m.Info(root); ok {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Added.After(out[j].Added) })
	return out
}

// Info returns the state of one download.
func (m *Manager) Info(root [32]byte) (DownloadInfo, bool) {
	m.mu.Lock()
	r, ok := m.runs[root]
	ended, wasEnded := m.ended[root]
	m.mu.Unlock()
	if ok {
		return r.info(), true
	}
	if wasEnded {
		return ended, true
	}
	var rec downloadRecord
	found := false
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDownloads).Get(root[:]); v != nil && json.Unmarshal(v, &rec) == nil {
			found = true
		}
		return nil
	})
	if !found {
		return DownloadInfo{}, false
	}
	info := DownloadInfo{
		Root: hex.EncodeToString(root[:]), Name: rec.Name, Size: rec.Size, SizeProven: rec.SizeProven, Dir: rec.Dir,
		State: rec.State, Reason: rec.Reason, Path: rec.Path, Error: rec.Error, Added: rec.Added, Finished: rec.Finished,
		Sources: []SourceInfo{}, Anonymous: rec.Anonymous,
	}
	if rec.Size >= 0 {
		info.Groups = Groups(rec.Size)
		if rec.State == StateDone {
			info.Verified, info.Received, info.Done = info.Groups, info.Groups, rec.Size
		}
	}
	return info, true
}

// Cancel stops a download and forgets it, deleting its partial data. A
// finished download is only forgotten (the file stays).
func (m *Manager) Cancel(root [32]byte) error {
	running := false
	for {
		m.mu.Lock()
		r, ok := m.runs[root]
		m.mu.Unlock()
		if !ok {
			break
		}
		running = true
		r.stop()
		<-r.done
		m.mu.Lock()
		// Forget the run now: its goroutine may not have yet, and would
		// then keep it listed (Info) or record it as ended. A run that
		// ended to start afresh (see run.restart) may have been replaced
		// by its successor: stop that one too.
		if m.runs[root] == r {
			delete(m.runs, root)
			m.mu.Unlock()
			break
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	delete(m.ended, root)
	m.dropSeedLocked(root)
	m.mu.Unlock()
	found := false
	err := m.cfg.DB.Update(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketDownloads).Get(root[:]) != nil
		tx.Bucket(bucketBitmaps).Delete(root[:])
		return tx.Bucket(bucketDownloads).Delete(root[:])
	})
	if err != nil {
		return fmt.Errorf("cancelling download: %w", err)
	}
	if !found && !running {
		return fmt.Errorf("%w: %x", ErrNoSuchDownload, root)
	}
	os.Remove(m.partialPath(root))
	return nil
}

func (m *Manager) partialPath(root [32]byte) string {
	return filepath.Join(m.partial, hex.EncodeToString(root[:])+".part")
}

func (m *Manager) start(root [32]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.startLocked(root)
}

func (m *Manager) startLocked(root [32]byte) error {
	if m.ctx.Err() != nil {
		return ErrManagerClosed
	}
	var rec downloadRecord
	var bitmap Bitmap
	err := m.cfg.DB.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDownloads).Get(root[:])
		if v == nil {
			return ErrNoSuchDownload
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		if v := tx.Bucket(bucketBitmaps).Get(root[:]); v != nil && rec.Size >= 0 {
			bitmap = decodeResume(v, Groups(rec.Size))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading download: %w", err)
	}
	r := newRun(m, root, rec, bitmap)
	m.runs[root] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.run()
		info := r.info()
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.runs[root] != r {
			return
		}
		delete(m.runs, root)
		if info.State == StateDone || info.State == StateFailed {
			m.ended[root] = info
		}
		m.keepSeedLocked(r) // swarm.go
		if r.restart.Load() && !r.stopped.Load() {
			// It ended to begin again from what it recorded (its
			// partial file was moved back into a folder that came back).
			if err := m.startLocked(root); err != nil && !errors.Is(err, ErrManagerClosed) {
				m.log.Warn("cannot resume download", slog.String("root", hex.EncodeToString(root[:])), slog.Any("err", err))
			}
		}
	}()
	return nil
}

// Downloaded returns where a finished download of root into dir put the
// file, if that file is still there at its size.
func (m *Manager) Downloaded(root [32]byte, dir string) (string, bool) {
	if dir == "" {
		dir = m.cfg.Dir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	var rec downloadRecord
	found := false
	m.cfg.DB.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDownloads).Get(root[:]); v != nil && json.Unmarshal(v, &rec) == nil {
			found = true
		}
		return nil
	})
	if !found || rec.State != StateDone || rec.Dir != dir || rec.Path == "" {
		return "", false
	}
	if fi, err := os.Stat(rec.Path); err != nil || !fi.Mode().IsRegular() || fi.Size() != rec.Size {
		return "", false
	}
	return rec.Path, true
}

func putRecord(tx *bolt.Tx, root [32]byte, rec downloadRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketDownloads).Put(root[:], v)
}
