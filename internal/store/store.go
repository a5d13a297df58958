// Package store opens kith's single bbolt database and guards its schema
// version. Each package that keeps state owns its buckets and declares them in
// one file of its own; this package only knows the "meta" bucket.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
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
func Open(path string, opts Options) (*bolt.DB, error) {
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	db, err := bolt.Open(path, FileMode, &bolt.Options{
		Timeout:      timeout,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
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
