package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RepairReport says what Repair saved.
type RepairReport struct {
	// Damaged is where the damaged file now is.
	Damaged string `json:"damaged"`
	// Buckets and Keys count what was copied.
	Buckets int `json:"buckets"`
	Keys    int `json:"keys"`
	// BadPages counts the pages that could not be read (their keys, and
	// what hangs below them, are lost).
	BadPages int `json:"bad_pages"`
	// Damage names the buckets that lost something, with why.
	Damage []string `json:"damage,omitempty"`
}

// Repair copies everything that can still be read from the database at
// path into a new file, then moves the damaged file aside (to
// path.damaged-TIME) and puts the new one in its place. No daemon may have
// the database open.
//
// It does not trust bbolt to read the damaged file (bbolt panics on a bad
// page, and faults past the end of a truncated one): it reads the pages
// itself, checking every offset, and walks the tree of buckets from the
// newest sound meta page, skipping only the pages that do not parse. So
// damage loses the keys on the damaged pages and below them, nothing else.
func Repair(path string) (RepairReport, error) {
	var rep RepairReport
	f, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("repairing: %w", err)
	}
	defer f.Close()
	// bbolt holds an exclusive flock while a daemon has the file open.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return rep, fmt.Errorf("repairing %s: %w: stop the daemon first", path, ErrLocked)
	}
	s, err := newSalvager(f)
	if err != nil {
		return rep, fmt.Errorf("repairing %s: nothing can be read: %w", path, err)
	}
	tmp := path + ".repair"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, FileMode, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return rep, fmt.Errorf("creating %s: %w", tmp, err)
	}
	err = dst.Update(func(tx *bolt.Tx) error {
		s.tx = tx
		for i, root := range s.roots {
			if _, err := s.page(root); err != nil && i+1 < len(s.roots) {
				s.lose("", fmt.Sprintf("%v; trying the older meta page", err))
				continue // the newest root is gone: the older one may be there
			}
			delete(s.visited, root)
			return s.walk(root, nil, "", 0)
		}
		return nil
	})
	rep.Buckets, rep.Keys, rep.BadPages, rep.Damage = s.buckets, s.keys, s.badPages, s.damage
	if err := errors.Join(err, dst.Close()); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("writing %s: %w", tmp, err)
	}
	rep.Damaged = fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, rep.Damaged); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("moving the damaged file aside: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return rep, fmt.Errorf("putting the repaired file in place (the damaged one is %s, the copy %s): %w", rep.Damaged, tmp, err)
	}
	return rep, nil
}

// The on-disk format of bbolt (go.etcd.io/bbolt/internal/common), version
// 2, in the machine's byte order (little-endian on every platform kith
// runs on).
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elementSize      = 16 // leaf: flags, pos, ksize, vsize u32; branch: pos, ksize u32, pgid u64
	bucketHeaderSize = 16 // root pgid u64, sequence u64
	metaSize         = 64 // magic, version, page size, flags u32; root bucket; freelist, pgid, txid, checksum u64
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	noFreelist       = 0xffffffffffffffff
	leafBucket       = 0x01
	maxTreeDepth     = 64
	maxPageSpan      = 1 << 20 // pages in one overflowing page: far beyond any value kith stores
)

var le = binary.LittleEndian

type salvager struct {
	f        io.ReaderAt
	size     int64
	pageSize int64
	roots    []uint64 // the root bucket's page, newest meta first
	freelist uint64
	maxPgid  uint64
	visited  map[uint64]bool
	tx       *bolt.Tx

	buckets, keys, badPages int
	damage                  []string
}

// newSalvager reads the two meta pages and picks the newest sound one.
func newSalvager(f *os.File) (*salvager, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &salvager{f: f, size: fi.Size(), visited: map[uint64]bool{}}
	var best, other []byte
	var bestTx uint64
	// Meta page 0 is at offset 0; page 1 at one page size, which meta
	// page 0 gives, or else the usual sizes are tried.
	for _, off := range []int64{0, 4096, 8192, 16384, 65536} {
		b := make([]byte, pageHeaderSize+metaSize)
		if _, err := f.ReadAt(b, off); err != nil {
			continue
		}
		m := b[pageHeaderSize:]
		if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
			continue
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != le.Uint64(m[56:]) {
			continue
		}
		if ps := int64(le.Uint32(m[8:])); off != 0 && off != ps {
			continue
		}
		if tx := le.Uint64(m[48:]); best == nil || tx > bestTx {
			best, other, bestTx = m, best, tx
		} else if other == nil {
			other = m
		}
	}
	if best == nil {
		return nil, errors.New("no sound meta page")
	}
	s.pageSize = int64(le.Uint32(best[8:]))
	if s.pageSize < 512 || s.pageSize > 1<<20 {
		return nil, fmt.Errorf("meta page gives a page size of %d", s.pageSize)
	}
	s.roots = []uint64{le.Uint64(best[16:])}
	if other != nil && le.Uint64(other[16:]) != s.roots[0] {
		s.roots = append(s.roots, le.Uint64(other[16:]))
	}
	s.freelist = le.Uint64(best[32:])
	s.maxPgid = le.Uint64(best[40:])
	return s, nil
}

// page reads page id with its overflow pages, or says why it cannot.
func (s *salvager) page(id uint64) ([]byte, error) {
	if id < 2 || id >= s.maxPgid {
		return nil, fmt.Errorf("page %d out of range", id)
	}
	if s.visited[id] {
		return nil, fmt.Errorf("page %d reached twice", id)
	}
	s.visited[id] = true
	off := int64(id) * s.pageSize
	hdr := make([]byte, pageHeaderSize)
	if _, err := s.f.ReadAt(hdr, off); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if le.Uint64(hdr) != id {
		return nil, fmt.Errorf("page %d has the id of page %d", id, le.Uint64(hdr))
	}
	overflow := int64(le.Uint32(hdr[12:]))
	if overflow > maxPageSpan || id+uint64(overflow) >= s.maxPgid {
		return nil, fmt.Errorf("page %d overflows into %d more pages", id, overflow)
	}
	b := make([]byte, (1+overflow)*s.pageSize)
	if n, err := s.f.ReadAt(b, off); err != nil && n < len(b) {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return b, nil
}

// walk copies the tree rooted at page id (or the inline page, for an
// inline bucket) into the bucket at path of the new file (the root
// bucket, whose children are top-level buckets, when path is nil).
func (s *salvager) walk(id uint64, inline []byte, name string, depth int) error {
	if depth > maxTreeDepth {
		s.lose(name, "tree too deep")
		return nil
	}
	p := inline
	if p == nil {
		var err error
		if p, err = s.page(id); err != nil {
			s.badPages++
			s.lose(name, err.Error())
			return nil
		}
	}
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > len(p) {
		s.badPages++
		s.lose(name, fmt.Sprintf("page %d: %d elements do not fit", id, count))
		return nil
	}
	for i := range count {
		e := pageHeaderSize + i*elementSize
		switch {
		case flags&flagBranch != 0:
			if err := s.walk(le.Uint64(p[e+8:]), nil, name, depth+1); err != nil {
				return err
			}
		case flags&flagLeaf != 0:
			if err := s.leaf(p, e, name, depth); err != nil {
				return err
			}
		default:
			s.badPages++
			s.lose(name, fmt.Sprintf("page %d is neither branch nor leaf", id))
			return nil
		}
	}
	return nil
}

// leaf copies the element at offset e of leaf page p.
func (s *salvager) leaf(p []byte, e int, name string, depth int) error {
	ef, pos, ksize, vsize := le.Uint32(p[e:]), int(le.Uint32(p[e+4:])), int(le.Uint32(p[e+8:])), int(le.Uint32(p[e+12:]))
	start := e + pos
	if pos < 0 || ksize < 0 || vsize < 0 || start+ksize+vsize > len(p) || start < e {
		s.lose(name, "an element points outside its page")
		return nil
	}
	key := bytes.Clone(p[start : start+ksize])
	val := p[start+ksize : start+ksize+vsize]
	child := name + "/" + printableKey(key)
	if ef&leafBucket == 0 {
		b := s.bucket(name)
		if b == nil {
			s.lose(name, "a key outside any bucket")
			return nil
		}
		s.keys++
		return b.Put(key, bytes.Clone(val))
	}
	if len(val) < bucketHeaderSize {
		s.lose(child, "bucket header cut short")
		return nil
	}
	if err := s.create(name, key); err != nil {
		return err
	}
	root := le.Uint64(val)
	if root == 0 { // an inline bucket: its page follows the header
		in := val[bucketHeaderSize:]
		if len(in) < pageHeaderSize {
			s.lose(child, "inline bucket cut short")
			return nil
		}
		return s.walk(0, bytes.Clone(in), child, depth+1)
	}
	return s.walk(root, nil, child, depth+1)
}

// bucket returns the new file's bucket at path name ("" is the root).
func (s *salvager) bucket(name string) *bolt.Bucket {
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil
	}
	b := s.tx.Bucket(parts[0])
	for _, p := range parts[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket(p)
	}
	return b
}

func (s *salvager) create(parent string, key []byte) error {
	var err error
	if parent == "" {
		_, err = s.tx.CreateBucketIfNotExists(key)
	} else if b := s.bucket(parent); b != nil {
		_, err = b.CreateBucketIfNotExists(key)
	} else {
		return nil
	}
	if err == nil {
		s.buckets++
	}
	return err
}

func (s *salvager) lose(name, why string) {
	if len(s.damage) < 100 {
		s.damage = append(s.damage, showPath(name)+": "+why)
	}
}

// Bucket paths are kept as "/a/b" with each name in hex, so any byte
// string round-trips; showPath prints them for people.
func printableKey(k []byte) string { return hex.EncodeToString(k) }

func splitPath(name string) [][]byte {
	var out [][]byte
	for _, part := range strings.Split(name, "/") {
		if k, err := hex.DecodeString(part); err == nil && part != "" {
			out = append(out, k)
		}
	}
	return out
}

func showPath(name string) string {
	var parts []string
	for _, k := range splitPath(name) {
		parts = append(parts, strconv.Quote(string(k)))
	}
	if len(parts) == 0 {
		return "(root)"
	}
	return strings.Join(parts, "/")
}
