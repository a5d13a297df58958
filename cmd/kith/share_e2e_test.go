package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kith/node/api"
)

// TestShareBrowseGet drives sharing end to end through the binary: share a
// folder, find it in one's own index, browse it from a friend, and download
// it in the foreground with the progress bar.
func TestShareBrowseGet(t *testing.T) {
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

	music := filepath.Join(dir, "Music")
	os.MkdirAll(filepath.Join(music, "Live"), 0o700)
	content := bytes.Repeat([]byte("kith "), 700_000) // 3.5 MB
	os.WriteFile(filepath.Join(music, "Live", "Wembley 1986.flac"), content, 0o600)
	os.WriteFile(filepath.Join(music, "notes.txt"), []byte("setlist"), 0o600)
	out := mustKith(t, "share", "add", music, "--home", homeA)
	if !strings.Contains(out, "2 files") {
		t.Fatalf("share add: %s", out)
	}
	if out := mustKith(t, "share", "find", "wemb", "--home", homeA); !strings.Contains(out, "Wembley 1986.flac") {
		t.Fatalf("share find: %s", out)
	}
	var top, live api.BrowseListing
	json.Unmarshal([]byte(mustKith(t, "browse", "alice", "--json", "--home", homeB)), &top)
	if len(top.Entries) != 1 || top.Entries[0].Name != "Music" || !top.Entries[0].Dir {
		t.Fatalf("browse top: %+v", top)
	}
	json.Unmarshal([]byte(mustKith(t, "browse", "alice", "Music/Live", "--json", "--home", homeB)), &live)
	if len(live.Entries) != 1 || live.Entries[0].Link == "" {
		t.Fatalf("browse Music/Live: %+v", live)
	}
	if r := kith(t, "browse", "alice", "Music/../..", "--home", homeB); r.code != 1 {
		t.Fatalf("browse with ..: %+v", r)
	}

	to := filepath.Join(dir, "got")
	os.MkdirAll(to, 0o700)
	r := kith(t, "get", live.Entries[0].Link, "--to", to, "--home", homeB)
	if r.code != 0 || !strings.Contains(r.stdout, "BLAKE3 root verified") {
		t.Fatalf("get: %+v", r)
	}
	got, err := os.ReadFile(filepath.Join(to, "Wembley 1986.flac"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("downloaded file differs (%v)", err)
	}
	var ds []api.DownloadInfo
	json.Unmarshal([]byte(mustKith(t, "downloads", "--json", "--home", homeB)), &ds)
	if len(ds) != 1 || ds[0].State != api.StateDone {
		t.Fatalf("downloads: %+v", ds)
	}
	// A second get of the same file says it is there already; with
	// --again it lands beside the first, never over it.
	r = kith(t, "get", live.Entries[0].Link, "--to", to, "--home", homeB)
	if r.code != 1 || !strings.Contains(r.stderr, "already have") || !strings.Contains(r.stderr, filepath.Join(to, "Wembley 1986.flac")) {
		t.Fatalf("second get: %+v", r)
	}
	r = kith(t, "get", live.Entries[0].Link, "--to", to, "--again", "--home", homeB)
	if r.code != 0 {
		t.Fatalf("second get --again: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(to, "Wembley 1986 (2).flac")); err != nil {
		t.Fatalf("second copy: %v", err)
	}
	for _, c := range []struct{ link, want string }{
		{"kith://file/zz", "root"},
		{"http://example.com/file", "kith://file/"},
	} {
		if r := kith(t, "get", c.link, "--home", homeB); r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("get %q: %+v", c.link, r)
		}
	}
	da.stop(t)
	db.stop(t)
}
