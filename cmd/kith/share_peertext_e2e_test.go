package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"

	"kith/node/api"
	"kith/share"
)

// checkSafe fails the test if out holds a hostile character, and unless it
// shows each of want as an escape.
func checkSafe(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, h := range hostile {
		if h == "\r" {
			continue // kith get's progress bar redraws its line with it
		}
		if strings.Contains(out, h) {
			t.Errorf("%s printed %q raw:\n%q", what, h, out)
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not show %s:\n%q", what, w, out)
		}
	}
}

// TestSharePeerTextEscaped: file and folder names a friend chose, download
// names and a friend's error messages are printed with their control and
// bidi characters escaped, by browse, get, downloads and share find.
func TestSharePeerTextEscaped(t *testing.T) {
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

	// Names the scanner takes (it refuses C0 controls such as ESC).
	shared := filepath.Join(dir, "music")
	os.MkdirAll(filepath.Join(shared, "\u202eevil"), 0o700)
	os.WriteFile(filepath.Join(shared, "\u009b2Jclear.txt"), []byte("c1"), 0o600)
	os.WriteFile(filepath.Join(shared, "invoice\u202efdp.exe"), []byte("bidi"), 0o600)
	os.WriteFile(filepath.Join(shared, "\u202eevil", "x.txt"), []byte("x"), 0o600)
	mustKith(t, "share", "add", shared, "--home", homeA)

	out := mustKith(t, "browse", "alice", "music", "--home", homeB)
	checkSafe(t, "browse", out, `\u009b2Jclear.txt`, `invoice\u202efdp.exe`, `\u202eevil/`)
	checkSafe(t, "share find", mustKith(t, "share", "find", "invoice", "--home", homeA), `invoice\u202efdp.exe`)

	var l api.BrowseListing
	json.Unmarshal([]byte(mustKith(t, "browse", "alice", "music", "--json", "--home", homeB)), &l)
	var link string
	for _, e := range l.Entries {
		if strings.HasPrefix(e.Name, "invoice") {
			link = e.Link
		}
	}
	if link == "" {
		t.Fatalf("no invoice in %+v", l.Entries)
	}
	to := filepath.Join(dir, "got")
	os.MkdirAll(to, 0o700)
	r := kith(t, "get", link, "--to", to, "--home", homeB)
	if r.code != 0 {
		t.Fatalf("get: %+v", r)
	}
	checkSafe(t, "get", r.stdout+r.stderr, `invoice\u202efdp.exe`)
	checkSafe(t, "downloads", mustKith(t, "downloads", "--home", homeB), `invoice\u202efdp.exe`)

	// A friend whose errors carry escape sequences.
	mallory, _ := inProcessFriend(t, homeB, "mallory")
	var wg sync.WaitGroup
	mallory.Host().SetStreamHandler(share.ProtocolID, func(st network.Stream) {
		wg.Add(1)
		defer wg.Done()
		defer st.Close()
		r, w := share.NewReader(st), share.NewWriter(st)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			w.WriteFrame(share.Frame{ID: f.ID, Msg: share.ErrorReply{Code: share.CodeNotFound, Message: "\x1b]0;owned\x07\x1b[2J\u009b31m\u202e"}})
		}
	})
	t.Cleanup(func() {
		mallory.Host().RemoveStreamHandler(share.ProtocolID)
		wg.Wait()
	})
	r = kith(t, "browse", "mallory", "--home", homeB)
	if r.code != 1 {
		t.Fatalf("browse of a friend that answers errors: %+v", r)
	}
	checkSafe(t, "browse error", r.stdout+r.stderr, `\x1b]0;owned\x07\x1b[2J\u009b31m\u202e`)
	da.stop(t)
	db.stop(t)
}
