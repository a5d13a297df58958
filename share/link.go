package share

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// UnknownSize is Link.Size when a link does not say the size, as with a bare
// root.
const UnknownSize = -1

// linkPrefix starts every file link String writes, folderLinkPrefix every
// folder link.
const (
	linkPrefix       = "kith://file/"
	folderLinkPrefix = "kith://folder/"
)

// Link names a file for people to pass around:
//
//	kith://file/<root hex>?name=<name>&size=<bytes>
//
// Only the root identifies the file; name and size are hints for the
// downloader (the size is checked by verification, since every group is
// proven against the root under that size).
//
// A folder link, kith://folder/<root hex>?name=<name>, names a folder by
// the root of its Manifest (see folder.go); Folder is then set.
type Link struct {
	// Root is the file's BLAKE3 root.
	Root [32]byte
	// Name is the suggested file name, or "" if unknown. It is a single
	// path element: ParseLink rejects separators, "." and "..".
	Name string
	// Size is the file size in bytes, or UnknownSize.
	Size int64
	// Folder is set for a kith://folder/ link: Root is a manifest's.
	Folder bool
}

// ParseLink parses a kith://file/ or kith://folder/ link or a bare 64-digit hex root, with
// surrounding spaces ignored. The name and size parameters are optional;
// unknown parameters are ignored so that later versions may add some. Errors
// wrap ErrLinkTooLong, ErrBadScheme, ErrBadRoot, ErrBadSize, ErrFileTooLarge,
// ErrBadName or ErrBadLink.
func ParseLink(s string) (Link, error) {
	if len(s) > MaxLinkLen {
		return Link{}, fmt.Errorf("parsing link: %w", ErrLinkTooLong)
	}
	s = strings.TrimSpace(s)
	if !strings.Contains(s, ":") {
		root, err := parseRoot(s)
		if err != nil {
			return Link{}, fmt.Errorf("parsing link: %w", err)
		}
		return Link{Root: root, Size: UnknownSize}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return Link{}, fmt.Errorf("parsing link: %w", ErrBadLink)
	}
	folder := strings.EqualFold(u.Host, "folder")
	if u.Scheme != "kith" || u.Opaque != "" || !strings.EqualFold(u.Host, "file") && !folder {
		return Link{}, fmt.Errorf("parsing link: %w", ErrBadScheme)
	}
	if u.User != nil || u.Fragment != "" || u.RawFragment != "" || u.ForceQuery && u.RawQuery == "" {
		return Link{}, fmt.Errorf("parsing link: %w", ErrBadLink)
	}
	root, err := parseRoot(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return Link{}, fmt.Errorf("parsing link: %w", err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Link{}, fmt.Errorf("parsing link: %w", ErrBadLink)
	}
	l := Link{Root: root, Size: UnknownSize, Folder: folder}
	if v, ok := q["name"]; ok {
		if len(v) != 1 {
			return Link{}, fmt.Errorf("parsing link: %w: repeated name", ErrBadLink)
		}
		if err := CheckName(v[0]); err != nil {
			return Link{}, fmt.Errorf("parsing link: %w", err)
		}
		l.Name = v[0]
	}
	if v, ok := q["size"]; ok {
		if len(v) != 1 {
			return Link{}, fmt.Errorf("parsing link: %w: repeated size", ErrBadLink)
		}
		if l.Size, err = parseSize(v[0]); err != nil {
			return Link{}, fmt.Errorf("parsing link: %w", err)
		}
	}
	return l, nil
}

// String returns the link in its kith://file/ (or kith://folder/) form,
// leaving out a name of "" and a size of UnknownSize.
func (l Link) String() string {
	var b strings.Builder
	if l.Folder {
		b.WriteString(folderLinkPrefix)
	} else {
		b.WriteString(linkPrefix)
	}
	b.WriteString(hex.EncodeToString(l.Root[:]))
	q := url.Values{}
	if l.Name != "" {
		q.Set("name", l.Name)
	}
	if l.Size >= 0 {
		q.Set("size", strconv.FormatInt(l.Size, 10))
	}
	if len(q) > 0 {
		b.WriteByte('?')
		b.WriteString(q.Encode()) // sorted: name, then size
	}
	return b.String()
}

func parseRoot(s string) ([32]byte, error) {
	var root [32]byte
	if len(s) != 2*len(root) {
		return root, ErrBadRoot
	}
	if _, err := hex.Decode(root[:], []byte(s)); err != nil {
		return root, ErrBadRoot
	}
	return root, nil
}

func parseSize(s string) (int64, error) {
	if s == "" || len(s) > 19 || strings.Trim(s, "0123456789") != "" {
		return 0, ErrBadSize
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrBadSize
	}
	if n > MaxFileSize {
		return 0, ErrFileTooLarge
	}
	return n, nil
}

// CheckName returns an error wrapping ErrBadName unless name can safely be
// used as one element of a local path: non-empty, at most MaxNameLen bytes
// of UTF-8, without slash, backslash or control characters, and neither "."
// nor "..".
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || name == "." || name == ".." || !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, r := range name {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q", ErrBadName, name)
		}
	}
	return nil
}
