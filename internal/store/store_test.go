package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func testOpen(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// schemaOf reads the recorded version with bbolt alone.
func schemaOf(t *testing.T, path string) []byte {
	t.Helper()
	db, err := bolt.Open(path, FileMode, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			v = append([]byte(nil), b.Get(keySchemaVersion)...)
		}
		return nil
	})
	return v
}

func TestOpenRecordsSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kith.db")
	db := testOpen(t, path)
	if err := CreateBuckets(db, []byte("test")); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("test")).Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != FileMode || FileMode != 0o600 {
		t.Errorf("database mode %v, want 0600", st.Mode().Perm())
	}
	if got, want := schemaOf(t, path), binary.BigEndian.AppendUint64(nil, SchemaVersion); string(got) != string(want) {
		t.Errorf("recorded schema %x, want %x", got, want)
	}

	// Reopening keeps the data and the version.
	db = testOpen(t, path)
	var v []byte
	db.View(func(tx *bolt.Tx) error {
		v = append(v, tx.Bucket([]byte("test")).Get([]byte("k"))...)
		return nil
	})
	db.Close()
	if string(v) != "v" {
		t.Errorf("value after reopen = %q, want %q", v, "v")
	}
	if got := binary.BigEndian.Uint64(schemaOf(t, path)); got != SchemaVersion {
		t.Errorf("schema after reopen = %d", got)
	}
}

func TestOpenNoSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kith.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if !db.NoSync {
		t.Error("NoSync not passed to bbolt")
	}
	db.Close()
}

func TestOpenUnknownSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kith.db")
	db, err := Open(path, Options{Writer: "v9.9.9 (rev abcdef) go1.99"})
	if err != nil {
		t.Fatal(err)
	}
	if by := WrittenBy(db); by != "v9.9.9 (rev abcdef) go1.99" {
		t.Fatalf("WrittenBy = %q", by)
	}
	if err := SetSchemaVersion(db, 99); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(path, Options{LockTimeout: 100 * time.Millisecond, Writer: "v1 (this one)"})
	if !errors.Is(err, ErrUnknownSchema) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open of schema 99 = %v, want ErrUnknownSchema", err)
	}
	if db != nil {
		t.Error("Open returned a database with its error")
	}
	msg := err.Error()
	for _, want := range []string{"schema 99", fmt.Sprintf("schema %d", SchemaVersion), path, "last written by kith v9.9.9 (rev abcdef)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	// The refusal leaves the file as it was and lets go of the lock.
	if got := binary.BigEndian.Uint64(schemaOf(t, path)); got != 99 {
		t.Errorf("schema after refusal = %d, want 99", got)
	}
	db, err = Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("Open after a refusal = %v, want ErrUnknownSchema again (not ErrLocked)", err)
	}
}

func TestOpenMalformedSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kith.db")
	db := testOpen(t, path)
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte{1, 2, 3})
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("Open with a 3-byte version = %v, want ErrUnknownSchema", err)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kith.db")
	db := testOpen(t, path)

	start := time.Now()
	second, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		if second != nil {
			second.Close()
		}
		db.Close()
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v with a 50ms lock timeout", d)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}

	db.Close()
	db = testOpen(t, path)
	db.Close()
}

func TestOpenNotAFile(t *testing.T) {
	dir := t.TempDir()
	for name, path := range map[string]string{
		"missing directory": filepath.Join(dir, "missing", "kith.db"),
		"a directory":       dir,
	} {
		t.Run(name, func(t *testing.T) {
			db, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, ErrLocked) || errors.Is(err, ErrUnknownSchema) {
				t.Errorf("Open = %v, want a plain I/O error", err)
			}
		})
	}
}

func TestCreateBuckets(t *testing.T) {
	db := testOpen(t, filepath.Join(t.TempDir(), "kith.db"))
	defer db.Close()

	names := [][]byte{[]byte("a.one"), []byte("a.two"), []byte("b")}
	if err := CreateBuckets(db, names...); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(names[0]).Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	// Again: nothing is lost.
	if err := CreateBuckets(db, names...); err != nil {
		t.Fatalf("second CreateBuckets: %v", err)
	}
	if err := CreateBuckets(db); err != nil {
		t.Fatalf("CreateBuckets of nothing: %v", err)
	}
	db.View(func(tx *bolt.Tx) error {
		for _, n := range names {
			if tx.Bucket(n) == nil {
				t.Errorf("bucket %q missing", n)
			}
		}
		if v := tx.Bucket(names[0]).Get([]byte("k")); string(v) != "v" {
			t.Errorf("second CreateBuckets lost data: %q", v)
		}
		return nil
	})

	// All or nothing: a bad name creates none of the others.
	err := CreateBuckets(db, []byte("c"), nil)
	if err == nil {
		t.Fatal("CreateBuckets with an empty name succeeded")
	}
	if !strings.Contains(err.Error(), "creating bucket") {
		t.Errorf("error %q does not say what failed", err)
	}
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("c")) != nil {
			t.Error("failed CreateBuckets left bucket c behind")
		}
		return nil
	})
}
