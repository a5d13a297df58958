package share

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

// dlSize is the size of most test files: 13 groups, the last one short.
const dlSize = 3<<20 + 12345

func TestDownloadComplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sources int
		pair    string
	}{
		{"one source", 1, "pipe"},
		{"three sources", 3, "pipe"},
		{"three sources tcp", 3, "tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLEnv(t)
			if tc.pair == "tcp" {
				e.finder.pair = tcpPair
			}
			data, link := e.file("song.flac", dlSize)
			var srcs []*testSource
			for i := range tc.sources {
				srcs = append(srcs, newTestSource(string(rune('a'+i))))
			}
			e.finder.set(srcs...)
			m := e.manager(testTuning)
			info, err := m.Add(link, "")
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != "song.flac" || info.Size != dlSize {
				t.Errorf("Add: %+v", info)
			}
			info = waitDone(t, m, link.Root)
			checkDone(t, m, info, data)
			if want := filepath.Join(e.dir, "song.flac"); info.Path != want {
				t.Errorf("path %s, want %s", info.Path, want)
			}
			if info.ResumedGroups != 0 || info.BadRanges != 0 {
				t.Errorf("resumed %d, bad %d", info.ResumedGroups, info.BadRanges)
			}
			var total int64
			for _, s := range info.Sources {
				if s.Dropped != "" {
					t.Errorf("source %s dropped: %s", s.Name, s.Dropped)
				}
				total += s.Bytes
			}
			if total < dlSize {
				t.Errorf("sources sent %d bytes, want at least %d", total, dlSize)
			}
			if l := m.List(); len(l) != 1 || l[0].State != StateDone {
				t.Errorf("List: %+v", l)
			}
			e.finder.checkAllClosed()
		})
	}
}

func TestDownloadNeverOverwrites(t *testing.T) {
	e := newDLEnv(t)
	data, link := e.file("movie.mkv", 2*GroupSize+5)
	e.finder.set(newTestSource("a"))
	mine := []byte("my own movie")
	if err := os.WriteFile(filepath.Join(e.dir, "movie.mkv"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	m := e.manager(testTuning)
	for _, want := range []string{"movie (2).mkv", "movie (3).mkv"} {
		addAgain(t, m, link)
		info := waitDone(t, m, link.Root)
		checkDone(t, m, info, data)
		if info.Path != filepath.Join(e.dir, want) {
			t.Errorf("path %s, want %s", info.Path, want)
		}
	}
	if got, err := os.ReadFile(filepath.Join(e.dir, "movie.mkv")); err != nil || !bytes.Equal(got, mine) {
		t.Errorf("existing file: %q, %v", got, err)
	}
	e.finder.checkAllClosed()
}

func TestDownloadSourceDisappears(t *testing.T) {
	e := newDLEnv(t)
	data, link := e.file("f.bin", dlSize)
	var flakyCalls atomic.Int64
	flaky := newTestSource("flaky")
	flaky.wrap = failAfter(2, &flakyCalls)
	flaky.offer = func() bool { return flaky.offered.Load() == 0 } // gone for good
	// The honest source holds its first requests until the flaky one is
	// gone, so that the flaky one surely gets its third request.
	honest := newTestSource("honest")
	honest.wrap = waitThen(flaky.closedc, 0)
	e.finder.set(flaky, honest)
	// One request at a time: the flaky source serves exactly 2 ranges.
	tu := testTuning
	tu.RangeGroups, tu.Window = 1, 1
	m := e.manager(tu)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	info := waitDone(t, m, link.Root)
	checkDone(t, m, info, data)
	fs := sourceInfo(info, "flaky")
	if len(fs) != 1 || !strings.HasPrefix(fs[0].Dropped, "error") {
		t.Fatalf("flaky source: %+v", fs)
	}
	// Its first range is the last group, which proved the size.
	if _, last := GroupBounds(dlSize, Groups(dlSize)-1); fs[0].Bytes != GroupSize+last {
		t.Errorf("flaky source sent %d bytes, want its 2 ranges", fs[0].Bytes)
	}
	if hs := sourceInfo(info, "honest"); len(hs) != 1 || hs[0].Dropped != "" {
		t.Errorf("honest source: %+v", hs)
	}
	e.finder.checkAllClosed()
}

func TestDownloadStalledSource(t *testing.T) {
	tu := Tuning{RangeGroups: 1, Window: 2, StallTimeout: 200 * time.Millisecond, SourceRefresh: 50 * time.Millisecond}
	t.Run("groups move", func(t *testing.T) {
		e := newDLEnv(t)
		data, link := e.file("f.bin", 12*GroupSize)
		var stalls atomic.Int64
		stuck := newTestSource("stuck")
		stuck.wrap = stall(&stalls)
		stuck.offer = func() bool { return stuck.offered.Load() == 0 }
		honest := newTestSource("honest")
		honest.wrap = waitThen(nil, 20*time.Millisecond)
		e.finder.set(stuck, honest)
		m := e.manager(tu)
		if _, err := m.Add(link, ""); err != nil {
			t.Fatal(err)
		}
		info := waitDone(t, m, link.Root)
		checkDone(t, m, info, data)
		if stalls.Load() == 0 {
			t.Error("the stuck source got no request")
		}
		if hs := sourceInfo(info, "honest"); len(hs) != 1 || hs[0].Bytes != int64(len(data)) {
			t.Errorf("honest source: %+v; want all %d bytes", hs, len(data))
		}
		e.finder.checkAllClosed()
	})
	t.Run("dropped", func(t *testing.T) {
		e := newDLEnv(t)
		data, link := e.file("f.bin", 5*GroupSize)
		var calls atomic.Int64
		stuck := newTestSource("stuck")
		// It proves the size, then stalls: a source that cannot prove
		// its size is never attached.
		stuck.wrap = gated(1, &calls)
		stuck.offer = func() bool { return stuck.offered.Load() == 0 }
		honest := newTestSource("honest")
		// Offered only once the stuck source is gone: it alone stalls.
		honest.offer = func() bool { return stuck.closed.Load() > 0 }
		e.finder.set(stuck, honest)
		m := e.manager(tu)
		start := time.Now()
		if _, err := m.Add(link, ""); err != nil {
			t.Fatal(err)
		}
		info := waitDone(t, m, link.Root)
		checkDone(t, m, info, data)
		ss := sourceInfo(info, "stuck")
		if len(ss) != 1 || ss[0].Dropped != "stalled" || ss[0].Bytes != GroupSize {
			t.Fatalf("stuck source: %+v", ss)
		}
		if n := calls.Load() - 1; n < DownloadMaxStalls {
			t.Errorf("dropped after %d stalls, want %d", n, DownloadMaxStalls)
		}
		// Window 2: two rounds of stalls before the third.
		if d := time.Since(start); d < 2*tu.StallTimeout {
			t.Errorf("done after %v: dropped too early", d)
		}
		e.finder.checkAllClosed()
	})
}

func TestDownloadLyingSource(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proof bool
	}{{"data", false}, {"proof", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLEnv(t)
			data, link := e.file("f.bin", dlSize)
			liar := newTestSource("liar")
			liar.wrap = lie(tc.proof)
			honest := newTestSource("honest")
			honest.offer = func() bool { return liar.closed.Load() > 0 }
			e.finder.set(liar, honest)
			m := e.manager(testTuning)
			if _, err := m.Add(link, ""); err != nil {
				t.Fatal(err)
			}
			info := waitDone(t, m, link.Root)
			checkDone(t, m, info, data)
			if info.BadRanges == 0 {
				t.Error("no bad range counted")
			}
			ls := sourceInfo(info, "liar")
			if len(ls) != 1 || !strings.Contains(ls[0].Dropped, "does not match") {
				t.Fatalf("lying source: %+v", ls)
			}
			if n := liar.offered.Load(); n != 1 {
				t.Errorf("lying source taken %d times", n)
			}
			skips := e.finder.skipsOf("liar")
			if len(skips) < 2 || skips[0] || !skips[len(skips)-1] {
				t.Errorf("skip(liar) in each search: %v; want false, then true", skips)
			}
			e.finder.checkAllClosed()
		})
	}
}

func TestDownloadResume(t *testing.T) {
	const served = 3 // ranges of one group the first run gets
	for _, tc := range []struct {
		name    string
		partial func(path string) error // what happens to the partial file between runs
		resumed int64
	}{
		{"bitmap", func(string) error { return nil }, served},
		{"partial missing", os.Remove, 0},
		{"partial other size", func(p string) error { return os.Truncate(p, 7*GroupSize) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLEnv(t)
			data, link := e.file("f.bin", 16*GroupSize)
			var calls atomic.Int64
			slow := newTestSource("slow")
			slow.wrap = gated(served, &calls)
			e.finder.set(slow)
			tu := Tuning{RangeGroups: 1, Window: 2, StallTimeout: time.Minute, SourceRefresh: time.Minute}
			m := e.manager(tu)
			if _, err := m.Add(link, ""); err != nil {
				t.Fatal(err)
			}
			waitInfo(t, m, link.Root, "some groups", func(i DownloadInfo) bool { return i.Verified == served })
			closed := make(chan struct{})
			go func() { m.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
			if info, ok := m.Info(link.Root); !ok || info.State == StateDone || info.State == StateFailed {
				t.Fatalf("after Close: %+v, %v", info, ok)
			}
			e.finder.checkAllClosed()
			if err := tc.partial(m.partialPath(link.Root)); err != nil {
				t.Fatal(err)
			}

			e.reopenDB()
			e.finder.set(newTestSource("fresh"))
			m2 := e.manager(tu) // resumes by itself
			info := waitDone(t, m2, link.Root)
			checkDone(t, m2, info, data)
			if info.ResumedGroups != tc.resumed {
				t.Errorf("resumed %d groups, want %d", info.ResumedGroups, tc.resumed)
			}
			e.finder.checkAllClosed()
		})
	}
}

func TestDownloadUnknownSize(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known bool
	}{{"bare root", false}, {"known size", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLEnv(t)
			data, link := e.file("f.bin", dlSize)
			if !tc.known {
				var err error
				if link, err = ParseLink(hex.EncodeToString(link.Root[:])); err != nil || link.Size != UnknownSize {
					t.Fatalf("ParseLink: %+v, %v", link, err)
				}
			}
			var otherCalls atomic.Int64
			other := newTestSource("other")
			other.have = func(h HaveReply) HaveReply { h.Size += GroupSize; return h }
			other.wrap = gated(1<<30, &otherCalls)
			e.finder.set(newTestSource("honest"), other)
			m := e.manager(testTuning)
			if _, err := m.Add(link, ""); err != nil {
				t.Fatal(err)
			}
			info := waitDone(t, m, link.Root)
			checkDone(t, m, info, data)
			if want := hex.EncodeToString(link.Root[:8]); !tc.known && filepath.Base(info.Path) != want {
				t.Errorf("saved as %s, want %s", info.Path, want)
			}
			// Asked at most for the proof of the size it claimed, then
			// dropped as a liar, having sent nothing that counted.
			os := sourceInfo(info, "other")
			if n := otherCalls.Load(); n > 1 || other.offered.Load() != 1 || len(os) != 1 || os[0].Bytes != 0 || !strings.Contains(os[0].Dropped, "claimed") {
				t.Errorf("source with another size: offered %d times, asked %d ranges, listed %v", other.offered.Load(), n, os)
			}
			e.finder.checkAllClosed()
		})
	}
}

func TestDownloadCancel(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		e := newDLEnv(t)
		_, link := e.file("f.bin", 8*GroupSize)
		var calls atomic.Int64
		slow := newTestSource("slow")
		slow.wrap = gated(2, &calls)
		e.finder.set(slow)
		m := e.manager(Tuning{RangeGroups: 1, Window: 2, StallTimeout: time.Minute})
		if _, err := m.Add(link, ""); err != nil {
			t.Fatal(err)
		}
		waitInfo(t, m, link.Root, "some groups", func(i DownloadInfo) bool { return i.Verified == 2 })
		part := m.partialPath(link.Root)
		if _, err := os.Stat(part); err != nil {
			t.Fatal(err)
		}
		if err := m.Cancel(link.Root); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("partial file after Cancel: %v", err)
		}
		if info, ok := m.Info(link.Root); ok {
			t.Errorf("Info after Cancel: %+v", info)
		}
		if l := m.List(); len(l) != 0 {
			t.Errorf("List after Cancel: %+v", l)
		}
		e.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketDownloads).Get(link.Root[:]) != nil || tx.Bucket(bucketBitmaps).Get(link.Root[:]) != nil {
				t.Error("records left after Cancel")
			}
			return nil
		})
		if err := m.Cancel(link.Root); !errors.Is(err, ErrNoSuchDownload) {
			t.Errorf("second Cancel: %v", err)
		}
		e.finder.checkAllClosed()
	})
	t.Run("unknown", func(t *testing.T) {
		e := newDLEnv(t)
		m := e.manager(testTuning)
		if err := m.Cancel([32]byte{1}); !errors.Is(err, ErrNoSuchDownload) {
			t.Errorf("Cancel of an unknown root: %v", err)
		}
	})
	t.Run("done", func(t *testing.T) {
		e := newDLEnv(t)
		data, link := e.file("f.bin", GroupSize+1)
		e.finder.set(newTestSource("a"))
		m := e.manager(testTuning)
		if _, err := m.Add(link, ""); err != nil {
			t.Fatal(err)
		}
		info := waitDone(t, m, link.Root)
		if err := m.Cancel(link.Root); err != nil {
			t.Fatal(err)
		}
		if _, ok := m.Info(link.Root); ok {
			t.Error("Info after Cancel of a finished download")
		}
		if got, err := os.ReadFile(info.Path); err != nil || !bytes.Equal(got, data) {
			t.Errorf("finished file after Cancel: %v", err)
		}
	})
}

// addAgain adds link, retrying while the run of its last download, which
// said it was done, has not let go yet (Add says ErrDownloadExists then).
func addAgain(t *testing.T, m *Manager, link Link) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := m.Add(link, "")
		if err == nil {
			return
		}
		if !errors.Is(err, ErrDownloadExists) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDownloadLinkSizeIsAClaim: a link's size is a claim that the source's
// proof overrules: a link that says 0 bytes for a root that is not the
// empty file's, or 20 GiB for a file of 1 MiB, still gets the file, and
// no space is reserved for the wrong size. Without a source nothing is
// saved.
func TestDownloadLinkSizeIsAClaim(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int64
		source bool
	}{
		{"zero", 0, true},
		{"20 GiB", 20 << 30, true},
		{"zero without source", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLEnv(t)
			data, link := e.file("f.bin", 4*GroupSize+7)
			link.Size = tc.size
			if tc.source {
				e.finder.set(newTestSource("a"))
			}
			m := e.manager(testTuning)
			if _, err := m.Add(link, ""); err != nil {
				t.Fatal(err)
			}
			if !tc.source {
				info := waitInfo(t, m, link.Root, "searching", func(i DownloadInfo) bool { return i.State == StateSearching })
				if info.SizeProven {
					t.Errorf("size proven without a source: %+v", info)
				}
				if _, err := os.Stat(m.partialPath(link.Root)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a partial file for an unproven size: %v", err)
				}
				if _, err := os.Stat(filepath.Join(e.dir, "f.bin")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a file was saved: %v", err)
				}
				return
			}
			info := waitDone(t, m, link.Root)
			checkDone(t, m, info, data)
			if !info.SizeProven {
				t.Errorf("info: %+v", info)
			}
		})
	}
}

func TestDownloadEmptyFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source bool
		known  bool
	}{
		{"no source", false, true},
		{"with source", true, true},
		{"bare root", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDLEnv(t)
			_, link := e.file("empty.txt", 0)
			if link.Root != EmptyRoot {
				t.Fatalf("root of the empty file: %x", link.Root)
			}
			if !tc.known {
				link = Link{Root: EmptyRoot, Name: "empty.txt", Size: UnknownSize}
			}
			if tc.source {
				e.finder.set(newTestSource("a"))
			}
			m := e.manager(testTuning)
			if _, err := m.Add(link, ""); err != nil {
				t.Fatal(err)
			}
			info := waitDone(t, m, link.Root)
			checkDone(t, m, info, []byte{})
			if info.Groups != 0 || info.Path != filepath.Join(e.dir, "empty.txt") {
				t.Errorf("info: %+v", info)
			}
			e.finder.checkAllClosed()
		})
	}
}

// TestDownloadCloseStopsAll closes a Manager in the middle of two downloads
// and checks that nothing of the engine is left running.
func TestDownloadCloseStopsAll(t *testing.T) {
	before := goleak.IgnoreCurrent()
	e := newDLEnv(t)
	var calls atomic.Int64
	slow := newTestSource("slow")
	// It proves the sizes (the last groups), then stalls.
	slow.wrap = func(p *Peer, _ func()) Fetcher {
		return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
			if first+count == Groups(size) {
				return p.GetRange(ctx, root, size, first, count, buf)
			}
			calls.Add(1)
			<-ctx.Done()
			return nil, nil, ctx.Err()
		})
	}
	e.finder.set(slow)
	_, l1 := e.file("a.bin", 4*GroupSize)
	_, l2 := e.file("b.bin", 6*GroupSize)
	m := e.manager(Tuning{RangeGroups: 1, Window: 4, StallTimeout: time.Minute, SourceRefresh: 10 * time.Millisecond})
	for _, l := range []Link{l1, l2} {
		if _, err := m.Add(l, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []Link{l1, l2} {
		waitInfo(t, m, l.Root, "active", func(i DownloadInfo) bool { return i.State == StateActive })
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.Add(l1, ""); !errors.Is(err, ErrManagerClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	e.finder.checkAllClosed()
	e.finder.close()
	goleak.VerifyNone(t, before)
}

// TestDownloadSourceCap: a file offered by more sources than
// DownloadMaxSources completes with at most that many attached; the rest
// are closed unused.
func TestDownloadSourceCap(t *testing.T) {
	e := newDLEnv(t)
	data, link := e.file("popular.bin", dlSize)
	var srcs []*testSource
	for i := range DownloadMaxSources + 4 {
		srcs = append(srcs, newTestSource(fmt.Sprintf("s%02d", i)))
	}
	e.finder.set(srcs...)
	m := e.manager(testTuning)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	info := waitDone(t, m, link.Root)
	checkDone(t, m, info, data)
	e.finder.mu.Lock()
	handed := len(e.finder.handed)
	e.finder.mu.Unlock()
	if handed <= DownloadMaxSources {
		t.Fatalf("the finder handed out %d sources: the cap (%d) was never reached", handed, DownloadMaxSources)
	}
	if n := len(info.Sources); n > DownloadMaxSources {
		t.Errorf("%d sources attached, want at most %d", n, DownloadMaxSources)
	}
	e.finder.checkAllClosed()
}
