package share

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"kith/internal/store"
)

// Index limits. Find answers anonymous peers, so its work is bounded.
const (
	// MaxQueryLen is the longest search query Find accepts, in bytes.
	MaxQueryLen = 256
	// MaxQueryWords is the most words a search query may have.
	MaxQueryWords = 8
	// MaxWordLen is the longest word the keyword index keeps, in bytes;
	// longer words (in names and in queries alike) are cut to it.
	MaxWordLen = 64
	// MaxFindResults is the most results one Find returns.
	MaxFindResults = 256
	// maxFindScan is the most keyword entries one Find examines: a one-letter
	// query in a large index ends early rather than walking it all.
	maxFindScan = 1 << 16
	// maxRemoveBatch is the most files deleted in one transaction when a
	// share or vanished files are dropped.
	maxRemoveBatch = 4096
)

// ShareFlags say who may see a shared folder. The zero value shares with
// nobody but the node's own user.
type ShareFlags struct {
	// Browsable lets friends list the folder and fetch its files directly.
	Browsable bool
	// Anonymous lets anyone reachable through tunnels find its files by
	// search and fetch them.
	Anonymous bool
}

// ShareInfo describes one shared folder.
type ShareInfo struct {
	// Dir is the folder's absolute path with symlinks resolved.
	Dir string
	// Name is the folder's unique browse name: the base name of Dir, with
	// -2, -3... appended when another share already has it.
	Name string
	// Browsable and Anonymous are the share's flags.
	Browsable, Anonymous bool
	// Files and Bytes count the indexed files as of the last scan.
	Files int
	Bytes int64
	// LastScan is when the last complete scan ended; zero before the first.
	LastScan time.Time
}

// FoundFile is one indexed file as Find and Files return it.
type FoundFile struct {
	// Root is the file's BLAKE3 root.
	Root [32]byte
	// Name is the file's base name.
	Name string
	// Size is the file size in bytes.
	Size int64
	// Share is the browse name of the share that holds the file.
	Share string
	// RelPath is the file's path inside the share, with "/" separators.
	RelPath string
}

// Index is the persistent catalog of what the node shares: the shared
// folders, every file in them with its root and outboard, and a keyword
// index, all in bbolt. It implements Catalog.
//
// Lookups, Browse and Find are served from the database alone and never
// touch the shared folders. Only scans read them. An Index is safe for
// concurrent use; scans of different shares run one after the other.
type Index struct {
	db  *bolt.DB
	log *slog.Logger

	// editMu serialises AddShare and RemoveShare, so that the nesting and
	// name checks see every other share.
	editMu sync.Mutex
	// scanMu serialises scans and share removal: each writes the file
	// records of one share in several transactions. It is taken after
	// editMu.
	scanMu sync.Mutex

	// mu guards the fields below. It is never held while waiting for a
	// write transaction.
	mu sync.RWMutex
	// shares mirrors bucketShares, by folder.
	shares map[string]shareRecord
	// scanning holds the cancel function of the running scan, by folder.
	scanning map[string]context.CancelCauseFunc

	// scans counts what every share scan since Open did (ScanTotals).
	scans struct {
		scans, hashed, bytesHashed atomic.Int64
	}
}

// ScanTotals counts what the scans of shares since the index was opened
// did, for an operator's counters.
type ScanTotals struct {
	// Scans counts share scans finished (one per share of a Rescan).
	Scans int64
	// Hashed and BytesHashed count the files hashed and their bytes.
	Hashed, BytesHashed int64
}

// ScanTotals returns what the scans since Open did.
func (x *Index) ScanTotals() ScanTotals {
	return ScanTotals{Scans: x.scans.scans.Load(), Hashed: x.scans.hashed.Load(), BytesHashed: x.scans.bytesHashed.Load()}
}

// shareRecord is the value of bucketShares.
type shareRecord struct {
	Name      string    `json:"name"`
	Browsable bool      `json:"browsable,omitempty"`
	Anonymous bool      `json:"anonymous,omitempty"`
	Files     int       `json:"files"`
	Bytes     int64     `json:"bytes"`
	LastScan  time.Time `json:"last_scan,omitzero"`
}

// fileRecord is the value of bucketFiles.
type fileRecord struct {
	Size int64 `json:"size"`
	// MTime is the modification time in Unix nanoseconds.
	MTime int64  `json:"mtime"`
	Root  []byte `json:"root"`
	// Target is set for a symlink: the path inside the share, with "/"
	// separators, of the file it resolved to when it was hashed. That file
	// is what is served, so a link changed to point elsewhere later cannot
	// make the node send what it never hashed.
	Target string `json:"target,omitempty"`
}

// OpenIndex opens the index kept in db, creating its buckets if needed. A
// nil log discards messages. The Index does not own db: close db after the
// last use of the Index.
func OpenIndex(db *bolt.DB, log *slog.Logger) (*Index, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := store.CreateBuckets(db, bucketShares, bucketFiles, bucketOutboards, bucketRoots, bucketWords); err != nil {
		return nil, fmt.Errorf("opening share index: %w", err)
	}
	x := &Index{
		db:       db,
		log:      log,
		shares:   make(map[string]shareRecord),
		scanning: make(map[string]context.CancelCauseFunc),
	}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketShares).ForEach(func(k, v []byte) error {
			var rec shareRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("share %q: %w", k, err)
			}
			x.shares[string(k)] = rec
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("opening share index: %w", err)
	}
	return x, nil
}

// AddShare shares the folder dir with flags, or changes the flags of a
// folder already shared. The folder is stored as an absolute path with
// symlinks resolved. It is refused with ErrNotFolder if it is not a folder
// and with ErrNestedShare if it lies inside another share or holds one.
// AddShare does not scan the folder: call RescanShare.
func (x *Index) AddShare(dir string, flags ShareFlags) (ShareInfo, error) {
	abs, err := resolveDir(dir)
	if err != nil {
		return ShareInfo{}, fmt.Errorf("adding share: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return ShareInfo{}, fmt.Errorf("adding share: %w", err)
	}
	if !fi.IsDir() {
		return ShareInfo{}, fmt.Errorf("adding share %s: %w", abs, ErrNotFolder)
	}

	x.editMu.Lock()
	defer x.editMu.Unlock()
	x.mu.RLock()
	rec, exists := x.shares[abs]
	taken := make(map[string]bool, len(x.shares))
	var nestErr error
	for d, r := range x.shares {
		taken[r.Name] = true
		if d != abs && (within(abs, d) || within(d, abs)) {
			nestErr = fmt.Errorf("adding share %s: %w: %s", abs, ErrNestedShare, d)
		}
	}
	x.mu.RUnlock()
	if nestErr != nil {
		return ShareInfo{}, nestErr
	}
	if !exists {
		rec = shareRecord{Name: uniqueName(abs, taken)}
	}

	err = x.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketShares)
		// A scan may have written counts since the map was read: change
		// only the flags of the stored record.
		if v := b.Get([]byte(abs)); v != nil {
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
		}
		rec.Browsable, rec.Anonymous = flags.Browsable, flags.Anonymous
		return putJSON(b, []byte(abs), rec)
	})
	if err != nil {
		return ShareInfo{}, fmt.Errorf("adding share %s: %w", abs, err)
	}
	x.mu.Lock()
	if cur, ok := x.shares[abs]; ok {
		rec.Files, rec.Bytes, rec.LastScan = cur.Files, cur.Bytes, cur.LastScan
	}
	x.shares[abs] = rec
	x.mu.Unlock()
	if !exists {
		x.log.Info("added share", slog.String("dir", abs), slog.String("name", rec.Name),
			slog.Bool("browsable", rec.Browsable), slog.Bool("anonymous", rec.Anonymous))
	}
	return rec.info(abs), nil
}

// RemoveShare stops sharing the folder dir and drops its files from the
// index, with their keywords, and the outboards no other file uses. The
// share disappears from Lookup, Browse and Find at once. A running scan of
// the folder is cancelled; a running scan of another share is waited for.
// An unknown folder gives ErrNotShared.
func (x *Index) RemoveShare(dir string) (ShareInfo, error) {
	abs := lookupDir(dir)
	x.editMu.Lock()
	defer x.editMu.Unlock()

	// Out of the map first, so Lookup, Browse and Find stop seeing it now.
	x.mu.Lock()
	rec, ok := x.shares[abs]
	if ok {
		delete(x.shares, abs)
		if cancel := x.scanning[abs]; cancel != nil {
			cancel(fmt.Errorf("%w: removed", ErrNotShared))
		}
	}
	x.mu.Unlock()
	if !ok {
		return ShareInfo{}, fmt.Errorf("removing share %s: %w", abs, ErrNotShared)
	}

	x.scanMu.Lock()
	defer x.scanMu.Unlock()
	// Files go first and the share record last, so an interrupted removal
	// leaves a share with fewer files, never files without a share.
	_, err := x.removeShareFiles(abs)
	if err == nil {
		err = x.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketShares).Delete([]byte(abs))
		})
	}
	if err != nil {
		x.mu.Lock()
		x.shares[abs] = rec
		x.mu.Unlock()
		return ShareInfo{}, fmt.Errorf("removing share %s: %w", abs, err)
	}
	x.log.Info("removed share", slog.String("dir", abs), slog.String("name", rec.Name))
	return rec.info(abs), nil
}

// Shares returns every shared folder, sorted by browse name.
func (x *Index) Shares() []ShareInfo {
	x.mu.RLock()
	list := make([]ShareInfo, 0, len(x.shares))
	for d, r := range x.shares {
		list = append(list, r.info(d))
	}
	x.mu.RUnlock()
	slices.SortFunc(list, func(a, b ShareInfo) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// Lookup finds a file with root in a share that scope may see, with its
// outboard. It reads one cursor range of the database and copies the
// outboard (64 bytes per 256 KiB of file); it does not look at the file on
// disk.
func (x *Index) Lookup(root [32]byte, scope Scope) (SharedFile, bool) {
	var sf SharedFile
	found := false
	x.mu.RLock()
	defer x.mu.RUnlock()
	err := x.db.View(func(tx *bolt.Tx) error {
		files, outboards := tx.Bucket(bucketFiles), tx.Bucket(bucketOutboards)
		c := tx.Bucket(bucketRoots).Cursor()
		for k, _ := c.Seek(root[:]); bytes.HasPrefix(k, root[:]); k, _ = c.Next() {
			fk := k[len(root):]
			dir, rel, ok := splitFileKey(fk)
			if !ok || !x.shares[dir].allows(scope) {
				continue
			}
			rec, err := getFile(files, fk)
			if err != nil || !bytes.Equal(rec.Root, root[:]) {
				continue
			}
			ob := outboards.Get(root[:])
			if ob == nil {
				continue
			}
			sf = SharedFile{
				Path:    filepath.Join(dir, filepath.FromSlash(cmp.Or(rec.Target, rel))),
				Dir:     dir,
				Rel:     cmp.Or(rec.Target, rel),
				Name:    path.Base(rel),
				ModTime: time.Unix(0, rec.MTime),
				Tree:    Tree{Root: root, Size: rec.Size, Outboard: bytes.Clone(ob)},
			}
			found = true
			return nil
		}
		return nil
	})
	if err != nil {
		x.log.Warn("share index lookup failed", slog.Any("err", err))
		return SharedFile{}, false
	}
	return sf, found
}

// Browse lists one folder of the browsable shares from the index: "" lists
// the shares by browse name, "name/sub" the folders and files directly in
// folder sub of the share called name, sorted by name. At most
// MaxBrowseEntries entries from offset are returned, and More says whether
// the listing goes on. An invalid path, an unknown one and one in a share
// that is not browsable all give an error wrapping ErrNoSuchPath. Listing a
// folder costs time in the number of its entries, whatever the offset.
func (x *Index) Browse(p string, offset int) (BrowseReply, error) {
	if err := CheckPath(p); err != nil {
		return BrowseReply{}, fmt.Errorf("browsing: %w: %w", ErrNoSuchPath, err)
	}
	offset = max(offset, 0)
	name, sub, _ := strings.Cut(p, "/")

	var entries []Entry
	x.mu.RLock()
	var dir string
	for d, r := range x.shares {
		if !r.Browsable {
			continue
		}
		if p == "" {
			entries = append(entries, Entry{Name: r.Name, Dir: true})
		} else if r.Name == name {
			dir = d
		}
	}
	x.mu.RUnlock()
	if p == "" {
		slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
		return pageEntries(entries, offset), nil
	}
	if dir == "" {
		return BrowseReply{}, fmt.Errorf("browsing %q: %w", p, ErrNoSuchPath)
	}

	prefix := filePrefix(dir)
	if sub != "" {
		prefix = append(append(prefix, sub...), '/')
	}
	var reply BrowseReply
	err := x.db.View(func(tx *bolt.Tx) error {
		files := tx.Bucket(bucketFiles)
		type child struct {
			name string
			key  []byte // nil for a folder
		}
		var children []child
		c := files.Cursor()
		for k, _ := c.Seek(prefix); bytes.HasPrefix(k, prefix); {
			tail := k[len(prefix):]
			if i := bytes.IndexByte(tail, '/'); i >= 0 {
				children = append(children, child{name: string(tail[:i])})
				// Skip the folder's whole subtree: its keys all start
				// with name + "/", and '0' is the byte after '/'.
				k, _ = c.Seek(append(append(slices.Clip(prefix), tail[:i]...), '0'))
				continue
			}
			children = append(children, child{name: string(tail), key: k})
			k, _ = c.Next()
		}
		if len(children) == 0 && sub != "" {
			return fmt.Errorf("browsing %q: %w", p, ErrNoSuchPath)
		}
		slices.SortFunc(children, func(a, b child) int { return strings.Compare(a.name, b.name) })
		if offset >= len(children) {
			return nil
		}
		children = children[offset:]
		if len(children) > MaxBrowseEntries {
			children, reply.More = children[:MaxBrowseEntries], true
		}
		reply.Entries = make([]Entry, len(children))
		for i, ch := range children {
			e := Entry{Name: ch.name, Dir: ch.key == nil}
			if !e.Dir {
				rec, err := getFile(files, ch.key)
				if err != nil {
					return err
				}
				e.Size = rec.Size
				copy(e.Root[:], rec.Root)
			}
			reply.Entries[i] = e
		}
		return nil
	})
	if err != nil {
		return BrowseReply{}, err
	}
	return reply, nil
}

// Find searches the file names of the shares that scope may see. Every word
// of query (see Keywords) must be a prefix of some word of a name, so
// "wem live" finds "Live at Wembley.flac". Files with the same root are
// returned once. At most limit results are returned, and never more than
// MaxFindResults (a limit of zero or less means MaxFindResults). The work
// is bounded, so a query matching very many files may return fewer. A
// query of no words, of more than MaxQueryWords words or longer than
// MaxQueryLen bytes gives ErrBadQuery.
func (x *Index) Find(query string, scope Scope, limit int) ([]FoundFile, error) {
	if len(query) > MaxQueryLen {
		return nil, fmt.Errorf("searching: %w: %d bytes", ErrBadQuery, len(query))
	}
	words := Keywords(query)
	if len(words) == 0 || len(words) > MaxQueryWords {
		return nil, fmt.Errorf("searching: %w: %d words", ErrBadQuery, len(words))
	}
	if limit <= 0 || limit > MaxFindResults {
		limit = MaxFindResults
	}
	// The longest word is likely the rarest: walk its range of the index
	// and check the others against each name.
	drive := []byte(slices.MaxFunc(words, func(a, b string) int { return cmp.Compare(len(a), len(b)) }))

	var found []FoundFile
	x.mu.RLock()
	defer x.mu.RUnlock()
	err := x.db.View(func(tx *bolt.Tx) error {
		files := tx.Bucket(bucketFiles)
		seen := make(map[[32]byte]bool)
		c := tx.Bucket(bucketWords).Cursor()
		scanned := 0
		for k, _ := c.Seek(drive); bytes.HasPrefix(k, drive) && scanned < maxFindScan; k, _ = c.Next() {
			scanned++
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				continue
			}
			fk := k[i+1:]
			dir, rel, ok := splitFileKey(fk)
			if !ok {
				continue
			}
			share, ok := x.shares[dir]
			if !ok || !share.allows(scope) {
				continue
			}
			name := path.Base(rel)
			if !matchWords(words, Keywords(name)) {
				continue
			}
			rec, err := getFile(files, fk)
			if err != nil || len(rec.Root) != 32 {
				continue
			}
			root := [32]byte(rec.Root)
			if seen[root] {
				continue
			}
			seen[root] = true
			found = append(found, FoundFile{Root: root, Name: name, Size: rec.Size, Share: share.Name, RelPath: rel})
			if len(found) == limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("searching: %w", err)
	}
	return found, nil
}

// Files returns every indexed file of the share dir, in path order. An
// unknown folder gives ErrNotShared.
func (x *Index) Files(dir string) ([]FoundFile, error) {
	abs := lookupDir(dir)
	x.mu.RLock()
	share, ok := x.shares[abs]
	x.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("listing share %s: %w", abs, ErrNotShared)
	}
	prefix := filePrefix(abs)
	var list []FoundFile
	err := x.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFiles).Cursor()
		for k, v := c.Seek(prefix); bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec fileRecord
			if err := json.Unmarshal(v, &rec); err != nil || len(rec.Root) != 32 {
				return fmt.Errorf("file record %q: bad value", k)
			}
			rel := string(k[len(prefix):])
			list = append(list, FoundFile{
				Root: [32]byte(rec.Root), Name: path.Base(rel), Size: rec.Size, Share: share.Name, RelPath: rel,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing share %s: %w", abs, err)
	}
	return list, nil
}

// removeShareFiles deletes every file of the share dir, in batches of
// transactions. It returns how many it deleted.
func (x *Index) removeShareFiles(dir string) (int, error) {
	prefix := filePrefix(dir)
	return x.removeBatches(func(tx *bolt.Tx) [][]byte {
		var keys [][]byte
		c := tx.Bucket(bucketFiles).Cursor()
		for k, _ := c.Seek(prefix); bytes.HasPrefix(k, prefix) && len(keys) < maxRemoveBatch; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		return keys
	})
}

// removeRelFiles deletes the files rels of the share dir, in batches of
// transactions. It returns how many of them it found and deleted.
func (x *Index) removeRelFiles(dir string, rels []string) (int, error) {
	return x.removeBatches(func(*bolt.Tx) [][]byte {
		batch := rels[:min(len(rels), maxRemoveBatch)]
		rels = rels[len(batch):]
		keys := make([][]byte, len(batch))
		for i, rel := range batch {
			keys[i] = fileKey(dir, rel)
		}
		return keys
	})
}

// removeBatches deletes the files whose keys next returns, one transaction
// per call of next, until next returns none.
func (x *Index) removeBatches(next func(*bolt.Tx) [][]byte) (int, error) {
	removed := 0
	for done := false; !done; {
		err := x.db.Update(func(tx *bolt.Tx) error {
			keys := next(tx)
			done = len(keys) == 0
			for _, k := range keys {
				ok, err := deleteFile(tx, k)
				if err != nil {
					return err
				}
				if ok {
					removed++
				}
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// putFile stores the record of the file with key fk and its outboard,
// indexes its root and name, and drops what an older record of the same
// key referenced and nothing else does.
func putFile(tx *bolt.Tx, fk []byte, rec fileRecord, outboard []byte) error {
	files, roots, outboards, words := tx.Bucket(bucketFiles), tx.Bucket(bucketRoots),
		tx.Bucket(bucketOutboards), tx.Bucket(bucketWords)
	var oldRoot []byte
	if old, err := getFile(files, fk); err == nil && !bytes.Equal(old.Root, rec.Root) {
		oldRoot = old.Root
	}
	if err := putJSON(files, fk, rec); err != nil {
		return err
	}
	if err := roots.Put(rootKey(rec.Root, fk), []byte{}); err != nil {
		return err
	}
	if outboards.Get(rec.Root) == nil {
		if err := outboards.Put(rec.Root, outboard); err != nil {
			return err
		}
	}
	_, rel, _ := splitFileKey(fk)
	for _, w := range Keywords(path.Base(rel)) {
		if err := words.Put(wordKey(w, fk), []byte{}); err != nil {
			return err
		}
	}
	if oldRoot != nil {
		if err := roots.Delete(rootKey(oldRoot, fk)); err != nil {
			return err
		}
		return dropUnusedOutboard(tx, oldRoot)
	}
	return nil
}

// deleteFile deletes the file with key fk from every bucket, and its
// outboard if no other file has its root. It reports whether there was
// such a file.
func deleteFile(tx *bolt.Tx, fk []byte) (bool, error) {
	files := tx.Bucket(bucketFiles)
	v := files.Get(fk)
	if v == nil {
		return false, nil
	}
	var rec fileRecord
	_ = json.Unmarshal(v, &rec) // a bad record is deleted all the same
	if err := files.Delete(fk); err != nil {
		return false, err
	}
	_, rel, _ := splitFileKey(fk)
	words := tx.Bucket(bucketWords)
	for _, w := range Keywords(path.Base(rel)) {
		if err := words.Delete(wordKey(w, fk)); err != nil {
			return false, err
		}
	}
	if len(rec.Root) == 32 {
		if err := tx.Bucket(bucketRoots).Delete(rootKey(rec.Root, fk)); err != nil {
			return false, err
		}
		if err := dropUnusedOutboard(tx, rec.Root); err != nil {
			return false, err
		}
	}
	return true, nil
}

// dropUnusedOutboard deletes the outboard of root unless a file has root.
func dropUnusedOutboard(tx *bolt.Tx, root []byte) error {
	if k, _ := tx.Bucket(bucketRoots).Cursor().Seek(root); bytes.HasPrefix(k, root) {
		return nil
	}
	return tx.Bucket(bucketOutboards).Delete(root)
}

// getFile decodes the file record with key fk.
func getFile(files *bolt.Bucket, fk []byte) (fileRecord, error) {
	var rec fileRecord
	v := files.Get(fk)
	if v == nil {
		return rec, fmt.Errorf("no file record %q", fk)
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("file record %q: %w", fk, err)
	}
	if len(rec.Root) != 32 {
		return rec, fmt.Errorf("file record %q: bad root", fk)
	}
	return rec, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// filePrefix returns the start of the file keys of share dir: dir, NUL.
func filePrefix(dir string) []byte {
	k := make([]byte, 0, len(dir)+64)
	return append(append(k, dir...), 0)
}

// fileKey returns the key of a file: share folder, NUL, relative path.
func fileKey(dir, rel string) []byte {
	return append(filePrefix(dir), rel...)
}

// splitFileKey splits a file key into share folder and relative path.
func splitFileKey(fk []byte) (dir, rel string, ok bool) {
	i := bytes.IndexByte(fk, 0)
	if i < 0 {
		return "", "", false
	}
	return string(fk[:i]), string(fk[i+1:]), true
}

// rootKey returns the bucketRoots key of a file: root, file key.
func rootKey(root, fk []byte) []byte {
	return append(append(make([]byte, 0, len(root)+len(fk)), root...), fk...)
}

// wordKey returns the bucketWords key of a word of a file: word, NUL, file
// key. Words hold no NUL, so a cursor Seek to a word prefix finds them all.
func wordKey(w string, fk []byte) []byte {
	k := make([]byte, 0, len(w)+1+len(fk))
	return append(append(append(k, w...), 0), fk...)
}

// allows reports whether scope may see the share. The zero record (no
// share) allows nothing.
func (r shareRecord) allows(scope Scope) bool {
	switch scope {
	case ScopeFriend:
		return r.Browsable
	case ScopeAnonymous:
		return r.Anonymous
	case ScopeLocal:
		return r.Name != ""
	}
	return false
}

func (r shareRecord) info(dir string) ShareInfo {
	return ShareInfo{
		Dir: dir, Name: r.Name, Browsable: r.Browsable, Anonymous: r.Anonymous,
		Files: r.Files, Bytes: r.Bytes, LastScan: r.LastScan,
	}
}

// pageEntries cuts one page from offset out of a full listing.
func pageEntries(entries []Entry, offset int) BrowseReply {
	if offset >= len(entries) {
		return BrowseReply{}
	}
	entries = entries[offset:]
	if len(entries) > MaxBrowseEntries {
		return BrowseReply{Entries: entries[:MaxBrowseEntries], More: true}
	}
	return BrowseReply{Entries: entries}
}

// resolveDir returns the absolute, clean path of dir with symlinks
// resolved. dir must exist.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// lookupDir returns the form of dir that a share of it is stored under:
// resolved if it still exists, else just absolute and clean.
func lookupDir(dir string) string {
	if abs, err := resolveDir(dir); err == nil {
		return abs
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return filepath.Clean(dir)
}

// within reports whether path p lies strictly inside folder dir.
func within(p, dir string) bool {
	if p == dir {
		return false
	}
	if dir == string(filepath.Separator) {
		return strings.HasPrefix(p, dir)
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}

// uniqueName returns the browse name of a new share of dir: its base name,
// made valid, with -2, -3... appended until it is not in taken.
func uniqueName(dir string, taken map[string]bool) string {
	base := filepath.Base(dir)
	if CheckName(base) != nil {
		base = "share"
	}
	base = truncateUTF8(base, MaxNameLen-12)
	name := base
	for n := 2; taken[name]; n++ {
		name = base + "-" + strconv.Itoa(n)
	}
	return name
}
