package node

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kith/share"
)

// TestShareSymlinkSwap attacks a real server: after a share is indexed, a
// folder in it is replaced by a symlink to a folder outside the share, and
// a file by a symlink to a file outside it; the outside files are private
// (0600) and have the indexed files' sizes and mtimes, so the server's
// size-and-mtime check passes. A friend asking for the indexed roots must
// not get a byte of them.
func TestShareSymlinkSwap(t *testing.T) {
	ctx := context.Background()
	a, _ := testNode(t, "alice")
	b, _ := testNode(t, "bob")
	befriend(t, a, b)
	base := t.TempDir()
	pub, secret := filepath.Join(base, "pub"), filepath.Join(base, "secret")
	const size = 5000
	folderTree := writeRandomFile(t, filepath.Join(pub, "docs", "report.txt"), size, 1)
	fileTree := writeRandomFile(t, filepath.Join(pub, "notes.txt"), size, 2)
	shareDir(t, a, pub, share.ShareFlags{Browsable: true})

	// The private files outside the share, same sizes and mtimes.
	private := map[string][]byte{
		filepath.Join(secret, "docs", "report.txt"): bytes.Repeat([]byte("S"), size),
		filepath.Join(secret, "notes.txt"):          bytes.Repeat([]byte("T"), size),
	}
	for p, data := range private {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, pair := range [][2]string{
		{filepath.Join(pub, "docs", "report.txt"), filepath.Join(secret, "docs", "report.txt")},
		{filepath.Join(pub, "notes.txt"), filepath.Join(secret, "notes.txt")},
	} {
		fi, err := os.Stat(pair[0])
		if err != nil {
			t.Fatal(err)
		}
		os.Chtimes(pair[1], fi.ModTime(), fi.ModTime())
	}
	// The swap.
	if err := os.RemoveAll(filepath.Join(pub, "docs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(secret, "docs"), filepath.Join(pub, "docs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(pub, "notes.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(secret, "notes.txt"), filepath.Join(pub, "notes.txt")); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 10*time.Second, "friends online", func() bool { return isOnline(b, a) })
	p, err := b.share.openPeer(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for name, tree := range map[string]share.Tree{"folder swapped": folderTree, "file swapped": fileTree} {
		data, _, err := p.GetRange(ctx, tree.Root, size, 0, 1, nil)
		if err == nil {
			for _, priv := range private {
				if bytes.Equal(data, priv) {
					t.Errorf("%s: the server sent a private file from outside the share", name)
				}
			}
			t.Errorf("%s: GetRange answered with %d bytes", name, len(data))
			continue
		}
		t.Logf("%s: GetRange refused: %v", name, err)
	}
}
