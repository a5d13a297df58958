package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kith/share"
)

// writeRandomFile writes size pseudo-random bytes to path and returns the
// file's tree.
func writeRandomFile(t testing.TB, path string, size int64, seed uint64) share.Tree {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	if _, err := io.CopyN(f, src, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tree, err := share.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// shareDir shares dir on n and waits for the scan.
func shareDir(t testing.TB, n *Node, dir string, flags share.ShareFlags) {
	t.Helper()
	if _, err := n.Index().AddShare(dir, flags); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Index().RescanShare(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
}

// linkInto hard-links file into dir (so several shares hold the same bytes
// without copying them).
func linkInto(t testing.TB, file, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(file))
	if err := os.Link(file, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// waitDownload waits until the download of root ends and returns its state.
func waitDownload(t testing.TB, n *Node, root [32]byte, d time.Duration) share.DownloadInfo {
	t.Helper()
	var info share.DownloadInfo
	deadline := time.Now().Add(d)
	for {
		info, _ = n.Downloads().Info(root)
		if info.State == share.StateDone || info.State == share.StateFailed {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("download not finished after %v: %+v", d, info)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sameFile compares two files byte for byte.
func sameFile(t testing.TB, a, b string) bool {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}

// TestDownload200MiB downloads a 200 MiB file from one friend, then from
// three friends at once, over real hosts on loopback.
func TestDownload200MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MiB transfer; run without -short")
	}
	const size = 200 << 20
	src := filepath.Join(t.TempDir(), "orig", "big file.bin")
	tree := writeRandomFile(t, src, size, 1)
	link := share.Link{Root: tree.Root, Name: "big file.bin", Size: size}

	for _, sources := range []int{1, 3} {
		t.Run(map[int]string{1: "one friend", 3: "three friends"}[sources], func(t *testing.T) {
			d, _ := testNode(t, "downloader")
			for i := range sources {
				s, _ := testNode(t, "source")
				befriend(t, d, s)
				dir := filepath.Join(t.TempDir(), "share")
				linkInto(t, src, dir)
				shareDir(t, s, dir, share.ShareFlags{Browsable: true})
				waitFor(t, 10*time.Second, "friend online", func() bool { return isOnline(d, s) && isOnline(s, d) })
				_ = i
			}
			t0 := time.Now()
			if _, err := d.Downloads().Add(link, ""); err != nil {
				t.Fatal(err)
			}
			info := waitDownload(t, d, tree.Root, 5*time.Minute)
			if info.State != share.StateDone {
				t.Fatalf("download failed: %+v", info)
			}
			t.Logf("%d source(s): %.0f MB/s; per source: %+v", sources, float64(size)/1e6/time.Since(t0).Seconds(), info.Sources)
			if len(info.Sources) != sources {
				t.Fatalf("used %d sources, want %d", len(info.Sources), sources)
			}
			for _, s := range info.Sources {
				if s.Bytes == 0 || s.Dropped != "" {
					t.Errorf("source %+v did not contribute", s)
				}
			}
			got, err := share.HashFile(info.Path)
			if err != nil || got.Root != tree.Root {
				t.Fatalf("root of the download: %x, %v; want %x", got.Root, err, tree.Root)
			}
			if !sameFile(t, src, info.Path) {
				t.Fatal("downloaded file differs from the original")
			}
		})
	}
}

// TestLyingSourceIsDropped: one friend serves a copy whose bytes were
// changed after indexing (size and mtime kept, so its server still serves it
// with the honest proofs); the downloader detects it, drops it, and
// completes from the honest friend.
func TestLyingSourceIsDropped(t *testing.T) {
	const size = 32 << 20
	d, _ := testNode(t, "downloader")
	honest, _ := testNode(t, "honest")
	liar, _ := testNode(t, "liar")
	befriend(t, d, honest)
	befriend(t, d, liar)
	src := filepath.Join(t.TempDir(), "orig", "album.flac")
	tree := writeRandomFile(t, src, size, 2)
	hdir, ldir := filepath.Join(t.TempDir(), "h"), filepath.Join(t.TempDir(), "l")
	linkInto(t, src, hdir)
	lfile := filepath.Join(ldir, "album.flac")
	if err := os.MkdirAll(ldir, 0o700); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(src)
	os.WriteFile(lfile, data, 0o600)
	shareDir(t, honest, hdir, share.ShareFlags{Browsable: true})
	shareDir(t, liar, ldir, share.ShareFlags{Browsable: true})
	// Now corrupt one byte in every group of the liar's copy, keeping its
	// size and mtime, so its index still vouches for it.
	fi, _ := os.Stat(lfile)
	for off := int64(1000); off < size; off += share.GroupSize {
		data[off] ^= 0xff
	}
	os.WriteFile(lfile, data, 0o600)
	os.Chtimes(lfile, fi.ModTime(), fi.ModTime())
	waitFor(t, 10*time.Second, "friends online", func() bool { return isOnline(d, honest) && isOnline(d, liar) })

	if _, err := d.Downloads().Add(share.Link{Root: tree.Root, Name: "album.flac", Size: size}, ""); err != nil {
		t.Fatal(err)
	}
	info := waitDownload(t, d, tree.Root, 2*time.Minute)
	if info.State != share.StateDone {
		t.Fatalf("download failed: %+v", info)
	}
	var liarSeen bool
	for _, s := range info.Sources {
		if s.Name == "liar" {
			liarSeen = true
			if s.Dropped == "" {
				t.Errorf("liar not dropped: %+v", s)
			}
		}
	}
	if !liarSeen || info.BadRanges == 0 {
		t.Fatalf("the liar was never asked (sources %+v, bad ranges %d): the test proves nothing", info.Sources, info.BadRanges)
	}
	if !sameFile(t, src, info.Path) {
		t.Fatal("a corrupted byte reached the final file")
	}
	t.Logf("liar dropped after %d bad range(s); sources: %+v", info.BadRanges, info.Sources)
}

// TestBrowseScope: friends see browsable shares only; anonymous-only files
// are neither listed nor served directly, and paths outside shares are
// refused.
func TestBrowseScope(t *testing.T) {
	ctx := context.Background()
	a, _ := testNode(t, "alice")
	b, _ := testNode(t, "bob")
	befriend(t, a, b)
	pub := filepath.Join(t.TempDir(), "public")
	anon := filepath.Join(t.TempDir(), "secret")
	pubTree := writeRandomFile(t, filepath.Join(pub, "holiday.jpg"), 100_000, 3)
	anonTree := writeRandomFile(t, filepath.Join(anon, "private.txt"), 5_000, 4)
	shareDir(t, a, pub, share.ShareFlags{Browsable: true})
	shareDir(t, a, anon, share.ShareFlags{Anonymous: true})
	waitFor(t, 10*time.Second, "friends online", func() bool { return isOnline(b, a) })

	top, err := b.Browse(ctx, "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Entries) != 1 || top.Entries[0].Name != "public" {
		t.Fatalf("top listing: %+v", top.Entries)
	}
	in, err := b.Browse(ctx, "alice", "public", 0)
	if err != nil || len(in.Entries) != 1 || in.Entries[0].Root == "" {
		t.Fatalf("public listing: %+v, %v", in, err)
	}
	for _, path := range []string{"secret", "..", "../secret", "public/../secret", "/etc", "nothing"} {
		if l, err := b.Browse(ctx, "alice", path, 0); err == nil {
			t.Errorf("browse %q was answered: %+v", path, l)
		}
	}
	// Direct requests for the anonymous file's root are refused like
	// unknown roots; the browsable one is served.
	p, err := b.share.openPeer(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Have(ctx, anonTree.Root); err == nil {
		t.Error("Have answered for an anonymous-only file")
	}
	var er share.ErrorReply
	_, _, err = p.GetRange(ctx, anonTree.Root, anonTree.Size, 0, 1, nil)
	if !errors.As(err, &er) || er.Code != share.CodeNotFound {
		t.Errorf("GetRange of an anonymous-only file: %v", err)
	}
	if _, _, err := p.GetRange(ctx, pubTree.Root, pubTree.Size, 0, 1, nil); err != nil {
		t.Errorf("GetRange of a browsable file: %v", err)
	}
}
