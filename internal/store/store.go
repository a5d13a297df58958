// Package store opens kith's single bbolt database and guards its schema
// version. Each package that keeps state owns its buckets and declares them in
// one file of its own; this package only knows the "meta" bucket.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the version of the database layout this build reads and
// writes. Bump it (and add a migration in Open) when a bucket's encoding changes.
const SchemaVersion = 1

// FileMode is the permission of kith.db: the database holds the friend list
// and chat history, so only its owner may read it.
const FileMode = 0o600

var (
	bucketMeta       = []byte("meta")
	keySchemaVersion = []byte("schema_version")
	// keyWrittenBy holds the build (version.Info's one-line form) that
	// last opened the database for writing, so a refusal can name it.
	keyWrittenBy = []byte("written_by")
)

// Sentinel errors of Open.
var (
	// ErrUnknownSchema means the database was written by a kith whose schema
	// this build does not know (usually a newer kith).
	ErrUnknownSchema = errors.New("unknown database schema version")
	// ErrLocked means another process holds the database open.
	ErrLocked = errors.New("database is in use by another process")
	// ErrDamaged means the database file is damaged: truncated, or with
	// pages that do not hold what bbolt wrote. Repair copies what can
	// still be read into a new file.
	ErrDamaged = errors.New("database is damaged")
)

// Options tune Open. The zero value is what a daemon wants.
type Options struct {
	// NoSync skips fdatasync on commit. Only for throwaway stores (the
	// simulator, benchmarks): a crash can lose or corrupt recent commits.
	NoSync bool
	// LockTimeout bounds the wait for the file lock; zero means one second.
	LockTimeout time.Duration
	// Writer names this build; if set, it is recorded as the last writer.
	Writer string
}

// Open opens (creating if needed) the database at path, records the schema
// version in a new file, and refuses a file whose version it does not know.
// A damaged file is refused with ErrDamaged, never a panic: Open checks
// that the file is as long as its pages say and that every page reachable
// from the root is sound, before any other code reads it.
func Open(path string, opts Options) (db *bolt.DB, err error) {
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	if err := precheck(path); err != nil {
		return nil, err
	}
	db, err = openBolt(path, &bolt.Options{
		Timeout:      timeout,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, err
	}
	if err := check(db, path); err != nil {
		db.Close()
		return nil, err
	}
	// A database made more open than 0600 (by hand, or by a copy) is tightened.
	_ = os.Chmod(path, FileMode)
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		v := meta.Get(keySchemaVersion)
		if v == nil {
			if err := meta.Put(keySchemaVersion, binary.BigEndian.AppendUint64(nil, SchemaVersion)); err != nil {
				return err
			}
		} else if len(v) != 8 {
			return fmt.Errorf("%w: malformed version record", ErrUnknownSchema)
		} else if got := binary.BigEndian.Uint64(v); got != SchemaVersion {
			by := "an unknown kith"
			if w := meta.Get(keyWrittenBy); w != nil {
				by = "kith " + string(w)
			}
			return fmt.Errorf("%w: %s has schema %d, last written by %s; this kith reads schema %d: use that kith, or a newer one",
				ErrUnknownSchema, path, got, by, SchemaVersion)
		}
		if opts.Writer != "" {
			return meta.Put(keyWrittenBy, []byte(opts.Writer))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// damaged is the error for a damaged file at path.
func damaged(path string, why any) error {
	// bbolt reports some damage by panicking; the panic is caught, so its
	// word would only alarm.
	msg := strings.ReplaceAll(fmt.Sprint(why), "panic: ", "")
	return fmt.Errorf("%w: %s: %s; stop kith and run `kith repair`, which copies what can be read into a new database and keeps the damaged file beside it",
		ErrDamaged, path, msg)
}

// openBolt is bolt.Open that turns a panic on a damaged file into ErrDamaged.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	// bbolt may panic after it took the file's lock; the file is closed
	// then, so the lock goes with it and Repair can open the file.
	var file *os.File
	o.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, mode)
		file = f
		return f, err
	}
	defer func() {
		if p := recover(); p != nil {
			if file != nil {
				file.Close()
			}
			db, err = nil, damaged(path, p)
		}
	}()
	db, err = bolt.Open(path, FileMode, o)
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
		return nil, damaged(path, err)
	}
	if err != nil && !errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, err
}

// precheck looks at an existing file before bbolt maps it: bbolt panics
// on a truncated file or a bad freelist page while it holds the file's
// lock and mapping, which only the process's exit then releases.
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil // bbolt initialises an empty file
	}
	s, err := newSalvager(f)
	if err != nil {
		return damaged(path, err)
	}
	if need := int64(s.maxPgid) * s.pageSize; fi.Size() < need {
		return damaged(path, fmt.Sprintf("file is %d bytes, its pages need %d (truncated)", fi.Size(), need))
	}
	if s.freelist != noFreelist {
		hdr := make([]byte, pageHeaderSize)
		if _, err := f.ReadAt(hdr, int64(s.freelist)*s.pageSize); err != nil {
			return damaged(path, fmt.Sprintf("freelist page %d: %v", s.freelist, err))
		}
		if le.Uint64(hdr) != s.freelist || le.Uint16(hdr[8:])&flagFreelist == 0 {
			return damaged(path, fmt.Sprintf("freelist page %d is not a freelist page", s.freelist))
		}
	}
	return nil
}

// maxCheckErrors is how many problems check collects before it stops.
const maxCheckErrors = 8

// check reports ErrDamaged for a file shorter than its pages say (reading
// past the end would kill the process with SIGBUS) or with unsound pages.
func check(db *bolt.DB, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	var problems []error
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			problems = append(problems, fmt.Errorf("file is %d bytes, its pages need %d (truncated)", fi.Size(), tx.Size()))
			return nil
		}
		for err := range tx.Check() {
			// A page neither used nor free is only space lost, not data.
			if len(problems) < maxCheckErrors && !strings.Contains(err.Error(), "unreachable unfreed") {
				problems = append(problems, err)
			}
		}
		return nil
	})
	if err != nil {
		return damaged(path, err)
	}
	if len(problems) > 0 {
		return damaged(path, errors.Join(problems...))
	}
	return nil
}

// WrittenBy returns the build that last opened db for writing, "" if none
// recorded it.
func WrittenBy(db *bolt.DB) string {
	var by string
	db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			by = string(meta.Get(keyWrittenBy))
		}
		return nil
	})
	return by
}

// SetSchemaVersion overwrites the recorded schema version. Tests use it to
// make a database this build must refuse.
func SetSchemaVersion(db *bolt.DB, v uint64) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keySchemaVersion, binary.BigEndian.AppendUint64(nil, v))
	})
}

// CreateBuckets makes sure every named bucket exists.
func CreateBuckets(db *bolt.DB, names ...[]byte) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return fmt.Errorf("creating bucket %q: %w", n, err)
			}
		}
		return nil
	})
}
