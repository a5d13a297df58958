package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"kith/f2f"
	"kith/internal/store"
	"kith/internal/version"
)

// Files in a node's home folder.
const (
	KeyFile    = "identity.key"
	DBFile     = "kith.db"
	SocketFile = "api.sock"
)

// HomeEnv names the environment variable that picks the home folder.
const HomeEnv = "KITH_HOME"

// ErrNoHome means the home folder holds no initialised node.
var ErrNoHome = errors.New("no kith node here")

// DefaultHome returns $KITH_HOME, else $XDG_DATA_HOME/kith, else
// ~/.local/share/kith.
func DefaultHome() string {
	if h := os.Getenv(HomeEnv); h != "" {
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

// Settings are the node's own choices, kept in the database.
type Settings struct {
	Name string `json:"name"`
	Port int    `json:"port"` // listen port for TCP and QUIC on all interfaces
}

var (
	bucketNode  = []byte("node")
	keySettings = []byte("settings")
)

// Init creates a node in home: the folder (0700), a new identity key, the
// database with its schema version, and settings with a free listen port.
// It refuses to touch a home that already has an identity.
func Init(home, name string) (Settings, error) {
	if err := f2f.CheckName(name); err != nil {
		return Settings{}, err
	}
	if err := os.MkdirAll(home, HomeMode); err != nil {
		return Settings{}, fmt.Errorf("creating home: %w", err)
	}
	keyPath := filepath.Join(home, KeyFile)
	if _, err := os.Stat(keyPath); err == nil {
		return Settings{}, fmt.Errorf("%w at %s: kith init never replaces an identity", f2f.ErrIdentityExists, keyPath)
	}
	port, err := freePort()
	if err != nil {
		return Settings{}, err
	}
	s := Settings{Name: name, Port: port}
	db, err := store.Open(filepath.Join(home, DBFile), store.Options{Writer: version.Get().String()})
	if err != nil {
		return Settings{}, err
	}
	defer db.Close()
	if err := saveSettings(db, s); err != nil {
		return Settings{}, err
	}
	if _, err := f2f.CreateIdentity(keyPath); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// HomeMode is the mode of a node's home folder: nobody but its user may
// look in it, so the API socket, the database and the key are out of
// other local users' reach even before their own modes are checked.
const HomeMode = 0o700

// secureHome tightens a home folder that others may enter or read, and
// refuses one that belongs to another user.
func secureHome(home string) (tightened bool, err error) {
	fi, err := os.Stat(home)
	if err != nil {
		return false, fmt.Errorf("checking home: %w", err)
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Getuid() {
		return false, fmt.Errorf("home %s belongs to another user (uid %d): run kith as that user or pick another --home", home, uid)
	}
	if fi.Mode().Perm()&^HomeMode == 0 {
		return false, nil
	}
	if err := os.Chmod(home, HomeMode); err != nil {
		return false, fmt.Errorf("tightening home %s to 0700: %w", home, err)
	}
	return true, nil
}

// CheckHome reports whether home holds an initialised node, with an error
// that tells what to do if not.
func CheckHome(home string) error {
	if _, err := os.Stat(filepath.Join(home, KeyFile)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w in %s: create one with `kith init --name NICK` (or pick another with --home)", ErrNoHome, home)
	} else if err != nil {
		return fmt.Errorf("checking home: %w", err)
	}
	return nil
}

func loadSettings(db *bolt.DB) (Settings, error) {
	var s Settings
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNode)
		if b == nil {
			return errors.New("node settings missing")
		}
		v := b.Get(keySettings)
		if v == nil {
			return errors.New("node settings missing")
		}
		return json.Unmarshal(v, &s)
	})
	if err != nil {
		return s, fmt.Errorf("loading settings: %w", err)
	}
	return s, nil
}

func saveSettings(db *bolt.DB, s Settings) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketNode)
		if err != nil {
			return err
		}
		return b.Put(keySettings, v)
	})
	if err != nil {
		return fmt.Errorf("saving settings: %w", err)
	}
	return nil
}

// freePort finds a port free for both TCP and UDP on all interfaces.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: no port free for both TCP and UDP")
}

// DefaultListenAddrs are where `kith up` listens without --listen: every
// interface, IPv4 and IPv6, TCP and QUIC, on the stored port.
func DefaultListenAddrs(port int) []string {
	p := strconv.Itoa(port)
	return []string{
		"/ip4/0.0.0.0/tcp/" + p,
		"/ip4/0.0.0.0/udp/" + p + "/quic-v1",
		"/ip6/::/tcp/" + p,
		"/ip6/::/udp/" + p + "/quic-v1",
	}
}
