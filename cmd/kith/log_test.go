package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Peer text that reaches a log line is escaped: the log may be read on a
// terminal.
func TestLogEscapesPeerText(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&b, slog.LevelDebug)
	log.Info("file from friend", slog.String("name", "a\x1b]0;pwned\x07\u009b2J\u202eexe.txt"))
	if out := b.String(); strings.ContainsAny(out, "\x1b\x07\u009b\u202e") {
		t.Fatalf("raw control characters in the log: %q", out)
	}
}
