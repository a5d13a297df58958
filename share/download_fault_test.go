package share

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestDownloadPartialTruncated truncates the partial file under a running
// download, between the moment the verifier takes written groups and the
// moment it reads them back through its mapping of the file, as another
// program (or a user freeing space) could. The download must fail with an
// error that says so, and the process must live: reading a mapped page past
// the end of a file raises SIGBUS, which kills a Go program unless the
// goroutine asked for faults to become panics.
func TestDownloadPartialTruncated(t *testing.T) {
	e := newDLEnv(t)
	_, link := e.file("cut.bin", dlSize)
	e.finder.set(newTestSource("a"))
	var m *Manager
	var once sync.Once
	hooks := &testHooks{beforeVerifyRead: func(first int64) {
		once.Do(func() {
			if err := os.Truncate(m.partialPath(link.Root), 0); err != nil {
				t.Error(err)
			}
		})
	}}
	m = e.managerWith(testTuning, hooks)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	info := waitInfo(t, m, link.Root, "the end", func(i DownloadInfo) bool {
		return i.State == StateDone || i.State == StateFailed
	})
	if info.State != StateFailed || !strings.Contains(info.Error, "partial file") {
		t.Fatalf("download of a truncated partial file: state %s, error %q; want failed, saying the partial file changed", info.State, info.Error)
	}
	waitEnded(t, m, link.Root)
	if _, err := os.Stat(m.partialPath(link.Root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left behind: %v", err)
	}
	// The manager still works: the same file downloads whole.
	addAgain(t, m, link)
	waitDone(t, m, link.Root)
}

// holdAfter serves n ranges, then holds every request until release is
// closed, then serves them.
func holdAfter(n int64, release <-chan struct{}) func(*Peer, func()) Fetcher {
	var calls atomic.Int64
	return func(p *Peer, _ func()) Fetcher {
		return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
			if calls.Add(1) > n {
				select {
				case <-release:
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
			}
			return p.GetRange(ctx, root, size, first, count, buf)
		})
	}
}

// TestDownloadChangedAfterVerify changes one byte of the partial file after
// the group holding it was verified, as another program or a failing disk
// could, and lets the download finish. It must not complete: a finished
// download is a file whose BLAKE3 root is the link's (what b3sum prints).
func TestDownloadChangedAfterVerify(t *testing.T) {
	e := newDLEnv(t)
	_, link := e.file("changed.bin", dlSize)
	release := make(chan struct{})
	src := newTestSource("a")
	src.wrap = holdAfter(2, release) // the size proof and group 0 and 1
	e.finder.set(src)
	tu := testTuning
	tu.Window = 1
	m := e.manager(tu)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, m, link.Root, "group 0 verified", func(i DownloadInfo) bool { return i.Received >= 2 })
	f, err := os.OpenFile(m.partialPath(link.Root), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	f.ReadAt(b[:], 1000)
	b[0] ^= 0x20
	if _, err := f.WriteAt(b[:], 1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	close(release)
	info := waitInfo(t, m, link.Root, "the end", func(i DownloadInfo) bool {
		return i.State == StateDone || i.State == StateFailed
	})
	if info.State == StateDone {
		tree, err := HashFile(info.Path)
		if err != nil {
			t.Fatal(err)
		}
		if tree.Root != link.Root {
			t.Fatalf("the download completed with a file whose root %x is not the link's %x", tree.Root[:8], link.Root[:8])
		}
		t.Fatal("the download completed although its partial file changed")
	}
	if !strings.Contains(info.Error, "changed on disk") {
		t.Errorf("error %q does not say the file changed on disk", info.Error)
	}
	waitEnded(t, m, link.Root)
	if ents, _ := os.ReadDir(e.dir); len(ents) != 1 { // .partial only
		t.Errorf("downloads folder holds %d entries; want .partial only", len(ents))
	}
}

// TestDownloadChangedBeforeResume changes one byte of a group that an
// earlier run verified, while the node is down. The resumed run has no
// fingerprint of that group (they live in the memory of the run that took
// them), so its whole-file check must hash the file with BLAKE3; the
// download must fail, saying the file changed on disk.
func TestDownloadChangedBeforeResume(t *testing.T) {
	e := newDLEnv(t)
	_, link := e.file("resumed.bin", 16*GroupSize)
	var calls atomic.Int64
	slow := newTestSource("slow")
	slow.wrap = gated(3, &calls)
	e.finder.set(slow)
	tu := Tuning{RangeGroups: 1, Window: 2, StallTimeout: time.Minute, SourceRefresh: time.Minute}
	m := e.manager(tu)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, m, link.Root, "three groups", func(i DownloadInfo) bool { return i.Verified == 3 })
	m.Close()
	// Which three groups the first run verified depends on the order its
	// requests were served in; change a byte of the first one it recorded.
	changed := int64(-1)
	e.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBitmaps).Get(link.Root[:]); v != nil {
			bm := decodeResume(v, 16)
			for i := range int64(16) {
				if bm.Has(i) {
					changed = i
					break
				}
			}
		}
		return nil
	})
	if changed < 0 {
		t.Fatal("the first run recorded no verified group")
	}
	f, err := os.OpenFile(m.partialPath(link.Root), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	at := changed*GroupSize + 5
	f.ReadAt(b[:], at)
	b[0] ^= 0x01
	if _, err := f.WriteAt(b[:], at); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.reopenDB()
	e.finder.set(newTestSource("fresh"))
	m2 := e.manager(tu)
	info := waitInfo(t, m2, link.Root, "the end", func(i DownloadInfo) bool {
		return i.State == StateDone || i.State == StateFailed
	})
	if info.ResumedGroups != 3 {
		t.Fatalf("resumed %d groups, want 3 (the test needs a resume)", info.ResumedGroups)
	}
	if info.State == StateDone {
		t.Fatal("the resumed download completed although a group verified before the restart changed")
	}
	if !strings.Contains(info.Error, "changed on disk") {
		t.Errorf("error %q does not say the file changed on disk", info.Error)
	}
}
