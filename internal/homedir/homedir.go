// Package homedir is the layout of a kith node's home folder: the names of
// its files, where the default home is, whether a folder holds a node, and
// which process runs its daemon. The daemon (package node) and the API
// client (package node/api) both need it, and neither may import the other.
package homedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Files in a node's home folder.
const (
	KeyFile    = "identity.key"
	DBFile     = "kith.db"
	SocketFile = "api.sock"
	// PIDFile holds the running daemon's process ID, so a command that
	// cannot reach the API can tell a daemon without a socket from none.
	PIDFile = "kith.pid"
)

// Env names the environment variable that picks the home folder.
const Env = "KITH_HOME"

// ErrNoHome means the home folder holds no initialised node.
var ErrNoHome = errors.New("no kith node here")

// ErrIdentityMissing means the home has a database but its identity.key
// is gone: the node's friends know it by that key, so it must be
// restored, not replaced by accident.
var ErrIdentityMissing = errors.New("the node's identity key is missing")

// Default returns $KITH_HOME, else $XDG_DATA_HOME/kith, else
// ~/.local/share/kith.
func Default() string {
	if h := os.Getenv(Env); h != "" {
		return h
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "kith")
	}
	if u, err := os.UserHomeDir(); err == nil {
		return filepath.Join(u, ".local", "share", "kith")
	}
	return ".kith"
}

// Check reports whether home holds an initialised node, with an error
// that tells what to do if not.
func Check(home string) error {
	if _, err := os.Stat(filepath.Join(home, KeyFile)); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(home, DBFile)); err == nil {
			return MissingIdentity(home)
		}
		return fmt.Errorf("%w in %s: create one with `kith init --name NICK` (or pick another with --home)", ErrNoHome, home)
	} else if err != nil {
		return fmt.Errorf("checking home: %w", err)
	}
	return nil
}

// MissingIdentity is the error for a home with a database and no key.
func MissingIdentity(home string) error {
	return fmt.Errorf("%w: %s has kith.db but no identity.key: restore identity.key from a backup (your friends know this node by it); "+
		"to start again with a new identity, keeping friends, shares and chat, run `kith init --new-identity` and send your friends the new invite",
		ErrIdentityMissing, home)
}

// WritePID records this process as home's daemon.
func WritePID(home string) error {
	return os.WriteFile(filepath.Join(home, PIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// DaemonPID returns the process ID of home's running daemon, or 0 if no
// live process is recorded.
func DaemonPID(home string) int {
	b, err := os.ReadFile(filepath.Join(home, PIDFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return 0
	}
	return pid
}
