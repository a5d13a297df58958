package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kith/node/api"
	"kith/share"
)

func downloadsOf(t *testing.T, home string) []api.DownloadInfo {
	t.Helper()
	var ds []api.DownloadInfo
	if err := json.Unmarshal([]byte(mustKith(t, "downloads", "--json", "--home", home)), &ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestCrashResume kills the downloading daemon with SIGKILL in the middle
// of a transfer, restarts it, and checks that the download completes
// without fetching any group that was verified before the crash.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("rate-limited transfer; run without -short")
	}
	const size = 48 << 20
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	shared := filepath.Join(dir, "films")
	os.MkdirAll(shared, 0o700)
	f, _ := os.Create(filepath.Join(shared, "film.mkv"))
	io.CopyN(f, rand.NewChaCha8([32]byte{7}), size)
	f.Close()

	// Alice uploads at 8 MiB/s, so the transfer takes about 6 s.
	da := startDaemon(t, homeA, "--max-upload", "8MiB")
	db := startDaemon(t, homeB)
	var idA, idB api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	mustKith(t, "friend", "add", idB.Invite, "--home", homeA)
	mustKith(t, "friend", "add", idA.Invite, "--home", homeB)
	waitFriend(t, homeB, idA.PeerID, true)
	mustKith(t, "share", "add", shared, "--home", homeA)
	link := strings.TrimSpace(mustKith(t, "share", "ls", "--links", "--home", homeA))
	if !strings.HasPrefix(link, "kith://file/") {
		t.Fatalf("share ls --links: %q", link)
	}
	out := filepath.Join(dir, "got")
	os.MkdirAll(out, 0o700)
	mustKith(t, "get", link, "--to", out, "--detach", "--home", homeB)

	// Kill bob once about a third of the groups are verified.
	deadline := time.Now().Add(60 * time.Second)
	var before api.DownloadInfo
	for {
		ds := downloadsOf(t, homeB)
		if len(ds) == 1 && ds[0].Verified >= ds[0].Groups/3 {
			before = ds[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("download did not progress: %+v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	db.cmd.Process.Signal(syscall.SIGKILL)
	<-db.done
	db.done <- nil
	t.Logf("killed bob with %d of %d groups verified", before.Verified, before.Groups)

	startDaemon(t, homeB)
	deadline = time.Now().Add(90 * time.Second)
	var after api.DownloadInfo
	for {
		ds := downloadsOf(t, homeB)
		if len(ds) == 1 && (ds[0].State == api.StateDone || ds[0].State == api.StateFailed) {
			after = ds[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("download did not finish after restart: %+v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.State != api.StateDone {
		t.Fatalf("download failed after restart: %+v", after)
	}
	t.Logf("after restart: resumed %d, fetched %d, duplicates %d, groups %d", after.ResumedGroups, after.FetchedGroups, after.DuplicateGroups, after.Groups)
	if after.ResumedGroups < before.Verified {
		t.Errorf("resumed %d groups, but %d were verified before the kill", after.ResumedGroups, before.Verified)
	}
	if after.ResumedGroups+after.FetchedGroups != after.Groups || after.DuplicateGroups != 0 {
		t.Errorf("groups fetched twice: resumed %d + fetched %d != %d (duplicates %d)",
			after.ResumedGroups, after.FetchedGroups, after.Groups, after.DuplicateGroups)
	}
	tree, err := share.HashFile(after.Path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := share.HashFile(filepath.Join(shared, "film.mkv"))
	if tree.Root != want.Root {
		t.Fatal("resumed download does not match the original")
	}
	da.stop(t)
}
