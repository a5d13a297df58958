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

// TestSearchAndAnonymousGet drives anonymous sharing through the binary:
// bob shares a folder anonymously only; alice finds its file with
// `kith search` and fetches it with `kith get --anonymous` through a tunnel.
func TestSearchAndAnonymousGet(t *testing.T) {
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	startDaemon(t, homeA)
	startDaemon(t, homeB)
	var idA, idB api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	mustKith(t, "friend", "add", idB.Invite, "--home", homeA)
	mustKith(t, "friend", "add", idA.Invite, "--home", homeB)
	waitFriend(t, homeA, idB.PeerID, true)

	films := filepath.Join(dir, "Films")
	os.MkdirAll(films, 0o700)
	content := bytes.Repeat([]byte("tunnel "), 500_000) // 3.5 MB
	os.WriteFile(filepath.Join(films, "Porto by Night.mkv"), content, 0o600)
	// A name that reads "invoiceexe.pdf" where bidi overrides are obeyed.
	const hostile = "invoice\u202efdp.exe"
	os.WriteFile(filepath.Join(films, hostile), []byte("not a pdf"), 0o600)
	mustKith(t, "share", "add", films, "--anonymous", "--home", homeB)

	// The router link comes up shortly after the friend connection.
	var hits []api.SearchHit
	for try := 0; try < 5 && len(hits) == 0; try++ {
		out := mustKith(t, "search", "porto", "night", "--timeout", "3s", "--json", "--home", homeA)
		dec := json.NewDecoder(strings.NewReader(out))
		for {
			var h api.SearchHit
			if dec.Decode(&h) != nil {
				break
			}
			hits = append(hits, h)
		}
	}
	if len(hits) != 1 || hits[0].Name != "Porto by Night.mkv" || hits[0].Sources != 1 {
		t.Fatalf("search: %+v", hits)
	}
	if out := mustKith(t, "search", "porto", "--timeout", "3s", "--home", homeA); !strings.Contains(out, hits[0].Link) {
		t.Fatalf("search (text): %s", out)
	}
	// --json keeps a link's & as it is (no \u0026).
	if r := kith(t, "search", "porto", "--timeout", "3s", "--json", "--home", homeA); !strings.Contains(r.stdout, "&size=") || strings.Contains(r.stdout, `\u0026`) {
		t.Fatalf("search --json escaped the link: %s", r.stdout)
	}
	// A search stops early, and says why: at the number of files wanted,
	// or when no new file came for a while after one did; else at its
	// timeout.
	r := kith(t, "search", "porto", "--timeout", "60s", "--max", "1", "--home", homeA)
	if r.code != 0 || !strings.Contains(r.stdout, hits[0].Link) || !strings.Contains(r.stderr, "1 file(s) found; stopped after") || !strings.Contains(r.stderr, "(--max)") {
		t.Fatalf("search --max 1: %+v", r)
	}
	r = kith(t, "search", "porto", "--timeout", "60s", "--idle", "500ms", "--home", homeA)
	if r.code != 0 || !strings.Contains(r.stdout, hits[0].Link) || !strings.Contains(r.stderr, "no new file for 500ms (--idle)") {
		t.Fatalf("search --idle: %+v", r)
	}
	r = kith(t, "search", "nothing-like-this", "--timeout", "2s", "--home", homeA)
	if r.code != 0 || !strings.Contains(r.stderr, "0 file(s) found in 2s (--timeout)") {
		t.Fatalf("search without results: %+v", r)
	}
	// Names from peers print through peertext: the override shows as an
	// escape, never raw; --json keeps the name as it is, in valid JSON.
	out := mustKith(t, "search", "invoice", "--timeout", "3s", "--home", homeA)
	if !strings.Contains(out, `invoice\u202efdp.exe`) || strings.ContainsRune(out, '\u202e') {
		t.Fatalf("search (text) of a name with a bidi override: %q", out)
	}
	out = mustKith(t, "search", "invoice", "--timeout", "3s", "--json", "--home", homeA)
	var h api.SearchHit
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &h); err != nil || h.Name != hostile {
		t.Fatalf("search --json of a name with a bidi override: %q (%v)", out, err)
	}
	if r := kith(t, "search", "", "--home", homeA); r.code == 0 {
		t.Fatalf("empty search succeeded: %+v", r)
	}

	to := filepath.Join(dir, "got")
	os.MkdirAll(to, 0o700)
	r = kith(t, "get", "--anonymous", hits[0].Link, "--to", to, "--home", homeA)
	if r.code != 0 || !strings.Contains(r.stdout, "BLAKE3 root verified") {
		t.Fatalf("get --anonymous: %+v", r)
	}
	got, err := os.ReadFile(filepath.Join(to, "Porto by Night.mkv"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("downloaded file differs (%v)", err)
	}
}
