package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// TestDistantCLI: a message from a chat id bob never answered is a
// request: listed by `kith distant requests`, not by `kith distant ls`
// (which points to the requests), accepted with `kith distant accept`
// and deleted with `kith distant rm`.
func TestDistantCLI(t *testing.T) {
	homeA, homeB, da, db, _, _ := chatPair(t)
	alice := strings.Fields(mustKith(t, "identity", "new", "alice-pseudo", "--home", homeA))[1]
	bob := strings.Fields(mustKith(t, "identity", "new", "bob-pseudo", "--home", homeB))[1]
	mustKith(t, "distant", "send", bob, "hello from nowhere", "--home", homeA)
	requests := func() []api.DistantConversation {
		var ds []api.DistantConversation
		if err := json.Unmarshal([]byte(mustKith(t, "distant", "requests", "--json", "--home", homeB)), &ds); err != nil {
			t.Fatal(err)
		}
		return ds
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never arrived")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ds := requests(); len(ds) != 1 || ds[0].Remote != alice || !ds[0].Request || ds[0].Messages != 1 {
		t.Fatalf("requests: %+v", ds)
	}
	if out := mustKith(t, "distant", "requests", "--home", homeB); !strings.Contains(out, alice) || !strings.Contains(out, "hello from nowhere") {
		t.Fatalf("distant requests: %s", out)
	}
	if out := mustKith(t, "distant", "ls", "--home", homeB); !strings.Contains(out, "1 requests") {
		t.Fatalf("distant ls with a request waiting: %s", out)
	}
	mustKith(t, "distant", "accept", alice, "--home", homeB)
	if out := mustKith(t, "distant", "ls", "--home", homeB); !strings.Contains(out, alice) {
		t.Fatalf("distant ls after accept: %s", out)
	}
	if ds := requests(); len(ds) != 0 {
		t.Fatalf("requests after accept: %+v", ds)
	}
	// Alice's side: her conversation is accepted (she wrote in it).
	if out := mustKith(t, "distant", "ls", "--home", homeA); !strings.Contains(out, bob) {
		t.Fatalf("alice's distant ls: %s", out)
	}
	mustKith(t, "distant", "rm", alice, "--home", homeB)
	if out := mustKith(t, "distant", "ls", "--home", homeB); !strings.Contains(out, "no distant conversations") {
		t.Fatalf("distant ls after rm: %s", out)
	}
	if r := kith(t, "distant", "rm", alice, "--home", homeB); r.code != 1 || !strings.Contains(r.stderr, "no such distant conversation") {
		t.Fatalf("rm of a deleted conversation: exit %d, %q", r.code, r.stderr)
	}
	if r := kith(t, "distant", "accept", "kc123", "--home", homeB); r.code != 1 || !strings.Contains(r.stderr, "not a chat id") {
		t.Fatalf("accept of a bad chat id: exit %d, %q", r.code, r.stderr)
	}
	da.stop(t)
	db.stop(t)
}
