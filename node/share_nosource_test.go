package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/share"
)

// TestDownloadSourceChangedFile: the only source of a download changes the
// file on its disk half way (its server then refuses it: the outboard no
// longer proves it). The download must not stay "searching" forever: after
// Tuning.NoSourceAfter its state says there is no source, and why; and
// once the source has the file again (the bytes put back and rescanned) it
// goes on and completes, keeping what it had.
func TestDownloadSourceChangedFile(t *testing.T) {
	start := func(name string, edit func(*Config)) *Node {
		home := filepath.Join(t.TempDir(), name)
		if _, err := Init(home, name); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(home)
		edit(&cfg)
		n, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	alice := start("alice", func(c *Config) { c.MaxUpload = 1 << 20 })
	bob := start("bob", func(c *Config) {
		c.DownloadTuning = share.Tuning{NoSourceAfter: 2 * time.Second, SourceRefresh: 500 * time.Millisecond}
	})
	befriend(t, alice, bob)
	dir := filepath.Join(t.TempDir(), "share")
	path := filepath.Join(dir, "film.mkv")
	const size = 8 << 20
	tree := writeRandomFile(t, path, size, 11)
	original, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	shareDir(t, alice, dir, share.ShareFlags{Browsable: true})
	waitFor(t, 10*time.Second, "friends online", func() bool { return isOnline(bob, alice) && isOnline(alice, bob) })

	link := share.Link{Root: tree.Root, Name: "film.mkv", Size: size}
	if _, err := bob.Downloads().Add(link, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a few groups verified", func() bool {
		info, _ := bob.Downloads().Info(tree.Root)
		return info.Verified >= 2
	})
	// Alice's copy changes: same size, other bytes, another mtime.
	changed := append([]byte(nil), original...)
	for i := range changed {
		changed[i] ^= 0x5a
	}
	if err := os.WriteFile(path, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now(), time.Now().Add(time.Minute))

	var info share.DownloadInfo
	waitFor(t, 30*time.Second, "the no-source state", func() bool {
		info, _ = bob.Downloads().Info(tree.Root)
		return info.State == share.StateNoSource || info.State == share.StateDone || info.State == share.StateFailed
	})
	if info.State != share.StateNoSource || !strings.Contains(info.Reason, "no source") {
		t.Fatalf("with its only source's file changed: state %s, reason %q; want %s with a reason", info.State, info.Reason, share.StateNoSource)
	}
	if info.Verified == 0 {
		t.Errorf("progress lost: %+v", info)
	}
	// The source has the file again.
	if err := os.WriteFile(path, original, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Index().Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	info = waitDownload(t, bob, tree.Root, time.Minute)
	if info.State != share.StateDone {
		t.Fatalf("after the source came back: %+v", info)
	}
	if !sameFile(t, info.Path, path) {
		t.Fatal("downloaded file differs")
	}
}
