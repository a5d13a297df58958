package share

import "time"

// Scope says who asks for a file, and so which shares may answer: a friend
// over a direct stream sees browsable shares only; anyone through an
// anonymous tunnel sees anonymous shares only. Nothing else is ever listed
// or served.
type Scope int

// Scopes.
const (
	// ScopeFriend: a direct friend; browsable shares.
	ScopeFriend Scope = iota + 1
	// ScopeAnonymous: a tunnel peer; anonymous shares.
	ScopeAnonymous
	// ScopeLocal: the node's own user (CLI, API); every share.
	ScopeLocal
)

// SharedFile is one indexed file as the server needs it to answer requests.
// Path comes from the node's own scan of its shares, never from a peer.
type SharedFile struct {
	// Path is the absolute local path of the file, for logs.
	Path string
	// Dir is the share folder that holds the file and Rel the path inside
	// it (slash-separated) of the file to read: for a symlink, of the file
	// the link resolved to when it was indexed. The server opens Rel
	// beneath Dir following no symlink. If Dir is "", Path is opened as
	// Rel beneath its own folder.
	Dir, Rel string
	// Name is the file's base name.
	Name string
	// ModTime is the modification time seen at indexing; the server refuses
	// to serve a file whose size or mtime changed since (it was edited, so
	// its outboard no longer proves it).
	ModTime time.Time
	// Tree is the file's root, size and outboard.
	Tree Tree
}

// Catalog is what the share server needs from the index. Implementations
// must be safe for concurrent use.
type Catalog interface {
	// Lookup finds a file with root that is shared in scope.
	Lookup(root [32]byte, scope Scope) (SharedFile, bool)
	// Browse lists one folder of the browsable shares: path "" lists the
	// shared folders themselves (by their browse names), "music/live" a
	// folder inside the share called "music". At most MaxBrowseEntries
	// entries from offset; More says whether the listing goes on.
	Browse(path string, offset int) (BrowseReply, error)
}
