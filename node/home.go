package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/libp2p/go-libp2p/core/crypto"
	bolt "go.etcd.io/bbolt"

	"kith/f2f"
	"kith/internal/homedir"
	"kith/internal/store"
	"kith/internal/version"
	"kith/share"
)

// Files in a node's home folder (see package internal/homedir, which the
// API client shares).
const (
	KeyFile    = homedir.KeyFile
	DBFile     = homedir.DBFile
	SocketFile = homedir.SocketFile
	// PIDFile holds the running daemon's process ID, so a command that
	// cannot reach the API can tell a daemon without a socket from none.
	PIDFile = homedir.PIDFile
)

// HomeEnv names the environment variable that picks the home folder.
const HomeEnv = homedir.Env

// ErrNoHome means the home folder holds no initialised node.
var ErrNoHome = homedir.ErrNoHome

// ErrIdentityMissing means the home has a database but its identity.key
// is gone: the node's friends know it by that key, so it must be
// restored, not replaced by accident.
var ErrIdentityMissing = homedir.ErrIdentityMissing

// ErrIdentityDamaged means identity.key cannot be read as a node key.
var ErrIdentityDamaged = errors.New("the node's identity key is damaged")

// DefaultHome returns $KITH_HOME, else $XDG_DATA_HOME/kith, else
// ~/.local/share/kith.
func DefaultHome() string { return homedir.Default() }

// Settings are the node's own choices, kept in the database (`kith
// config`). A flag of `kith up` overrides one for that run only.
type Settings struct {
	Name string `json:"name"`
	Port int    `json:"port"` // listen port for TCP and QUIC on all interfaces
	// Listen replaces the default listen addresses (every interface on
	// Port) when set.
	Listen []string `json:"listen,omitempty"`
	// MaxUpload and MaxDownload cap share traffic, bytes per second; 0 is
	// no cap.
	MaxUpload   int64 `json:"max_upload,omitempty"`
	MaxDownload int64 `json:"max_download,omitempty"`
	// Downloads is the downloads folder; "" is HOME/downloads.
	Downloads string `json:"downloads,omitempty"`
	// NoMDNS keeps the node off the LAN's mDNS.
	NoMDNS bool `json:"no_mdns,omitempty"`
	// Announce are addresses given to friends besides those the node
	// finds: a forwarded port, a static address.
	Announce []string `json:"announce,omitempty"`
	// NoRelay stops the node relaying for friends.
	NoRelay bool `json:"no_relay,omitempty"`
	// NoSwarm stops the node serving files it is still downloading
	// (share.ManagerConfig.NoSwarm).
	NoSwarm bool `json:"no_swarm,omitempty"`
	// RelayRate caps relaying for friends, bytes per second; 0 is the
	// default (f2f.DefaultRelayRate), negative is no cap.
	RelayRate int64 `json:"relay_rate,omitempty"`
	// NoPortMap stops UPnP / NAT-PMP port mapping.
	NoPortMap bool `json:"no_port_map,omitempty"`
	// ApproveIntroductions keeps introductions for approval.
	ApproveIntroductions bool `json:"approve_introductions,omitempty"`
	// Web is the web UI's loopback host:port, chosen at init; "off"
	// switches it off; "" (a home made before it existed) has one chosen
	// at the next `kith up`.
	Web string `json:"web,omitempty"`
}

var (
	bucketNode  = []byte("node")
	keySettings = []byte("settings")
)

// InitOptions are the choices of Init besides the nickname.
type InitOptions struct {
	// NewIdentity makes a new identity key for a home whose key was lost,
	// keeping its database. Friends must then add the node's new invite.
	NewIdentity bool
	// Port is the listen port (TCP and QUIC) to keep, say one forwarded
	// on the router; 0 picks a free one.
	Port int
}

// Init creates a node in home: the folder (0700), a new identity key, the
// database with its schema version, and settings with a free listen port.
// It refuses to touch a home that already has an identity, and a home
// whose identity was lost (unless opts.NewIdentity).
func Init(home, name string, opts ...InitOptions) (Settings, error) {
	var o InitOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if err := f2f.CheckName(name); err != nil {
		return Settings{}, err
	}
	if err := os.MkdirAll(home, HomeMode); err != nil {
		return Settings{}, fmt.Errorf("creating home: %w", err)
	}
	keyPath, dbPath := filepath.Join(home, KeyFile), filepath.Join(home, DBFile)
	if _, err := os.Stat(keyPath); err == nil {
		return Settings{}, fmt.Errorf("%w at %s: kith init never replaces an identity", f2f.ErrIdentityExists, keyPath)
	}
	_, dbErr := os.Stat(dbPath)
	existing := dbErr == nil
	if existing && !o.NewIdentity {
		return Settings{}, missingIdentity(home)
	}
	db, err := store.Open(dbPath, store.Options{Writer: version.Get().String()})
	if err != nil {
		return Settings{}, err
	}
	defer db.Close()
	if o.Port < 0 || o.Port > 65535 {
		return Settings{}, fmt.Errorf("%w: port %d: want 1-65535", ErrBadSetting, o.Port)
	}
	s, err := loadSettings(db)
	if !existing || err != nil {
		port := o.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return Settings{}, err
			}
		}
		s = Settings{Name: name, Port: port, Web: chooseWebAddr()}
	} else if name != "" {
		s.Name = name
	}
	if o.Port != 0 {
		s.Port = o.Port
	}
	if err := saveSettings(db, s); err != nil {
		return Settings{}, err
	}
	if _, err := f2f.CreateIdentity(keyPath); err != nil {
		return Settings{}, err
	}
	return s, nil
}

func missingIdentity(home string) error { return homedir.MissingIdentity(home) }

// HomeMode is the mode of a node's home folder: nobody but its user may
// look in it, so the API socket, the database and the key are out of
// other local users' reach even before their own modes are checked.
const HomeMode = 0o700

// loadIdentity reads the node key, tightening a key file that others may
// read, and says clearly what to do with one that is damaged.
func loadIdentity(home string) (crypto.PrivKey, error) {
	path := filepath.Join(home, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Getuid() {
		return nil, fmt.Errorf("%s belongs to another user (uid %d): run kith as that user", path, uid)
	}
	if fi.Mode().Perm()&^f2f.KeyFileMode != 0 {
		if err := os.Chmod(path, f2f.KeyFileMode); err != nil {
			return nil, fmt.Errorf("tightening %s to 0600: %w", path, err)
		}
	}
	key, err := f2f.LoadIdentity(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (%v): restore it from a backup; to start again with a new identity, move it away and run `kith init --new-identity`, then send your friends the new invite",
			ErrIdentityDamaged, path, err)
	}
	return key, nil
}

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
func CheckHome(home string) error { return homedir.Check(home) }

// errNoSettings means the database holds no node settings (a repair
// could not save them).
var errNoSettings = errors.New("node settings missing")

func loadSettings(db *bolt.DB) (Settings, error) {
	var s Settings
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNode)
		if b == nil {
			return errNoSettings
		}
		v := b.Get(keySettings)
		if v == nil {
			return errNoSettings
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

// Repair copies what can be read of home's damaged kith.db into a new
// database and keeps the damaged file beside it (see store.Repair). The
// daemon must not be running.
func Repair(home string) (store.RepairReport, error) {
	path := filepath.Join(home, DBFile)
	if _, err := os.Stat(path); err != nil {
		return store.RepairReport{}, fmt.Errorf("%w in %s: there is no kith.db to repair", ErrNoHome, home)
	}
	rep, err := store.Repair(path)
	if errors.Is(err, store.ErrLocked) {
		return rep, fmt.Errorf("%w: stop it (`kith up` in another terminal) before `kith repair`", ErrDaemonRunning)
	}
	return rep, err
}

// writePID records this process as home's daemon.
func writePID(home string) error { return homedir.WritePID(home) }

// DaemonPID returns the process ID of home's running daemon, or 0 if no
// live process is recorded.
func DaemonPID(home string) int { return homedir.DaemonPID(home) }

// ParseRate reads a rate such as 64MiB, 10MB or 0 (unlimited) as bytes per
// second, for the rate flags of `kith up`.
func ParseRate(s string) (int64, error) { return share.ParseRate(s) }
