package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"kith/chat"
	"kith/node/api"
)

func TestLobbyCLI(t *testing.T) {
	home := filepath.Join(t.TempDir(), "lobbyist")
	mustKith(t, "init", "--name", "lobbyist", "--home", home)
	d := startDaemon(t, home)

	// No identity yet: the error says how to make one.
	r := kith(t, "lobby", "create", "hall", "--home", home)
	if r.code != 1 || !strings.Contains(r.stderr, "kith identity new NICK") {
		t.Fatalf("create without identity: %d %q", r.code, r.stderr)
	}
	mustKith(t, "identity", "new", "zed", "--home", home)
	id := strings.TrimSpace(mustKith(t, "lobby", "create", "hall", "--topic", "the big room", "--home", home))
	if _, err := chat.ParseLobbyID(id); err != nil {
		t.Fatalf("create printed %q: %v", id, err)
	}
	mustKith(t, "lobby", "send", id, "hello", "hall", "--home", home)
	if out := mustKith(t, "lobby", "log", id, "--home", home); !strings.Contains(out, "zed") || !strings.Contains(out, "hello hall") || !strings.Contains(out, "joined") {
		t.Fatalf("log: %s", out)
	}
	var ms []api.LobbyMessage
	if err := json.Unmarshal([]byte(mustKith(t, "lobby", "log", id, "--json", "--home", home)), &ms); err != nil || len(ms) != 2 || ms[1].Text != "hello hall" {
		t.Fatalf("log --json: %v %+v", err, ms)
	}
	var ls api.Lobbies
	if err := json.Unmarshal([]byte(mustKith(t, "lobby", "ls", "--json", "--home", home)), &ls); err != nil || len(ls.Lobbies) != 1 || ls.Lobbies[0].Name != "hall" || !ls.Lobbies[0].Joined {
		t.Fatalf("ls --json: %v %+v", err, ls)
	}
	if out := mustKith(t, "lobby", "ls", "--home", home); !strings.Contains(out, "hall") || !strings.Contains(out, "joined") {
		t.Fatalf("ls: %s", out)
	}

	unknown := chat.NewLobbyID().String()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"send to unknown lobby", []string{"lobby", "send", unknown, "hi"}, 1, "not joined"},
		{"send empty text", []string{"lobby", "send", id, " "}, 1, "empty message"},
		{"send oversize text", []string{"lobby", "send", id, strings.Repeat("x", api.MaxTextSize+1)}, 1, "longer than"},
		{"send bad id", []string{"lobby", "send", "nope", "hi"}, 1, "not a lobby id"},
		{"send without text", []string{"lobby", "send", id}, 2, "arg"},
		{"join bad id", []string{"lobby", "join", "12345"}, 1, "not a lobby id"},
		{"join unknown lobby", []string{"lobby", "join", unknown}, 1, "unknown lobby"},
		{"join joined lobby", []string{"lobby", "join", id}, 1, "joined already"},
		{"log unknown lobby", []string{"lobby", "log", unknown}, 1, "not joined"},
		{"invite non-friend", []string{"lobby", "invite", id, "nobody"}, 1, "nobody"},
		{"create empty name", []string{"lobby", "create", ""}, 1, "bad lobby name"},
		{"create as unknown identity", []string{"lobby", "create", "x", "--as", "ghost"}, 1, "no such chat identity"},
		{"leave unknown lobby", []string{"lobby", "leave", unknown}, 1, "not joined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kith(t, append(tc.args, "--home", home)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
	mustKith(t, "lobby", "leave", id, "--home", home)
	if out := mustKith(t, "lobby", "ls", "--home", home); !strings.Contains(out, "no lobbies") {
		t.Fatalf("ls after leave: %s", out)
	}
	d.stop(t)
}
