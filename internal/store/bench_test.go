package store

import (
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkOpenCheck measures Open of a database of about 256 MiB: the
// page check every start runs, against opening with bbolt alone.
func BenchmarkOpenCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "kith.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 1000)
	for batch := range 256 {
		db.Update(func(tx *bolt.Tx) error {
			bk, _ := tx.CreateBucketIfNotExists([]byte("data"))
			for i := range 1000 {
				bk.Put(fmt.Appendf(nil, "%08d", batch*1000+i), val)
			}
			return nil
		})
	}
	db.Close()
	b.Run("bbolt", func(b *testing.B) {
		for b.Loop() {
			db, err := bolt.Open(path, FileMode, nil)
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
	b.Run("checked", func(b *testing.B) {
		for b.Loop() {
			db, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
}
