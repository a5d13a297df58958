package api

import "kith/internal/homedir"

// The home folder of a node, as clients find it.
const (
	// HomeEnv names the environment variable that picks the home folder.
	HomeEnv = homedir.Env
	// SocketFile is the API socket's name in the home folder.
	SocketFile = homedir.SocketFile
	// DBFile is the database's name in the home folder.
	DBFile = homedir.DBFile
)

// Errors of a home folder that holds no usable node.
var (
	// ErrNoHome means the home folder holds no initialised node.
	ErrNoHome = homedir.ErrNoHome
	// ErrIdentityMissing means the home has a database but no identity
	// key.
	ErrIdentityMissing = homedir.ErrIdentityMissing
)

// DefaultHome returns $KITH_HOME, else $XDG_DATA_HOME/kith, else
// ~/.local/share/kith.
func DefaultHome() string { return homedir.Default() }

// CheckHome reports whether home holds an initialised node, with an error
// that tells what to do if not.
func CheckHome(home string) error { return homedir.Check(home) }

// DaemonPID returns the process ID of home's running daemon, or 0 if no
// live process is recorded.
func DaemonPID(home string) int { return homedir.DaemonPID(home) }
