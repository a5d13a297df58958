package share

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
)

// folderCache knows the manifest root of every folder of the node's shares
// (a share itself and each folder in it), by root and by path, rebuilt from
// the index when a share is added, removed, changed or rescanned. It keeps
// no manifest but the folderEncodings most recently served: one is made
// again from the index when a peer asks for it. A folder whose manifest
// breaks a limit (too many files) has none, and no link.
type folderCache struct {
	mu          sync.Mutex
	fingerprint string
	byRoot      map[[32]byte]*folderManifest
	byPath      map[string][32]byte // "<share dir>\x00<rel>" -> root
	recent      []*folderManifest   // with enc set, most recent last
}

// folderManifest is one folder of the shares.
type folderManifest struct {
	dir, rel  string // the share's folder, and the folder's path in it
	share     shareRecord
	name      string
	files     int
	totalSize int64
	enc       []byte // the encoding, while among recent
	tree      Tree
}

// FolderInfo is a folder of the node's shares with its link.
type FolderInfo struct {
	// Share is the share's browse name, Rel the folder's path inside it
	// ("" for the share itself).
	Share, Rel string
	// Link is the folder's kith://folder/ link.
	Link Link
	// Files and Bytes count its files, in all its subfolders.
	Files int
	Bytes int64
}

// folderKey is the byPath key of folder rel of the share dir.
func folderKey(dir, rel string) string { return dir + "\x00" + rel }

// folders returns the cache, rebuilt if the shares changed since.
func (x *Index) folders() *folderCache {
	c := &x.folderCache
	c.mu.Lock()
	defer c.mu.Unlock()
	x.mu.RLock()
	var b strings.Builder
	dirs := make([]string, 0, len(x.shares))
	for d := range x.shares {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	recs := make(map[string]shareRecord, len(dirs))
	for _, d := range dirs {
		r := x.shares[d]
		recs[d] = r
		fmt.Fprintf(&b, "%s\x00%s\x00%v%v\x00%d\x00%d\x00%d\n", d, r.Name, r.Browsable, r.Anonymous, r.Files, r.Bytes, r.LastScan.UnixNano())
	}
	x.mu.RUnlock()
	fp := b.String()
	if c.byRoot != nil && fp == c.fingerprint {
		return c
	}
	c.byRoot, c.byPath, c.recent = map[[32]byte]*folderManifest{}, map[string][32]byte{}, nil
	for _, d := range dirs {
		files, err := x.Files(d)
		if err != nil {
			continue
		}
		rec := recs[d]
		// Every folder some file lies in, the share itself included.
		rels := map[string]bool{"": true}
		for _, f := range files {
			for dir := path.Dir(f.RelPath); dir != "." && !rels[dir]; dir = path.Dir(dir) {
				rels[dir] = true
			}
		}
		for rel := range rels {
			name := rec.Name
			if rel != "" {
				name = path.Base(rel)
			}
			m := ManifestOf(name, files, rel)
			enc, err := m.Encode()
			if err != nil {
				continue // too large to be one folder link
			}
			tree, err := ManifestTree(enc)
			if err != nil {
				continue
			}
			c.byRoot[tree.Root] = &folderManifest{dir: d, rel: rel, share: rec, name: name, files: len(m.Files), totalSize: m.TotalSize()}
			c.byPath[folderKey(d, rel)] = tree.Root
		}
	}
	c.fingerprint = fp
	return c
}

// LookupFolder returns the manifest encoding and tree of the folder with
// root, if it is a folder of a share that scope may see. A manifest not
// served lately is made again from the index (a listing of the share).
func (x *Index) LookupFolder(root [32]byte, scope Scope) ([]byte, Tree, bool) {
	c := x.folders()
	c.mu.Lock()
	f, ok := c.byRoot[root]
	if !ok || !f.share.allows(scope) {
		c.mu.Unlock()
		return nil, Tree{}, false
	}
	if f.enc != nil {
		enc, tree := f.enc, f.tree
		c.mu.Unlock()
		return enc, tree, true
	}
	c.mu.Unlock()
	files, err := x.Files(f.dir)
	if err != nil {
		return nil, Tree{}, false
	}
	m := ManifestOf(f.name, files, f.rel)
	enc, err := m.Encode()
	if err != nil {
		return nil, Tree{}, false
	}
	tree, err := ManifestTree(enc)
	if err != nil || tree.Root != root {
		return nil, Tree{}, false // the share changed since: its folders have new roots
	}
	c.mu.Lock()
	f.enc, f.tree = enc, tree
	c.recent = append(c.recent, f)
	if len(c.recent) > folderEncodings {
		c.recent[0].enc, c.recent[0].tree = nil, Tree{}
		c.recent = c.recent[1:]
	}
	c.mu.Unlock()
	return enc, tree, true
}

// folderRoot returns the root of folder rel of the share dir, if it has
// a manifest.
func (x *Index) folderRoot(dir, rel string) ([32]byte, bool) {
	c := x.folders()
	c.mu.Lock()
	defer c.mu.Unlock()
	root, ok := c.byPath[folderKey(dir, rel)]
	return root, ok
}

// Folders lists the folders of the share dir (the share itself first) with
// their links, for `kith share ls --links`. An unknown folder gives
// ErrNotShared.
func (x *Index) Folders(dir string) ([]FolderInfo, error) {
	abs := lookupDir(dir)
	x.mu.RLock()
	rec, ok := x.shares[abs]
	x.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("listing folders of %s: %w", abs, ErrNotShared)
	}
	c := x.folders()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []FolderInfo
	prefix := folderKey(abs, "")
	for k, root := range c.byPath {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		f := c.byRoot[root]
		out = append(out, FolderInfo{
			Share: rec.Name, Rel: k[len(prefix):], Files: f.files, Bytes: f.totalSize,
			Link: Link{Root: root, Name: f.name, Size: UnknownSize, Folder: true},
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rel < out[j].Rel })
	return out, nil
}

// withFolderRoots fills in the folder roots of the folder entries of a
// browse reply of path p ("" or "share/sub").
func (x *Index) withFolderRoots(p string, reply BrowseReply) BrowseReply {
	name, sub, _ := strings.Cut(p, "/")
	x.mu.RLock()
	byName := map[string]string{}
	for d, r := range x.shares {
		if r.Browsable {
			byName[r.Name] = d
		}
	}
	x.mu.RUnlock()
	for i, e := range reply.Entries {
		if !e.Dir {
			continue
		}
		var dir, rel string
		if p == "" {
			dir = byName[e.Name]
		} else {
			dir, rel = byName[name], path.Join(sub, e.Name)
		}
		if dir == "" {
			continue
		}
		if root, ok := x.folderRoot(dir, rel); ok {
			reply.Entries[i].Folder = root
		}
	}
	return reply
}
