package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// TestShareTripUps covers what tripped users up (issue 17): getting a file
// one has already says so instead of making "name (2).ext"; a wrong path in
// `kith browse` names the path, not "peer: not found"; `share add --json`
// and `get --detach --json` print the object they made.
func TestShareTripUps(t *testing.T) {
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	da := startDaemon(t, homeA)
	db := startDaemon(t, homeB)
	var idA, idB api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	mustKith(t, "friend", "add", idB.Invite, "--home", homeA)
	mustKith(t, "friend", "add", idA.Invite, "--home", homeB)
	waitFriend(t, homeB, idA.PeerID, true)

	films := filepath.Join(dir, "Movies")
	os.MkdirAll(films, 0o700)
	content := bytes.Repeat([]byte("frame "), 200_000)
	os.WriteFile(filepath.Join(films, "Heat.mkv"), content, 0o600)

	// share add --json prints the share and its scan.
	var added api.AddShareResponse
	out := mustKith(t, "share", "add", films, "--json", "--home", homeA)
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("share add --json printed %q: %v", out, err)
	}
	if added.Share.Dir != films || added.Share.Files != 1 || !added.Share.Browsable || added.Scan.Hashed != 1 {
		t.Fatalf("share add --json: %+v", added)
	}

	// A path bob does not share: the error names it.
	r := kith(t, "browse", "alice", "Films", "--home", homeB)
	if r.code != 1 || !strings.Contains(r.stderr, `"Films"`) || !strings.Contains(r.stderr, "alice") || strings.Contains(r.stderr, "peer: not found") {
		t.Fatalf("browse of a path alice does not share: %+v", r)
	}

	var files []api.FileInfo
	json.Unmarshal([]byte(mustKith(t, "share", "ls", "--links", "--json", "--home", homeA)), &files)
	if len(files) != 1 {
		t.Fatalf("share ls --links: %+v", files)
	}
	link := files[0].Link

	// Alice has the file in her share: getting it says where.
	r = kith(t, "get", link, "--home", homeA)
	if r.code != 1 || !strings.Contains(r.stderr, "already have") || !strings.Contains(r.stderr, filepath.Join(films, "Heat.mkv")) {
		t.Fatalf("get of a file in one's own share: %+v", r)
	}

	// get --detach --json prints the download it queued.
	to := filepath.Join(dir, "got")
	os.MkdirAll(to, 0o700)
	var queued api.DownloadInfo
	out = mustKith(t, "get", link, "--to", to, "--detach", "--json", "--home", homeB)
	if err := json.Unmarshal([]byte(out), &queued); err != nil {
		t.Fatalf("get --detach --json printed %q: %v", out, err)
	}
	if queued.Root != files[0].Root || queued.Name != "Heat.mkv" || queued.Dir != to {
		t.Fatalf("get --detach --json: %+v", queued)
	}
	// Once it is done, a get into the same folder says it is there, and
	// --again makes a second copy (printed as JSON when it ends).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ds []api.DownloadInfo
		json.Unmarshal([]byte(mustKith(t, "downloads", "--json", "--home", homeB)), &ds)
		if len(ds) == 1 && ds[0].State == api.StateDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("download did not end: %+v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	first := filepath.Join(to, "Heat.mkv")
	r = kith(t, "get", link, "--to", to, "--home", homeB)
	if r.code != 1 || !strings.Contains(r.stderr, "already have") || !strings.Contains(r.stderr, first) || !strings.Contains(r.stderr, "--again") {
		t.Fatalf("get of a file downloaded before: %+v", r)
	}
	var again api.DownloadInfo
	out = mustKith(t, "get", link, "--to", to, "--again", "--json", "--home", homeB)
	if err := json.Unmarshal([]byte(out), &again); err != nil {
		t.Fatalf("get --again --json printed %q: %v", out, err)
	}
	if again.State != api.StateDone || again.Path != filepath.Join(to, "Heat (2).mkv") {
		t.Fatalf("get --again --json: %+v", again)
	}
	if got, err := os.ReadFile(again.Path); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("second copy differs (%v)", err)
	}
	da.stop(t)
	db.stop(t)
}
