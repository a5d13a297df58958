package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// fill writes buckets of keys (some nested) worth a few MiB, so the file
// has many pages.
func fill(t *testing.T, path string) int {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.Update(func(tx *bolt.Tx) error {
		for b := range 8 {
			bk, err := tx.CreateBucketIfNotExists(fmt.Appendf(nil, "bucket-%d", b))
			if err != nil {
				return err
			}
			nested, err := bk.CreateBucketIfNotExists([]byte("nested"))
			if err != nil {
				return err
			}
			for i := range 2000 {
				v := fmt.Appendf(nil, "value %d of bucket %d, padded to some length ..........................", i, b)
				if err := bk.Put(fmt.Appendf(nil, "k%06d", i), v); err != nil {
					return err
				}
				if err := nested.Put(fmt.Appendf(nil, "n%06d", i), v); err != nil {
					return err
				}
				n += 2
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countKeys(t *testing.T, db *bolt.DB) int {
	n := 0
	var count func(b *bolt.Bucket)
	count = func(b *bolt.Bucket) {
		b.ForEach(func(k, v []byte) error {
			if v == nil {
				count(b.Bucket(k))
			} else {
				n++
			}
			return nil
		})
	}
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { count(b); return nil })
	})
	return n
}

// A damaged kith.db is refused with ErrDamaged and a message that says
// what to do (the daemon used to panic: "invalid freelist page" for a
// truncated file, in the start-up rescan for damaged pages); Repair then
// saves what is readable and the repaired file opens.
func TestDamagedDatabase(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated to half", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"a tenth of the pages garbage", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			page := int64(os.Getpagesize())
			pages := fi.Size() / page
			r := rand.New(rand.NewPCG(1, 2))
			junk := make([]byte, page)
			for i := int64(0); i < pages/10; i++ {
				for j := range junk {
					junk[j] = byte(r.Uint32())
				}
				p := 2 + r.Int64N(pages-2) // leave the two meta pages
				if _, err := f.WriteAt(junk, p*page); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kith.db")
			total := fill(t, path)
			c.damage(t, path)
			db, err := Open(path, Options{})
			if err == nil {
				db.Close()
				t.Fatal("a damaged database opened")
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open = %v, want ErrDamaged", err)
			}
			for _, want := range []string{path, "kith repair"} {
				if !contains(err.Error(), want) {
					t.Fatalf("error %q does not mention %q", err, want)
				}
			}
			rep, err := Repair(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(rep.Damaged); err != nil {
				t.Fatalf("the damaged file was not kept: %v", err)
			}
			db, err = Open(path, Options{})
			if err != nil {
				t.Fatalf("the repaired database does not open: %v", err)
			}
			defer db.Close()
			got := countKeys(t, db)
			t.Logf("%s: %d of %d keys saved, %d buckets, %d bad pages: %v", c.name, got, total, rep.Buckets, rep.BadPages, rep.Damage)
			if got > total+2 {
				t.Fatalf("%d keys after repair of %d", got, total)
			}
			if len(rep.Damage) == 0 {
				t.Fatal("the report names no damage")
			}
			if c.name != "truncated to half" && got < total/2 {
				// Garbage on a tenth of the pages loses the keys on those
				// pages and below them, not whole buckets.
				t.Fatalf("only %d of %d keys saved", got, total)
			}
		})
	}
}

// Repair refuses a database a daemon holds.
func TestRepairLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kith.db")
	db := testOpen(t, path)
	defer db.Close()
	if _, err := Repair(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("Repair of an open database = %v, want ErrLocked", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}
