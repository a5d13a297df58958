package share

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"kith/share/pb"
)

// folderCat is a memCatalog that also serves folder manifests.
type folderCat struct {
	*memCatalog
	fmu     sync.Mutex
	folders map[[32]byte][]byte
}

func newFolderCat() *folderCat {
	return &folderCat{memCatalog: newMemCatalog(), folders: map[[32]byte][]byte{}}
}

func (c *folderCat) LookupFolder(root [32]byte, scope Scope) ([]byte, Tree, bool) {
	c.fmu.Lock()
	enc, ok := c.folders[root]
	c.fmu.Unlock()
	if !ok || scope != ScopeFriend {
		return nil, Tree{}, false
	}
	tree, err := ManifestTree(enc)
	if err != nil {
		return nil, Tree{}, false
	}
	return enc, tree, true
}

// addManifest serves enc, as is, as a folder; it returns the folder's link.
func (c *folderCat) addManifest(t testing.TB, enc []byte) Link {
	t.Helper()
	tree, err := ManifestTree(enc)
	if err != nil {
		t.Fatal(err)
	}
	c.fmu.Lock()
	c.folders[tree.Root] = enc
	c.fmu.Unlock()
	return Link{Root: tree.Root, Size: UnknownSize, Folder: true}
}

// seeded returns n pseudo-random bytes from seed.
func seeded(seed uint64, n int64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// addFile writes data at rel beneath dir, indexes and shares it, and
// returns its manifest entry.
func (c *folderCat) addFile(t testing.TB, dir, rel string, data []byte) ManifestFile {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := HashFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	c.mu.Lock()
	c.files[tree.Root] = memFile{sf: SharedFile{Path: p, Name: filepath.Base(p), ModTime: fi.ModTime(), Tree: tree}, browsable: true}
	c.mu.Unlock()
	return ManifestFile{Path: rel, Size: int64(len(data)), Root: tree.Root}
}

// rawManifest encodes a manifest as given, unchecked and unsorted, as a
// hostile peer could.
func rawManifest(t testing.TB, name string, files ...ManifestFile) []byte {
	t.Helper()
	w := &pb.Manifest{Name: name}
	for _, f := range files {
		w.Files = append(w.Files, &pb.ManifestFile{Path: f.Path, Size: uint64(f.Size), Root: f.Root[:]})
	}
	b, err := proto.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newFolderEnv is a download test whose server also serves folders.
func newFolderEnv(t *testing.T) (*dlEnv, *folderCat) {
	t.Helper()
	e := newDLEnv(t)
	fc := newFolderCat()
	e.cat = fc.memCatalog
	e.finder = newTestFinder(t, fc, pipePair)
	e.finder.set(newTestSource("friend:a"), newTestSource("friend:b"))
	return e, fc
}

// listTree returns every path beneath dir, relative, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestFolderHostileManifest serves manifests that break the rules and
// checks that each whole folder is refused with ErrBadManifest and that
// nothing at all is written, in the downloads folder or beside it.
func TestFolderHostileManifest(t *testing.T) {
	e, fc := newFolderEnv(t)
	m := e.manager(testTuning)
	good := fc.addFile(t, e.shared, "ok.bin", seeded(1, 1000))
	f := func(p string) ManifestFile { return ManifestFile{Path: p, Size: good.Size, Root: good.Root} }
	deep := strings.Repeat("d/", MaxManifestDepth) + "x"
	many := make([]ManifestFile, MaxManifestFiles+1)
	for i := range many {
		many[i] = f(fmt.Sprintf("f%06d", i))
	}
	cases := []struct {
		name  string
		fname string
		files []ManifestFile
	}{
		{"dotdot", "", []ManifestFile{f("..")}},
		{"dotdot prefix", "", []ManifestFile{f("../escaped")}},
		{"dotdot inside", "", []ManifestFile{f("a/../../escaped")}},
		{"dot", "", []ManifestFile{f("./a")}},
		{"absolute", "", []ManifestFile{f("/tmp/escaped")}},
		{"NUL", "", []ManifestFile{f("a\x00b")}},
		{"control", "", []ManifestFile{f("a\nb")}},
		{"backslash", "", []ManifestFile{f(`..\..\escaped`)}},
		{"empty element", "", []ManifestFile{f("a//b")}},
		{"trailing slash", "", []ManifestFile{f("a/")}},
		{"empty path", "", []ManifestFile{f("")}},
		{"duplicate", "", []ManifestFile{f("a"), f("a")}},
		{"duplicate case", "", []ManifestFile{f("A"), f("a")}},
		{"file and folder", "", []ManifestFile{f("a"), f("a/b")}},
		{"unsorted", "", []ManifestFile{f("b"), f("a")}},
		{"too deep", "", []ManifestFile{f(deep)}},
		{"too many files", "", many},
		{"too many bytes", "", []ManifestFile{{Path: "a", Size: MaxFileSize, Root: good.Root}, {Path: "b", Size: MaxFileSize, Root: good.Root},
			{Path: "c", Size: MaxFolderSize - 2*MaxFileSize + 1, Root: good.Root}}},
		{"bad folder name", "..", []ManifestFile{f("a")}},
		{"folder name with slash", "a/b", []ManifestFile{f("a")}},
	}
	outside := filepath.Dir(e.dir)
	before := listTree(t, outside)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			link := fc.addManifest(t, rawManifest(t, c.fname, c.files...))
			_, err := m.AddFolder(context.Background(), link, "", AddOptions{})
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("AddFolder: %v; want ErrBadManifest", err)
			}
			if got := listTree(t, e.dir); len(got) != 1 || got[0] != ".partial" {
				t.Fatalf("downloads folder holds %q", got)
			}
			if after := listTree(t, outside); len(after) != len(before) {
				t.Fatalf("beside the downloads folder: %d paths before, %d after", len(before), len(after))
			}
			if len(m.List()) != 0 || len(m.ListFolders()) != 0 {
				t.Fatal("a download was queued")
			}
		})
	}
	// The same checks refuse an oversized manifest before it is fetched.
	big := make([]ManifestFile, 0, 40000)
	for i := range 40000 {
		big = append(big, f(fmt.Sprintf("%0120d", i)))
	}
	link := fc.addManifest(t, rawManifest(t, "", big...))
	if _, err := m.AddFolder(context.Background(), link, "", AddOptions{}); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("manifest over %d bytes: %v; want ErrNoManifest", MaxManifestSize, err)
	}
}

// TestFolderManifestEncode checks the canonical form: sorted, and the same
// root for the same listing in any order.
func TestFolderManifestEncode(t *testing.T) {
	a := Manifest{Name: "x", Files: []ManifestFile{{Path: "b/c", Size: 1}, {Path: "a", Size: 2}}}
	b := Manifest{Name: "x", Files: []ManifestFile{{Path: "a", Size: 2}, {Path: "b/c", Size: 1}}}
	ea, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := b.Encode()
	if !bytes.Equal(ea, eb) {
		t.Fatal("two encodings of one listing")
	}
	d, err := DecodeManifest(ea)
	if err != nil || d.Files[0].Path != "a" || d.Files[1].Path != "b/c" || d.Name != "x" {
		t.Fatalf("decoded %+v, %v", d, err)
	}
	if _, err := (&Manifest{Files: []ManifestFile{{Path: "../x"}}}).Encode(); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("Encode of a bad path: %v", err)
	}
	l := Link{Root: [32]byte{1}, Name: "album", Size: UnknownSize, Folder: true}
	got, err := ParseLink(l.String())
	if err != nil || got != l || !strings.HasPrefix(l.String(), "kith://folder/") {
		t.Fatalf("link %s parsed as %+v, %v", l, got, err)
	}
}

// makeFolder shares a folder of files in three levels (with two files of
// the same content and an empty one) and returns its link and contents.
func makeFolder(t *testing.T, fc *folderCat, dir string, n int, size func(i int) int64) (Link, map[string][]byte) {
	t.Helper()
	want := map[string][]byte{}
	var man Manifest
	man.Name = "album"
	for i := range n {
		rel := fmt.Sprintf("d%d/e%d/f%02d.bin", i%3, i%2, i)
		if i%5 == 0 {
			rel = fmt.Sprintf("top%02d.bin", i)
		}
		data := seeded(uint64(i)+100, size(i))
		want[rel] = data
		man.Files = append(man.Files, fc.addFile(t, dir, rel, data))
	}
	// Same content as file 1, and an empty file.
	want["copy/of-one.bin"] = want[man.Files[1].Path]
	man.Files = append(man.Files, fc.addFile(t, dir, "copy/of-one.bin", want[man.Files[1].Path]))
	want["empty"] = nil
	man.Files = append(man.Files, fc.addFile(t, dir, "empty", nil))
	enc, err := man.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return fc.addManifest(t, enc), want
}

// checkFolder compares the downloaded folder with want, byte for byte.
func checkFolder(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	for rel, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes differ from the %d shared", rel, len(got), len(data))
		}
	}
}

// TestFolderDownload fetches a three-level folder from two sources and
// checks every file, the progress in total, and that a second download of
// the same folder goes to "album (2)".
func TestFolderDownload(t *testing.T) {
	e, fc := newFolderEnv(t)
	m := e.manager(testTuning)
	link, want := makeFolder(t, fc, e.shared, 12, func(i int) int64 { return int64(i)*40000 + 1 })
	fd, err := m.AddFolder(context.Background(), link, "", AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fd.Dir != filepath.Join(e.dir, "album") || len(fd.Files) != len(want) {
		t.Fatalf("folder %s with %d files", fd.Dir, len(fd.Files))
	}
	info := waitFolder(t, m, link.Root)
	checkFolder(t, fd.Dir, want)
	var total int64
	for _, d := range want {
		total += int64(len(d))
	}
	if info.Size != total || info.Done != total || info.FilesDone != len(want) {
		t.Fatalf("progress %d/%d bytes, %d files; want %d bytes, %d files", info.Done, info.Size, info.FilesDone, total, len(want))
	}
	fd2, err := m.AddFolder(context.Background(), link, "", AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fd2.Dir != filepath.Join(e.dir, "album (2)") {
		t.Fatalf("second copy in %s", fd2.Dir)
	}
	waitFolder(t, m, link.Root)
	checkFolder(t, fd2.Dir, want)
}

// waitFolder waits for a folder download to end and fails the test unless
// it is done.
func waitFolder(t *testing.T, m *Manager, root [32]byte) FolderDownload {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := m.FolderInfo(root)
		if err == nil && (info.State == StateDone || info.State == StateFailed) {
			if info.State != StateDone {
				t.Fatalf("folder download failed: %s", info.Error)
			}
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("folder download: still %s (%d/%d bytes)", info.State, info.Done, info.Size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFolderResume stops a folder download halfway (the manager closes, as
// at a kill: the database holds what was recorded), starts a new manager
// and checks that the folder completes with no verified group fetched
// again.
//
// Each file stops at the same point, whatever the order its downloads run
// in: the first source serves the size proof and the range at group 0,
// and holds every other request (a count of requests let some files
// finish and others not start, when the folder queued them one by one on
// a loaded machine, so nothing was left to resume).
func TestFolderResume(t *testing.T) {
	e, fc := newFolderEnv(t)
	var heldMu sync.Mutex
	held := map[[32]byte]bool{} // the files holding a request
	slow := newTestSource("friend:a")
	slow.wrap = func(p *Peer, _ func()) Fetcher {
		return fetchFunc(func(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) ([]byte, []byte, error) {
			if first > 0 && first+count < Groups(size) {
				heldMu.Lock()
				held[root] = true
				heldMu.Unlock()
				<-ctx.Done()
				return nil, nil, ctx.Err()
			}
			return p.GetRange(ctx, root, size, first, count, buf)
		})
	}
	e.finder.set(slow)
	m := e.manager(testTuning)
	link, want := makeFolder(t, fc, e.shared, 6, func(i int) int64 { return 3*GroupSize + int64(i) })
	fd, err := m.AddFolder(context.Background(), link, "", AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Five files of four groups each hold their request for group 2 (the
	// one of three groups, top00.bin, needs none and completes).
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		heldMu.Lock()
		n := len(held)
		heldMu.Unlock()
		if n >= 5 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the committer record what was verified
	mid, _ := m.FolderInfo(link.Root)
	m.Close()
	e.finder.set(newTestSource("friend:b"))
	m2 := e.manager(testTuning)
	info := waitFolder(t, m2, link.Root)
	checkFolder(t, fd.Dir, want)
	if mid.Done == 0 || mid.Done == info.Size {
		t.Fatalf("stopped with %d of %d bytes: not halfway", mid.Done, info.Size)
	}
	resumed := int64(0)
	doneBefore := map[string]bool{}
	for _, f := range mid.Files {
		doneBefore[f.Path] = f.State == StateDone
	}
	for _, f := range info.Files {
		if doneBefore[f.Path] {
			continue // done in the first run: not fetched again (it has no download run now)
		}
		root, _ := hex.DecodeString(f.Root)
		di, ok := m2.Info([32]byte(root))
		if !ok || f.Size == 0 || f.Path == "copy/of-one.bin" || di.ResumedGroups+di.FetchedGroups == 0 {
			continue // the copy and the empty file fetch nothing; no counters: it ended in the first run
		}
		resumed += di.ResumedGroups
		if n := di.ResumedGroups + di.FetchedGroups - di.DuplicateGroups - di.BadRanges; n != di.Groups {
			t.Errorf("%s: resumed %d + fetched %d - dup %d - bad %d != %d groups", f.Path, di.ResumedGroups, di.FetchedGroups, di.DuplicateGroups, di.BadRanges, di.Groups)
		}
	}
	if resumed == 0 {
		t.Fatal("nothing resumed")
	}
	t.Logf("stopped at %d of %d bytes; %d groups resumed", mid.Done, info.Size, resumed)
}

// TestFolderIndex shares a folder with the Index and checks its folder
// links: listed for the share and each folder in it, shown in Browse, and
// served by a Server over the Index as a manifest that FetchManifest
// verifies and decodes to the folder's files.
func TestFolderIndex(t *testing.T) {
	e := ixOpen(t)
	dir := t.TempDir()
	for _, rel := range []string{"a/b/one", "a/two", "three"} {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, seeded(uint64(len(rel)), 1000), 0o644)
	}
	e.add(dir, ShareFlags{Browsable: true})
	e.scan(dir)
	folders, err := e.x.Folders(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, f := range folders {
		rels = append(rels, f.Rel)
	}
	if strings.Join(rels, ",") != ",a,a/b" || folders[0].Files != 3 || folders[1].Files != 2 {
		t.Fatalf("folders %q, files %d %d", rels, folders[0].Files, folders[1].Files)
	}
	br, err := e.x.Browse(folders[0].Share, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(br.Entries) != 2 || br.Entries[0].Name != "a" || br.Entries[0].Folder != folders[1].Link.Root {
		t.Fatalf("browse: %+v", br.Entries)
	}
	top, err := e.x.Browse("", 0)
	if err != nil || top.Entries[0].Folder != folders[0].Link.Root {
		t.Fatalf("browse of the shares: %+v, %v", top.Entries, err)
	}
	f := newTestFinder(t, e.x, pipePair)
	f.set(newTestSource("friend:a"))
	m, _, err := FetchManifest(context.Background(), f, folders[1].Link.Root, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "a" || len(m.Files) != 2 || m.Files[0].Path != "b/one" || m.Files[1].Path != "two" {
		t.Fatalf("manifest %+v", m)
	}
	if _, ok := e.x.Lookup(m.Files[0].Root, ScopeFriend); !ok {
		t.Fatal("a manifest's file is not in the index")
	}
	// A share that is not browsable serves no manifest to friends.
	if _, _, ok := e.x.LookupFolder(folders[0].Link.Root, ScopeAnonymous); ok {
		t.Fatal("folder served in a scope its share does not allow")
	}
}

// TestFolderQueuesFew downloads a folder of 60 files and checks that at no
// time more than maxFolderActive of them are queued or running.
func TestFolderQueuesFew(t *testing.T) {
	e, fc := newFolderEnv(t)
	slow := newTestSource("friend:a")
	slow.wrap = waitThen(nil, 5*time.Millisecond)
	e.finder.set(slow)
	m := e.manager(testTuning)
	link, want := makeFolder(t, fc, e.shared, 60, func(i int) int64 { return int64(i)*1000 + 1 })
	if _, err := m.AddFolder(context.Background(), link, "", AddOptions{}); err != nil {
		t.Fatal(err)
	}
	most := 0
	for {
		info, err := m.FolderInfo(link.Root)
		if err != nil {
			t.Fatal(err)
		}
		open := 0
		for _, d := range m.List() {
			if d.State != StateDone && d.State != StateFailed {
				open++
			}
		}
		most = max(most, open)
		if info.State == StateDone || info.State == StateFailed {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	info := waitFolder(t, m, link.Root)
	checkFolder(t, info.Dir, want)
	t.Logf("%d files; at most %d downloads open at once", len(want), most)
	if most > maxFolderActive || most == 0 {
		t.Fatalf("%d downloads open at once; want 1 to %d", most, maxFolderActive)
	}
}

// TestFolderCancel cancels a folder download halfway: its files'
// downloads stop and are forgotten, and nothing more is queued.
func TestFolderCancel(t *testing.T) {
	e, fc := newFolderEnv(t)
	var calls atomic.Int64
	slow := newTestSource("friend:a")
	slow.wrap = gated(4, &calls)
	e.finder.set(slow)
	m := e.manager(testTuning)
	link, _ := makeFolder(t, fc, e.shared, 30, func(i int) int64 { return 2*GroupSize + int64(i) })
	if _, err := m.AddFolder(context.Background(), link, "", AddOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); len(m.List()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no file queued")
		}
	}
	if err := m.CancelFolder(link.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := m.FolderInfo(link.Root); !errors.Is(err, ErrNoSuchFolder) {
		t.Fatalf("folder still known: %v", err)
	}
	time.Sleep(3 * folderPoll)
	for _, d := range m.List() {
		if d.State != StateDone {
			t.Fatalf("a download of the cancelled folder is left: %+v", d)
		}
	}
	if err := m.CancelFolder(link.Root); !errors.Is(err, ErrNoSuchFolder) {
		t.Fatalf("second cancel: %v", err)
	}
}
