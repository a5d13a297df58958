package node

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"kith/share"
)

// lyingCatalog offers one file under a root that is not its own, with a
// size and an outboard made up to match: the catalog of a friend running a
// node changed to lie about sizes.
type lyingCatalog struct{ sf share.SharedFile }

func (c lyingCatalog) Lookup(root [32]byte, _ share.Scope) (share.SharedFile, bool) {
	return c.sf, root == c.sf.Tree.Root
}

func (lyingCatalog) Browse(string, int) (share.BrowseReply, error) {
	return share.BrowseReply{}, errors.New("nothing to browse")
}

// lieAboutSize makes n serve root as a sparse file of size bytes with a
// made-up outboard, instead of its own shares.
func lieAboutSize(t *testing.T, n *Node, root [32]byte, size int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "claimed.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(path)
	ob := make([]byte, share.OutboardSize(size))
	binary.LittleEndian.PutUint64(ob, uint64(size))
	srv := share.NewServer(lyingCatalog{share.SharedFile{
		Path: path, Name: "claimed.bin", ModTime: fi.ModTime(),
		Tree: share.Tree{Root: root, Size: size, Outboard: ob},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	n.Host().SetStreamHandler(share.ProtocolID, func(st network.Stream) {
		wg.Add(1)
		defer wg.Done()
		srv.Serve(ctx, st, share.ScopeFriend)
	})
	t.Cleanup(func() {
		n.Host().RemoveStreamHandler(share.ProtocolID)
		cancel()
		wg.Wait()
	})
}

// watchAllocation records the most disk space the file at path ever had
// allocated, until the test ends.
func watchAllocation(t *testing.T, path string) *atomic.Int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var st syscall.Stat_t
			if syscall.Stat(path, &st) == nil && st.Blocks*512 > peak.Load() {
				peak.Store(st.Blocks * 512)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return &peak
}

// TestShareLyingSize: a friend claims 20 GiB for a file of 8 MiB that two
// honest friends have. The downloader must not reserve disk for the claim,
// nor let it exclude the honest friends: it proves each claimed size
// against the root before it reserves anything. Once with a bare root and
// the liar the only friend online at first, once with a link that lies
// about the size too.
func TestShareLyingSize(t *testing.T) {
	const size, lie = 8 << 20, 20 << 30
	src := filepath.Join(t.TempDir(), "orig", "film.mkv")
	tree := writeRandomFile(t, src, size, 7)
	for _, tc := range []struct {
		name     string
		link     share.Link
		liarOnly bool // only the liar is a friend when the download starts
	}{
		{"bare root, liar first", share.Link{Root: tree.Root, Size: share.UnknownSize}, true},
		{"link lies too", share.Link{Root: tree.Root, Name: "film.mkv", Size: lie}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, home := testNode(t, "downloader")
			liar, _ := testNode(t, "liar")
			lieAboutSize(t, liar, tree.Root, lie)
			befriend(t, d, liar)
			var honest []*Node
			for _, name := range []string{"honest1", "honest2"} {
				h, _ := testNode(t, name)
				dir := filepath.Join(t.TempDir(), "share")
				linkInto(t, src, dir)
				shareDir(t, h, dir, share.ShareFlags{Browsable: true})
				honest = append(honest, h)
			}
			befriendHonest := func() {
				for _, h := range honest {
					befriend(t, d, h)
				}
				waitFor(t, 10*time.Second, "honest friends online", func() bool { return isOnline(d, honest[0]) && isOnline(d, honest[1]) })
			}
			waitFor(t, 10*time.Second, "liar online", func() bool { return isOnline(d, liar) })
			if !tc.liarOnly {
				befriendHonest()
			}
			peak := watchAllocation(t, filepath.Join(home, "downloads", ".partial", hex.EncodeToString(tree.Root[:])+".part"))
			if _, err := d.Downloads().Add(tc.link, ""); err != nil {
				t.Fatal(err)
			}
			if tc.liarOnly {
				waitFor(t, 20*time.Second, "the liar asked", func() bool {
					info, _ := d.Downloads().Info(tree.Root)
					return len(info.Sources) > 0
				})
				befriendHonest()
			}
			deadline := time.Now().Add(60 * time.Second)
			var info share.DownloadInfo
			for {
				info, _ = d.Downloads().Info(tree.Root)
				if info.State == share.StateDone || info.State == share.StateFailed || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("download: state %s, size %d (proven %v), sources %+v; most disk reserved %d bytes",
				info.State, info.Size, info.SizeProven, info.Sources, peak.Load())
			if peak.Load() > 2*size {
				t.Errorf("reserved %d bytes of disk for a file of %d", peak.Load(), size)
			}
			if info.State != share.StateDone {
				t.Fatalf("download did not complete: %+v", info)
			}
			if info.Size != size || !info.SizeProven || !sameFile(t, src, info.Path) {
				t.Errorf("downloaded %d bytes (proven %v) that differ from the file", info.Size, info.SizeProven)
			}
			liarSeen, honestBytes := false, int64(0)
			for _, s := range info.Sources {
				switch {
				case s.Name == "liar":
					liarSeen = true
					if s.Dropped == "" || s.Bytes != 0 {
						t.Errorf("liar not dropped: %+v", s)
					}
				case strings.HasPrefix(s.Name, "honest"):
					honestBytes += s.Bytes
				}
			}
			if !liarSeen {
				t.Error("the liar was never asked: the test proves nothing")
			}
			if honestBytes < size {
				t.Errorf("the honest friends sent %d bytes of %d", honestBytes, size)
			}
		})
	}
}
