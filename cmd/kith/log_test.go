package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/internal/logging"
)

// Peer text that reaches a log line is escaped, in both formats: the log
// may be read on a terminal.
func TestLogEscapesPeerText(t *testing.T) {
	for _, format := range []string{logging.FormatText, logging.FormatJSON} {
		var b bytes.Buffer
		log, err := logging.New(&b, format, slog.LevelDebug)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("file from friend", slog.String("name", "a\x1b]0;pwned\x07\u009b2J\u202eexe.txt"))
		if out := b.String(); strings.ContainsAny(out, "\x1b\x07\u009b\u202e") {
			t.Fatalf("%s: raw control characters in the log: %q", format, out)
		}
	}
}

// With --log-level debug, libp2p's own debug lines reach the daemon's log
// in its format (here JSON, each line an object with a "logger"), and at
// the default level they do not.
func TestLibp2pLogsThroughDaemonLog(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ana")
	mustKith(t, "init", "--name", "ana", "--home", home)
	d := startDaemon(t, home, "--log-level", "debug", "--log-format", "json")
	time.Sleep(time.Second)
	d.stop(t)
	libp2p := 0
	for _, line := range strings.Split(strings.TrimSpace(d.log.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue // kith up's own lines to the terminal
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line that is not JSON: %q", line)
		}
		if rec["level"] == "DEBUG" && rec["logger"] != nil {
			libp2p++
		}
	}
	if libp2p == 0 {
		t.Fatalf("no debug line from a libp2p logger:\n%s", d.log)
	}
	home2 := filepath.Join(t.TempDir(), "ben")
	mustKith(t, "init", "--name", "ben", "--home", home2)
	d = startDaemon(t, home2)
	time.Sleep(time.Second)
	d.stop(t)
	if strings.Contains(d.log.String(), "level=DEBUG") {
		t.Fatalf("debug lines at the default level:\n%s", d.log)
	}
}
