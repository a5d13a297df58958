package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"kith/node/api"
)

// hostile are characters that must never reach a terminal as themselves:
// ESC and BEL (escape sequences), CSI (U+009B, a C1 control), a
// right-to-left override and a carriage return. The CLI tests of every
// command that prints peer text check their output for them.
var hostile = []string{"\x1b", "\a", "\u009b", "\u202e", "\r"}

// hostileNick is a nickname a friend may put in its invite: printable by
// the invite's rules, but with a C1 CSI (U+009B starts an escape sequence
// on many terminals) and a right-to-left override.
const hostileNick = "eve\u009b2J\u202etxt.exe"

// A friend's nickname reaches `friend ls` and `friend add` on the other
// side as escapes, never as the raw characters that drive a terminal or
// reorder text; --json keeps it as it came.
func TestFriendNamesPrintedSafely(t *testing.T) {
	dir := t.TempDir()
	homeA, homeE := filepath.Join(dir, "ana"), filepath.Join(dir, "eve")
	mustKith(t, "init", "--name", "ana", "--home", homeA)
	mustKith(t, "init", "--name", hostileNick, "--home", homeE)
	startDaemon(t, homeA)
	startDaemon(t, homeE)
	var idE api.InviteInfo
	if err := json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeE)), &idE); err != nil {
		t.Fatal(err)
	}
	outs := []string{mustKith(t, "friend", "add", idE.Invite, "--home", homeA)}
	outs = append(outs, mustKith(t, "friend", "ls", "--home", homeA))
	for _, out := range outs {
		if strings.ContainsAny(out, "\u009b\u202e") {
			t.Fatalf("raw control characters printed: %q", out)
		}
		if !strings.Contains(out, `eve\u009b2J\u202etxt.exe`) {
			t.Fatalf("the name is not shown as escapes: %q", out)
		}
	}
	var fs []api.FriendInfo
	if err := json.Unmarshal([]byte(mustKith(t, "friend", "ls", "--json", "--home", homeA)), &fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Name != hostileNick {
		t.Fatalf("--json changed the name: %+v", fs)
	}
}
