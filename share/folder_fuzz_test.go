package share

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeManifest feeds arbitrary bytes to DecodeManifest. It must not
// panic; what it accepts must keep every rule (paths relative, clean, not
// too deep, sorted, unique without case) and encode back to the same
// bytes' listing; what it refuses must be ErrBadManifest.
func FuzzDecodeManifest(f *testing.F) {
	good := Manifest{Name: "album", Files: []ManifestFile{
		{Path: "a/b/c.flac", Size: 10, Root: [32]byte{1}},
		{Path: "cover.jpg", Size: 0, Root: EmptyRoot},
	}}
	enc, err := good.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte{})
	for _, bad := range [][]ManifestFile{
		{{Path: "../x", Root: [32]byte{2}}},
		{{Path: "/etc/passwd"}},
		{{Path: "a\x00b"}},
		{{Path: "a"}, {Path: "a"}},
		{{Path: "A"}, {Path: "a"}},
		{{Path: "a"}, {Path: "a/b"}},
		{{Path: strings.Repeat("d/", 40) + "x"}},
	} {
		f.Add(rawManifest(f, "", bad...))
	}
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		if len(m.Files) > MaxManifestFiles {
			t.Fatalf("%d files", len(m.Files))
		}
		seen := map[string]bool{}
		for i, fl := range m.Files {
			if fl.Path == "" || CheckPath(fl.Path) != nil || strings.HasPrefix(fl.Path, "/") ||
				strings.Count(fl.Path, "/") >= MaxManifestDepth || strings.ContainsRune(fl.Path, 0) {
				t.Fatalf("accepted path %q", fl.Path)
			}
			if i > 0 && m.Files[i-1].Path >= fl.Path {
				t.Fatalf("accepted unsorted %q", fl.Path)
			}
			if seen[strings.ToLower(fl.Path)] {
				t.Fatalf("accepted %q twice", fl.Path)
			}
			seen[strings.ToLower(fl.Path)] = true
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("accepted manifest does not encode: %v", err)
		}
		m2, err := DecodeManifest(again)
		if err != nil || len(m2.Files) != len(m.Files) || m2.Name != m.Name {
			t.Fatalf("re-encoding changed the listing: %v", err)
		}
	})
}
