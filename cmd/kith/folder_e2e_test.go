package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kith/node/api"
	"kith/share"
)

// TestFolderGetCrashResume is issue 16's acceptance 1: a 40-file folder in
// three levels (KITH_FOLDER_MIB in all: 96 MiB by default, 1024 for the
// acceptance run), shared by two friends, is fetched with `kith get
// FOLDERLINK`; the downloading daemon is killed with SIGKILL halfway and
// started again; the folder completes with every file's root verified,
// and nothing verified before the kill is fetched again: files done before
// it are not fetched at all, and the others resume from their bitmaps.
func TestFolderGetCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("rate-limited transfer; run without -short")
	}
	total := int64(96)
	if v, err := strconv.ParseInt(os.Getenv("KITH_FOLDER_MIB"), 10, 64); err == nil && v > 0 {
		total = v
	}
	total <<= 20
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig")
	rels := make([]string, 40)
	sizes := map[string]int64{}
	var sum int64
	for i := range rels {
		rels[i] = fmt.Sprintf("disc%d/side%d/track%02d.flac", i%3, i%2, i)
		if i%7 == 0 {
			rels[i] = fmt.Sprintf("disc%d/notes%02d.txt", i%3, i)
		}
		// Sizes from 0.5 to 1.5 times the mean, adding up to total.
		sizes[rels[i]] = total / 40 * int64(50+i*100/39) / 100
		sum += sizes[rels[i]]
	}
	sizes[rels[39]] += total - sum
	for i, rel := range rels {
		p := filepath.Join(orig, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o700)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(f, rand.NewChaCha8([32]byte{byte(i), 16}), sizes[rel])
		f.Close()
	}

	homeB := filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	db := startDaemon(t, homeB)
	var idB api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	var folderLink string
	for _, name := range []string{"alice", "carol"} {
		home := filepath.Join(dir, name)
		mustKith(t, "init", "--name", name, "--home", home)
		// Each uploads at 8 MiB/s: the folder takes total/16 MiB/s.
		startDaemon(t, home, "--max-upload", "8MiB")
		var id api.InviteInfo
		json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", home)), &id)
		mustKith(t, "friend", "add", idB.Invite, "--home", home)
		mustKith(t, "friend", "add", id.Invite, "--home", homeB)
		waitFriend(t, homeB, id.PeerID, true)
		// The same folder, hard-linked, under the same name: the same
		// manifest, so the same folder link.
		shared := filepath.Join(dir, name+"-shares", "album")
		for _, rel := range rels {
			dst := filepath.Join(shared, filepath.FromSlash(rel))
			os.MkdirAll(filepath.Dir(dst), 0o700)
			if err := os.Link(filepath.Join(orig, filepath.FromSlash(rel)), dst); err != nil {
				t.Fatal(err)
			}
		}
		mustKith(t, "share", "add", shared, "--home", home)
		var l string
		for _, s := range strings.Fields(mustKith(t, "share", "ls", "--links", "--home", home)) {
			if strings.HasPrefix(s, "kith://folder/") && strings.HasSuffix(s, "name=album") {
				l = s
			}
		}
		if l == "" || folderLink != "" && l != folderLink {
			t.Fatalf("%s's folder link %q (the other's %q)", name, l, folderLink)
		}
		folderLink = l
	}
	out := filepath.Join(dir, "got")
	os.MkdirAll(out, 0o700)
	mustKith(t, "get", folderLink, "--to", out, "--detach", "--home", homeB)

	// Kill bob once half the groups of the folder are verified.
	groups := func() (verified, all int64, byRoot map[string]api.DownloadInfo) {
		byRoot = map[string]api.DownloadInfo{}
		for _, d := range downloadsOf(t, homeB) {
			verified += d.Verified
			all += d.Groups
			byRoot[d.Root] = d
		}
		return verified, all, byRoot
	}
	var before map[string]api.DownloadInfo
	deadline := time.Now().Add(5 * time.Minute)
	for {
		v, _, by := groups()
		if v >= share.Groups(total)/2 {
			before = by
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("folder did not progress: %d groups verified", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	db.cmd.Process.Signal(syscall.SIGKILL)
	<-db.done
	db.done <- nil
	// The snapshot above is a little older than the kill: a small file
	// may have finished in between. Finished says when it did.
	killedAt := time.Now()
	doneBefore, verifiedBefore := 0, int64(0)
	for _, d := range before {
		verifiedBefore += d.Verified
		if d.State == api.StateDone {
			doneBefore++
		}
	}
	t.Logf("killed bob with %d of %d groups verified, %d files done", verifiedBefore, share.Groups(total), doneBefore)

	startDaemon(t, homeB)
	c := api.NewClient(homeB)
	var fd api.FolderDownload
	deadline = time.Now().Add(10 * time.Minute)
	for {
		fds, err := c.Folders(context.Background())
		if err == nil && len(fds) == 1 && (fds[0].State == api.StateDone || fds[0].State == api.StateFailed) {
			fd = fds[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("folder not done after the restart: %+v, %v", fds, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fd.State != api.StateDone || len(fd.Files) != 40 || fd.Size != total {
		t.Fatalf("folder: %s, %d files, %d bytes: %s", fd.State, len(fd.Files), fd.Size, fd.Error)
	}
	// The folder is listed by `kith downloads` (text) and `kith downloads
	// folders --json`.
	if out := mustKith(t, "downloads", "--home", homeB); !strings.Contains(out, fd.Root) || !strings.Contains(out, "40 of 40") {
		t.Errorf("kith downloads does not list the folder as done:\n%s", out)
	}
	var listed []api.FolderDownload
	if err := json.Unmarshal([]byte(mustKith(t, "downloads", "folders", "--json", "--home", homeB)), &listed); err != nil || len(listed) != 1 || listed[0].Root != fd.Root {
		t.Errorf("kith downloads folders --json: %+v, %v", listed, err)
	}
	_, _, after := groups()
	var resumed, fetched, dup, bad, doneGroups, allGroups int64
	for _, f := range fd.Files {
		tree, err := share.HashFile(filepath.Join(fd.Dir, filepath.FromSlash(f.Path)))
		if err != nil || hex.EncodeToString(tree.Root[:]) != f.Root {
			t.Fatalf("%s: root %x, %v; the manifest says %s", f.Path, tree.Root, err, f.Root)
		}
		b, a := before[f.Root], after[f.Root]
		allGroups += share.Groups(f.Size)
		if b.State == api.StateDone || (a.State == api.StateDone && !a.Finished.IsZero() && a.Finished.Before(killedAt)) {
			if b.State != api.StateDone {
				doneBefore++ // after the snapshot, before the kill
			}
			doneGroups += a.Groups
			if a.FetchedGroups != 0 {
				t.Errorf("%s was done before the kill, and fetched %d groups after it", f.Path, a.FetchedGroups)
			}
			continue
		}
		resumed += a.ResumedGroups
		fetched += a.FetchedGroups
		dup += a.DuplicateGroups
		bad += a.BadRanges
		if a.BadRanges > 0 {
			t.Logf("%s: %d bad groups; sources %+v", f.Path, a.BadRanges, a.Sources)
		}
		if a.ResumedGroups < b.Verified {
			t.Errorf("%s: resumed %d groups, but %d were verified before the kill", f.Path, a.ResumedGroups, b.Verified)
		}
		if a.ResumedGroups+a.FetchedGroups-a.DuplicateGroups-a.BadRanges != a.Groups {
			t.Errorf("%s: resumed %d + fetched %d - duplicates %d != %d groups", f.Path, a.ResumedGroups, a.FetchedGroups, a.DuplicateGroups, a.Groups)
		}
	}
	t.Logf("after the restart: %d files (%d groups) were done, the others resumed %d groups and fetched %d (%d duplicates, %d bad); every root verified",
		doneBefore, doneGroups, resumed, fetched, dup, bad)
	if n := doneGroups + resumed + fetched - dup - bad; n != allGroups {
		t.Errorf("done %d + resumed %d + fetched %d - duplicates %d - bad %d = %d; want the files' %d groups", doneGroups, resumed, fetched, dup, bad, n, allGroups)
	}
}
