package share

import (
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestAnonymousMarkMigrated opens a database written the old way: the
// downloads' records without the mark, and the roots of the anonymous
// ones in package node's bucket. The manager moves the marks into the
// records (the download asks its Finder for tunnels only from then on),
// drops the marks of downloads that are gone, and deletes the old bucket.
func TestAnonymousMarkMigrated(t *testing.T) {
	e := newDLEnv(t)
	_, anon := e.file("anon.bin", 3*GroupSize)
	_, plain := e.file("plain.bin", 2*GroupSize+7)
	m := e.manager(testTuning)
	for _, l := range []Link{anon, plain} {
		if _, err := m.Add(l, ""); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	gone := [32]byte{9, 9, 9}
	err := e.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(legacyBucketAnonymous)
		if err != nil {
			return err
		}
		for _, k := range [][]byte{anon.Root[:], gone[:], []byte("short")} {
			if err := b.Put(k, []byte{1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.reopenDB()
	calls := len(e.finder.requestsOf(anon.Root))

	m = e.manager(testTuning)
	if info, _ := m.Info(anon.Root); !info.Anonymous {
		t.Fatalf("the anonymous download lost its mark: %+v", info)
	}
	if info, _ := m.Info(plain.Root); info.Anonymous {
		t.Fatalf("a download that was not anonymous is now: %+v", info)
	}
	if _, ok := m.Info(gone); ok {
		t.Fatal("the mark of a cancelled download made a download")
	}
	e.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(legacyBucketAnonymous) != nil {
			t.Error("the old bucket is still there")
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs := e.finder.requestsOf(anon.Root)
		if len(reqs) > calls {
			if slices.ContainsFunc(reqs[calls:], func(r FindRequest) bool { return !r.Anonymous }) {
				t.Fatal("the migrated anonymous download asked its Finder for friends")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migrated download never looked for sources")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if reqs := e.finder.requestsOf(plain.Root); len(reqs) > 0 && reqs[len(reqs)-1].Anonymous {
		t.Fatal("the plain download asked for tunnels only")
	}

	// The mark lives in the record now: it survives another restart.
	m.Close()
	m = e.manager(testTuning)
	if info, _ := m.Info(anon.Root); !info.Anonymous {
		t.Fatal("the mark did not survive a restart after the move")
	}
}
