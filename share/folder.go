package share

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"kith/share/pb"
)

// A folder is named by its manifest: the list of its files (relative path,
// size, root), sorted by path, encoded as a pb.Manifest. The BLAKE3 root of
// that encoding is the folder's id, its kith://folder/ link; so the
// manifest is fetched and verified like any file (Have and GetRange on that
// root, see folder_fetch.go), and a folder link names exactly one listing.
//
// A manifest from a peer is untrusted: it is verified against the root
// before it is decoded, and DecodeManifest refuses it whole unless it is
// small, lists few enough files and bytes, and every path is relative,
// clean, not too deep and listed once (also when compared without case,
// for the file systems that fold it), with no file where another path
// needs a folder. Only then is anything created, beneath the target.

// Manifest is a folder's listing.
type Manifest struct {
	// Name is the folder's own name: a suggestion for the downloader, a
	// single path element or "".
	Name string
	// Files are sorted by Path, bytewise.
	Files []ManifestFile
}

// ManifestFile is one file of a folder.
type ManifestFile struct {
	// Path is relative to the folder, with "/" separators; CheckPath
	// accepts it.
	Path string
	Size int64
	Root [32]byte
}

// TotalSize returns the bytes of all of m's files.
func (m Manifest) TotalSize() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Encode returns m's canonical encoding, whose root is the folder's id. It
// sorts m.Files first and fails with ErrBadManifest if m breaks a limit.
func (m *Manifest) Encode() ([]byte, error) {
	slices.SortFunc(m.Files, func(a, b ManifestFile) int { return strings.Compare(a.Path, b.Path) })
	if err := m.check(); err != nil {
		return nil, err
	}
	w := &pb.Manifest{Name: m.Name, Files: make([]*pb.ManifestFile, len(m.Files))}
	for i, f := range m.Files {
		w.Files[i] = &pb.ManifestFile{Path: f.Path, Size: uint64(f.Size), Root: f.Root[:]}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadManifest, len(b))
	}
	return b, nil
}

// ManifestTree hashes a manifest's encoding: its Root is the folder's id.
func ManifestTree(enc []byte) (Tree, error) {
	return HashReader(bytes.NewReader(enc), int64(len(enc)))
}

// DecodeManifest decodes and checks a manifest's encoding (see the
// package's rules above). Any error wraps ErrBadManifest.
func DecodeManifest(b []byte) (Manifest, error) {
	if len(b) > MaxManifestSize {
		return Manifest{}, fmt.Errorf("%w: %d bytes", ErrBadManifest, len(b))
	}
	var w pb.Manifest
	if err := proto.Unmarshal(b, &w); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if len(w.GetFiles()) > MaxManifestFiles {
		return Manifest{}, fmt.Errorf("%w: %d files", ErrBadManifest, len(w.GetFiles()))
	}
	m := Manifest{Name: w.GetName(), Files: make([]ManifestFile, len(w.GetFiles()))}
	for i, wf := range w.GetFiles() {
		if wf.GetSize() > MaxFileSize {
			return Manifest{}, fmt.Errorf("%w: %q: %w", ErrBadManifest, wf.GetPath(), ErrFileTooLarge)
		}
		root, err := rootFromWire(wf.GetRoot())
		if err != nil {
			return Manifest{}, fmt.Errorf("%w: %q: %w", ErrBadManifest, wf.GetPath(), err)
		}
		m.Files[i] = ManifestFile{Path: wf.GetPath(), Size: int64(wf.GetSize()), Root: root}
	}
	if err := m.check(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// check applies the rules to m, whose files must be sorted.
func (m Manifest) check() error {
	if m.Name != "" {
		if err := CheckName(m.Name); err != nil {
			return fmt.Errorf("%w: folder name: %w", ErrBadManifest, err)
		}
	}
	if len(m.Files) > MaxManifestFiles {
		return fmt.Errorf("%w: %d files", ErrBadManifest, len(m.Files))
	}
	var total int64
	folded := make(map[string]bool, len(m.Files))
	dirs := map[string]bool{} // every folder some path needs, folded
	for i, f := range m.Files {
		if f.Path == "" {
			return fmt.Errorf("%w: empty path", ErrBadManifest)
		}
		if err := CheckPath(f.Path); err != nil {
			return fmt.Errorf("%w: %w", ErrBadManifest, err)
		}
		if d := strings.Count(f.Path, "/"); d >= MaxManifestDepth {
			return fmt.Errorf("%w: %q is %d folders deep", ErrBadManifest, f.Path, d)
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return fmt.Errorf("%w: %q listed out of order or twice", ErrBadManifest, f.Path)
		}
		if f.Size < 0 || f.Size > MaxFileSize {
			return fmt.Errorf("%w: %q: size %d", ErrBadManifest, f.Path, f.Size)
		}
		if total += f.Size; total > MaxFolderSize {
			return fmt.Errorf("%w: more than %s in all", ErrBadManifest, FormatSize(MaxFolderSize))
		}
		key := strings.ToLower(f.Path)
		if folded[key] {
			return fmt.Errorf("%w: %q listed twice (names differ only in case)", ErrBadManifest, f.Path)
		}
		folded[key] = true
		for j := strings.IndexByte(key, '/'); j >= 0; j = nextSlash(key, j) {
			dirs[key[:j]] = true
		}
	}
	for key := range folded {
		if dirs[key] {
			return fmt.Errorf("%w: %q is both a file and a folder", ErrBadManifest, key)
		}
	}
	return nil
}

// nextSlash returns the index of the next "/" in s after j, or -1.
func nextSlash(s string, j int) int {
	k := strings.IndexByte(s[j+1:], '/')
	if k < 0 {
		return -1
	}
	return j + 1 + k
}

// ManifestOf builds the manifest of the folder rel (slash-separated, "" for
// the share itself) of a share from its indexed files, naming it name.
// Files outside rel are left out.
func ManifestOf(name string, files []FoundFile, rel string) Manifest {
	m := Manifest{Name: name}
	prefix := ""
	if rel != "" {
		prefix = rel + "/"
	}
	for _, f := range files {
		if !strings.HasPrefix(f.RelPath, prefix) {
			continue
		}
		m.Files = append(m.Files, ManifestFile{Path: f.RelPath[len(prefix):], Size: f.Size, Root: f.Root})
	}
	return m
}
