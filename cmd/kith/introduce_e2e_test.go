package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// TestOneStepFriendship: only B pastes an invite (A's `kith id
// --introduce`), and both end up friends, connected. The invite works
// once: C pasting it after B is refused and becomes nobody's friend; a
// stranger D that lists A but holds no token gets no connection.
func TestOneStepFriendship(t *testing.T) {
	dir := t.TempDir()
	homes := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d"} {
		homes[n] = filepath.Join(dir, n)
		mustKith(t, "init", "--name", n, "--home", homes[n])
		startDaemon(t, homes[n])
	}
	var inv api.InviteInfo
	if err := json.Unmarshal([]byte(mustKith(t, "id", "--introduce", "--expires", "1h", "--json", "--home", homes["a"])), &inv); err != nil {
		t.Fatal(err)
	}
	if !inv.Introduce || inv.Expires.IsZero() {
		t.Fatalf("not an introduction invite: %+v", inv)
	}
	out := mustKith(t, "friend", "add", inv.Invite, "--home", homes["b"])
	if !strings.Contains(out, "you are friends now") {
		t.Fatalf("friend add of an introduction: %s", out)
	}
	idB := inviteOf(t, homes["b"]).PeerID
	waitFriend(t, homes["a"], idB, true)
	waitFriend(t, homes["b"], inv.PeerID, true)

	// The same invite again, by another node: refused, nobody added.
	r := kith(t, "friend", "add", inv.Invite, "--home", homes["c"])
	if r.code != 1 || !strings.Contains(r.stderr, "introduction was refused") {
		t.Fatalf("second use of the invite: %+v", r)
	}
	if fs := friendLs(t, homes["c"]); len(fs) != 0 {
		t.Fatalf("C kept the inviter as a friend after a refused introduction: %+v", fs)
	}
	if fs := friendLs(t, homes["a"]); len(fs) != 1 || fs[0].PeerID != idB {
		t.Fatalf("A's friends: %+v", fs)
	}

	// A stranger with no token: its dials are refused, it opens nothing.
	before := statusOf(t, homes["a"]).Refused
	mustKith(t, "friend", "add", inviteOf(t, homes["a"]).Invite, "--home", homes["d"])
	waitFriendState(t, homes["d"], inv.PeerID, 15*time.Second, "a refused dial", func(f api.FriendInfo) bool { return f.Reason != "" && !f.Online })
	if statusOf(t, homes["a"]).Refused == before {
		t.Fatal("A did not refuse the stranger")
	}
	if fs := friendLs(t, homes["a"]); len(fs) != 1 {
		t.Fatalf("A's friends after the stranger: %+v", fs)
	}
}
