package chat

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"

	"kith/internal/store"
)

func openTestIdentities(t *testing.T, path string) *Identities {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ids, err := OpenIdentities(db)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestIdentityNewAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kith.db")
	ids := openTestIdentities(t, path)
	if _, err := ids.Resolve(""); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("default identity of none: %v", err)
	}
	alice, err := ids.New("  alice ")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Nick != "alice" {
		t.Fatalf("nick %q", alice.Nick)
	}
	bob, err := ids.New("bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "   ", strings.Repeat("n", MaxNickSize+1), "a\x00b", "\xff"} {
		if _, err := ids.New(bad); !errors.Is(err, ErrBadNick) {
			t.Errorf("New(%q): %v", bad, err)
		}
	}
	for ref, want := range map[string]ChatID{"": alice.ID, "bob": bob.ID, alice.ID.String(): alice.ID, bob.ID.String()[:10]: bob.ID} {
		got, err := ids.Resolve(ref)
		if err != nil || got.ID != want {
			t.Errorf("Resolve(%q) = %v, %v", ref, got.ID.Short(), err)
		}
	}
	if _, err := ids.Resolve("carol"); !errors.Is(err, ErrUnknownIdentity) {
		t.Errorf("Resolve(carol): %v", err)
	}

	// Reopened: same identities, same keys.
	msg := []byte("signed before a restart")
	sig := alice.Sign(msg)
	ids.db.Close()
	ids2 := openTestIdentities(t, path)
	if len(ids2.List()) != 2 {
		t.Fatalf("%d identities after reopening", len(ids2.List()))
	}
	again, ok := ids2.Get(alice.ID)
	if !ok || !bytes.Equal(again.Sign(msg), sig) {
		t.Fatal("identity key changed across a reopen")
	}
}

func TestChatIDText(t *testing.T) {
	ids := openTestIdentities(t, filepath.Join(t.TempDir(), "kith.db"))
	id, err := ids.New("x")
	if err != nil {
		t.Fatal(err)
	}
	s := id.ID.String()
	if len(s) != 57 || !strings.HasPrefix(s, "kc") {
		t.Fatalf("text form %q", s)
	}
	got, err := ParseChatID("  " + s + "\n")
	if err != nil || got != id.ID {
		t.Fatalf("ParseChatID: %v", err)
	}
	typo := []byte(s)
	if typo[20] == 'a' {
		typo[20] = 'b'
	} else {
		typo[20] = 'a'
	}
	for _, bad := range []string{"", "kc", s[:56], s + "a", "kx" + s[2:], string(typo), strings.ToUpper(s), "kc" + strings.Repeat("1", 55)} {
		if _, err := ParseChatID(bad); !errors.Is(err, ErrBadChatID) {
			t.Errorf("ParseChatID(%q): %v", bad, err)
		}
	}
}

// TestDHKeyMatchesChatID: the X25519 key an identity uses in distant chat
// is the Montgomery form of its chat id, which is what a peer expects.
func TestDHKeyMatchesChatID(t *testing.T) {
	ids := openTestIdentities(t, filepath.Join(t.TempDir(), "kith.db"))
	for range 5 {
		id, err := ids.New("k")
		if err != nil {
			t.Fatal(err)
		}
		k := id.DHKey()
		pub, err := curve25519.X25519(k.Private, curve25519.Basepoint)
		if err != nil {
			t.Fatal(err)
		}
		want, err := id.ID.X25519()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pub, want[:]) || !bytes.Equal(k.Public, want[:]) {
			t.Fatal("X25519 key of the identity does not match its chat id")
		}
	}
}
