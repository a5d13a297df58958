package node

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"kith/node/api"
)

// With a permissive umask, the API socket is never at its path with a
// mode another local user could connect through: the attack raced the
// chmod that used to follow the listen.
func TestAPISocketNeverLoose(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ana")
	if _, err := Init(home, "ana"); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	sock := filepath.Join(home, SocketFile)
	var seen bool
	apiListenHook = func(tmp string) {
		seen = true
		// The moment the old code was exposed: listening, before chmod.
		if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket at %s before it was secured (err %v)", sock, err)
		}
		fi, err := os.Stat(filepath.Dir(tmp))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("socket made in a folder of mode %v (%v), want 0700", fi.Mode().Perm(), err)
		}
	}
	defer func() { apiListenHook = nil }()
	n := startHome(t, home)
	if !seen {
		t.Fatal("the socket was not made through listenPrivate")
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket mode %v, want 0600 socket", fi.Mode())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(home, ".api-*")); len(leftovers) > 0 {
		t.Fatalf("temporary socket folders left: %v", leftovers)
	}
	if _, err := api.NewClient(home).Status(t.Context()); err != nil {
		t.Fatalf("API through the placed socket: %v", err)
	}
	n.Close()
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

// A home that others may enter is tightened to 0700 at start.
func TestLooseHomeTightened(t *testing.T) {
	home := filepath.Join(t.TempDir(), "ben")
	if _, err := Init(home, "ben"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	startHome(t, home)
	fi, err := os.Stat(home)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("home mode %v after start, want 0700", fi.Mode().Perm())
	}
}
