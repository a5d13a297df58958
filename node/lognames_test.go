package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/f2f"
)

// Log lines name friends: a friend's peer ID as a value, as text or in
// its short form reads as the friend's name; a stranger's stays as it is.
func TestLogNamesFriends(t *testing.T) {
	newID := func() peer.ID {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	bob, stranger := newID(), newID()
	var buf bytes.Buffer
	h := newLogNames(slog.NewTextHandler(&buf, nil))
	h.set([]f2f.Friend{{ID: bob, Name: "bob\x1b[2J"}})
	log := slog.New(h).With("service", "test", slog.String("with", bob.ShortString()))
	log.Info("short", slog.String("peer", bob.ShortString()))
	log.Info("typed", slog.Any("peer", bob))
	log.Info("text", slog.String("peer", bob.String()))
	log.Info("group", slog.Group("g", slog.String("peer", bob.ShortString())))
	log.Info("stranger", slog.String("peer", stranger.ShortString()))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	label := `"bob\\x1b[2J (` + shortID(bob) + `)"`
	for _, l := range lines[:4] {
		if !strings.Contains(l, "peer="+label) || !strings.Contains(l, "with="+label) || strings.Contains(l, "<peer.ID") {
			t.Errorf("line does not name bob as %s: %s", label, l)
		}
	}
	if !strings.Contains(lines[4], stranger.ShortString()) {
		t.Errorf("a stranger's ID changed: %s", lines[4])
	}
}
