package node

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kith/share"
)

// TestShareBrowseFlood: a friend floods Browse requests over several
// pipelined streams; it is answered no faster than share.BrowseRate (after
// share.BrowseBurst), and another friend's browse is answered meanwhile.
func TestShareBrowseFlood(t *testing.T) {
	const (
		window  = 3 * time.Second
		streams = 4
		callers = 8 // per stream
		maxReqs = 100_000
	)
	a, _ := testNode(t, "alice")
	mallory, _ := testNode(t, "mallory")
	carol, _ := testNode(t, "carol")
	befriend(t, a, mallory)
	befriend(t, a, carol)
	dir := filepath.Join(t.TempDir(), "music")
	for i := range 50 {
		writeRandomFile(t, filepath.Join(dir, "track"+string(rune('a'+i%26))+string(rune('a'+i/26))+".flac"), 1000, uint64(i))
	}
	shareDir(t, a, dir, share.ShareFlags{Browsable: true})
	waitFor(t, 10*time.Second, "friends online", func() bool { return isOnline(mallory, a) && isOnline(carol, a) })

	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var answered, sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range streams {
		p, err := mallory.share.openPeer(context.Background(), a.ID())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for range callers {
			wg.Go(func() {
				for ctx.Err() == nil && sent.Add(1) <= maxReqs {
					if _, err := p.Browse(ctx, "music", 0); err == nil {
						answered.Add(1)
					}
				}
			})
		}
	}
	// Carol browses in the middle of the flood.
	time.Sleep(window / 3)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	l, err := carol.Browse(cctx, "alice", "music", 0)
	ccancel()
	if err != nil || len(l.Entries) != 50 {
		t.Errorf("carol's browse during the flood: %d entries, %v", len(l.Entries), err)
	}
	wg.Wait()
	elapsed := time.Since(start)
	bound := int64(share.BrowseBurst + share.BrowseRate*elapsed.Seconds() + 1)
	t.Logf("mallory sent %d Browse requests in %v and was answered %d (bound %d)", min(sent.Load(), maxReqs), elapsed.Round(time.Millisecond), answered.Load(), bound)
	if n := answered.Load(); n > bound {
		t.Errorf("a flood of Browse was answered %d times in %v; at most %d", n, elapsed, bound)
	}
	if n := answered.Load(); n < share.BrowseBurst/2 {
		t.Errorf("only %d Browse requests answered: the flood did not run", n)
	}
	st := a.share.server.Stats()
	t.Logf("server: %+v", st)
	if st.Throttled == 0 {
		t.Error("no request was throttled")
	}
}
