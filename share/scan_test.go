//go:build unix

package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"lukechampine.com/blake3"

	"kith/internal/store"
)

func TestScanSkips(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := ixOpen(t)
	base := ixDir(t)
	dir := filepath.Join(base, "share")
	outside := ixWrite(t, base, "outside/secret.txt", []byte("outside secret"))
	ixWrite(t, base, "outside/nested/also secret", []byte("also secret"))
	inside := ixWrite(t, dir, "real/target.txt", []byte("inside target"))
	ixWrite(t, dir, "real/plain.txt", []byte("plain"))

	symlink := func(target, rel string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, rel)); err != nil {
			t.Fatal(err)
		}
	}
	symlink(outside, "link to outside file")
	symlink("../outside/secret.txt", "relative link to outside file")
	symlink(filepath.Join(base, "outside"), "link to outside dir")
	symlink("real", "link to inside dir")
	symlink(".", "loop")
	symlink("nowhere", "dangling")
	symlink("self", "self")
	symlink("real/target.txt", "link to inside file")
	symlink("link to inside file", "link to link")
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	ixWrite(t, dir, "back\\slash", []byte("bad name"))
	ixWrite(t, dir, "bad\xffutf8", []byte("bad name"))
	ixWrite(t, dir, "ctrl\x01dir/file", []byte("under a bad folder name"))

	e.add(dir, ShareFlags{Browsable: true})
	st := e.scan(dir)
	want := map[string]int{
		SkipSymlinkOutside: 2,
		SkipSymlinkFolder:  3,
		SkipBrokenSymlink:  2,
		SkipNotRegular:     1,
		SkipBadName:        3,
	}
	if !maps.Equal(st.SkippedReasons, want) || st.Skipped != 11 {
		t.Errorf("skipped %d: %v, want %v", st.Skipped, st.SkippedReasons, want)
	}
	// real/target.txt, real/plain.txt and the two links to it.
	if st.Files != 4 || st.Hashed != 4 {
		t.Errorf("stats = %+v", st)
	}
	if _, ok := e.x.Lookup(ixRoot(t, outside), ScopeLocal); ok {
		t.Error("file outside the share indexed")
	}
	if res, _ := e.x.Find("secret", ScopeLocal, 0); len(res) != 0 {
		t.Errorf("outside files found: %+v", res)
	}
	// The link is listed under its own name but serves its target.
	r, err := e.x.Browse("share", 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range r.Entries {
		names = append(names, en.Name)
	}
	if fmt.Sprint(names) != "[link to inside file link to link real]" {
		t.Errorf("listing = %q", names)
	}
	files, _ := e.x.Files(dir)
	for _, f := range files {
		if f.RelPath == "link to inside file" && f.Root != ixRoot(t, inside) {
			t.Errorf("link indexed with root %x", f.Root)
		}
	}
	sf, ok := e.x.Lookup(ixRoot(t, inside), ScopeFriend)
	if !ok || sf.Path != inside {
		t.Errorf("Lookup of linked file = %+v, %v", sf, ok)
	}

	// Retargeting a link to a same-sized file elsewhere in the share
	// re-hashes it; retargeting it out of the share drops it.
	other := ixWrite(t, dir, "real/other.txt", []byte("inside TARGET"))
	ti := time.Now().Add(-time.Hour)
	os.Chtimes(other, ti, ti)
	os.Chtimes(inside, ti, ti)
	os.Remove(filepath.Join(dir, "link to inside file"))
	symlink("real/other.txt", "link to inside file")
	st = e.scan(dir)
	// other.txt is new, target.txt has a new mtime, and both links are
	// read again: one has a new target, the other a new target mtime.
	if st.Hashed != 4 || st.Removed != 0 || st.Unchanged != 1 {
		t.Errorf("after retargeting = %+v", st)
	}
	files, _ = e.x.Files(dir)
	for _, f := range files {
		if f.RelPath == "link to inside file" && f.Root != ixRoot(t, other) {
			t.Errorf("retargeted link has root %x", f.Root)
		}
	}
	os.Remove(filepath.Join(dir, "link to inside file"))
	symlink(outside, "link to inside file")
	st = e.scan(dir)
	// The link to that link goes too.
	if st.Removed != 2 || st.Files != 3 || st.SkippedReasons[SkipSymlinkOutside] != 4 {
		t.Errorf("after pointing link outside: %+v", st)
	}
}

func TestScanCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := ixOpen(t)
	dir := ixDir(t)
	for i := range 200 {
		ixWrite(t, dir, fmt.Sprintf("d%d/f%d", i%7, i), testData(int64(i*1000)))
	}
	e.add(dir, ShareFlags{Browsable: true})
	e.scan(dir)

	// A cancelled scan removes nothing, even what is gone from disk.
	os.RemoveAll(filepath.Join(dir, "d3"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.x.RescanShare(ctx, dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled scan = %v", err)
	}
	if e.count(bucketFiles) != 200 {
		t.Errorf("%d files after cancelled scan", e.count(bucketFiles))
	}
	if _, err := e.x.Rescan(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Rescan = %v", err)
	}

	// Cancelling mid-scan stops it and keeps what was hashed.
	for i := range 200 {
		ixWrite(t, dir, fmt.Sprintf("new/f%d", i), testData(int64(GroupSize+i)))
	}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan struct{})
	var st ScanStats
	var err error
	go func() {
		defer close(done)
		st, err = e.x.RescanShare(ctx, dir)
	}()
	time.Sleep(5 * time.Millisecond)
	cancel()
	<-done
	if err == nil {
		t.Logf("scan finished before cancel: %+v", st)
	} else if !errors.Is(err, context.Canceled) {
		t.Fatalf("scan = %v", err)
	}
	st = e.scan(dir)
	if st.Files != 371 || st.Removed != 29 { // d3 held 29 of the first 200
		t.Errorf("completing scan: %+v", st)
	}
	if got := e.count(bucketFiles); got != st.Files {
		t.Errorf("%d file records, %d files", got, st.Files)
	}
}

func TestScanShareUnreadable(t *testing.T) {
	e := ixOpen(t)
	base := ixDir(t)
	dir := filepath.Join(base, "drive")
	p := ixWrite(t, dir, "file", []byte("data"))
	e.add(dir, ShareFlags{Browsable: true})
	e.scan(dir)
	root := ixRoot(t, p)
	if err := os.Rename(dir, filepath.Join(base, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.x.RescanShare(context.Background(), dir); !errors.Is(err, ErrShareUnreadable) {
		t.Fatalf("scan of missing share = %v", err)
	}
	if _, ok := e.x.Lookup(root, ScopeFriend); !ok {
		t.Error("files of an unreadable share dropped")
	}
	st, err := e.x.Rescan(context.Background())
	if !errors.Is(err, ErrShareUnreadable) || st.Files != 1 {
		t.Errorf("Rescan = %+v, %v", st, err)
	}
}

func TestScanRemoveWhileScanning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := ixOpen(t)
	base := ixDir(t)
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	for i := range 300 {
		ixWrite(t, a, fmt.Sprintf("f%d", i), testData(int64(GroupSize/2+i)))
	}
	ixWrite(t, b, "keep", []byte("keep"))
	e.add(a, ShareFlags{Browsable: true})
	e.add(b, ShareFlags{Browsable: true})
	var wg sync.WaitGroup
	var scanErr error
	wg.Go(func() { _, scanErr = e.x.Rescan(context.Background()) })
	wg.Go(func() {
		time.Sleep(2 * time.Millisecond)
		if _, err := e.x.RemoveShare(a); err != nil {
			t.Error(err)
		}
	})
	// Readers run alongside.
	wg.Go(func() {
		for range 50 {
			e.x.Find("f1", ScopeLocal, 0)
			e.x.Browse("a", 0)
			e.x.Shares()
		}
	})
	wg.Wait()
	if scanErr != nil {
		t.Fatalf("Rescan = %v", scanErr)
	}
	if e.count(bucketFiles) != 1 || e.count(bucketOutboards) != 1 || e.count(bucketRoots) != 1 ||
		e.count(bucketWords) != 1 || e.count(bucketShares) != 1 {
		t.Errorf("left: files %d outboards %d roots %d words %d shares %d", e.count(bucketFiles),
			e.count(bucketOutboards), e.count(bucketRoots), e.count(bucketWords), e.count(bucketShares))
	}
}

func TestScanBatches(t *testing.T) {
	// More files than one batch: all arrive.
	e := ixOpen(t)
	dir := ixDir(t)
	n := scanBatchFiles*2 + 10
	for i := range n {
		ixWrite(t, dir, fmt.Sprintf("%d/%d", i%10, i), fmt.Appendf(nil, "%d", i))
	}
	e.add(dir, ShareFlags{Browsable: true})
	if st := e.scan(dir); st.Hashed != n || st.Files != n || e.count(bucketFiles) != n {
		t.Fatalf("stats = %+v", st)
	}
	if st := e.scan(dir); st.Unchanged != n || st.Hashed != 0 {
		t.Fatalf("rescan = %+v", st)
	}
}

// benchFileSize is the file BenchmarkScan and BenchmarkBLAKE3File read.
const benchFileSize = 256 << 20

// benchFile writes a benchFileSize file into a new folder of b and returns
// both. Reading it back right away finds it in the page cache.
func benchFile(b *testing.B) (dir, file string) {
	b.Helper()
	dir, err := filepath.EvalSymlinks(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	file = ixWrite(b, dir, "big.bin", testData(benchFileSize))
	return dir, file
}

// BenchmarkScan indexes one 256 MiB file again and again (its mtime moves
// each time), database commit included. Compare with BenchmarkBLAKE3File at
// -cpu 1.
func BenchmarkScan(b *testing.B) {
	dir, file := benchFile(b)
	db, err := store.Open(filepath.Join(b.TempDir(), "kith.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	x, err := OpenIndex(db, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := x.AddShare(dir, ShareFlags{Browsable: true}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchFileSize)
	mtime := time.Now()
	for b.Loop() {
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			b.Fatal(err)
		}
		st, err := x.RescanShare(context.Background(), dir)
		if err != nil || st.Hashed != 1 {
			b.Fatal(st, err)
		}
	}
}

// BenchmarkBLAKE3File is plain streaming BLAKE3 over the same file, the
// bound BenchmarkScan is measured against.
func BenchmarkBLAKE3File(b *testing.B) {
	_, file := benchFile(b)
	buf := make([]byte, GroupSize)
	b.SetBytes(benchFileSize)
	for b.Loop() {
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		h := blake3.New(32, nil)
		for {
			n, err := f.Read(buf)
			h.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		h.Sum(nil)
		f.Close()
	}
}
