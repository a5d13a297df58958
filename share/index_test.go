package share

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"kith/internal/store"
)

// ixEnv is an Index on a real bbolt file in a temporary folder.
type ixEnv struct {
	t      testing.TB
	dbPath string
	db     *bolt.DB
	x      *Index
}

func ixOpen(t testing.TB) *ixEnv {
	t.Helper()
	e := &ixEnv{t: t, dbPath: filepath.Join(t.TempDir(), "kith.db")}
	e.reopen()
	t.Cleanup(func() { e.db.Close() })
	return e
}

// reopen closes the database, if open, and opens it and the Index again.
func (e *ixEnv) reopen() {
	e.t.Helper()
	if e.db != nil {
		if err := e.db.Close(); err != nil {
			e.t.Fatal(err)
		}
	}
	db, err := store.Open(e.dbPath, store.Options{NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	if e.x, err = OpenIndex(db, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *ixEnv) add(dir string, flags ShareFlags) ShareInfo {
	e.t.Helper()
	info, err := e.x.AddShare(dir, flags)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *ixEnv) scan(dir string) ScanStats {
	e.t.Helper()
	st, err := e.x.RescanShare(context.Background(), dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// count returns the number of keys in a bucket.
func (e *ixEnv) count(bucket []byte) int {
	e.t.Helper()
	n := 0
	err := e.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *ixEnv) hasOutboard(root [32]byte) bool {
	ok := false
	e.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketOutboards).Get(root[:]) != nil
		return nil
	})
	return ok
}

// ixDir returns a new folder with symlinks resolved, so paths compare
// equal to the stored ones.
func ixDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ixWrite writes data to dir/rel, making folders as needed.
func ixWrite(t testing.TB, dir, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ixRoot(t testing.TB, p string) [32]byte {
	t.Helper()
	tr, err := HashFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Root
}

func TestIndexAddRemoveShare(t *testing.T) {
	e := ixOpen(t)
	base := ixDir(t)
	music := filepath.Join(base, "a", "music")
	music2 := filepath.Join(base, "b", "music")
	for _, d := range []string{music, music2, filepath.Join(base, "c")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	info := e.add(music, ShareFlags{Browsable: true})
	if info.Dir != music || info.Name != "music" || !info.Browsable || info.Anonymous {
		t.Fatalf("AddShare = %+v", info)
	}
	// A relative path through a symlink is stored resolved.
	link := filepath.Join(base, "link")
	if err := os.Symlink(filepath.Join(base, "b"), link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(base)
	info2 := e.add("link/music", ShareFlags{Anonymous: true})
	if info2.Dir != music2 || info2.Name != "music-2" {
		t.Fatalf("second music = %+v", info2)
	}
	// Adding again updates the flags and keeps the name.
	info = e.add(music+"/", ShareFlags{Anonymous: true})
	if info.Name != "music" || info.Browsable || !info.Anonymous {
		t.Fatalf("updated share = %+v", info)
	}
	if got := e.x.Shares(); len(got) != 2 || got[0].Name != "music" || got[1].Name != "music-2" || got[0].Browsable {
		t.Fatalf("Shares = %+v", got)
	}

	for _, bad := range []struct {
		dir  string
		want error
	}{
		{filepath.Join(music, "sub"), fs.ErrNotExist},
		{ixWrite(t, base, "file", nil), ErrNotFolder},
		{filepath.Join(base, "a"), ErrNestedShare},
		{base, ErrNestedShare},
		{"/", ErrNestedShare},
	} {
		if bad.dir == filepath.Join(music, "sub") {
			if _, err := e.x.AddShare(bad.dir, ShareFlags{}); !errors.Is(err, bad.want) {
				t.Errorf("AddShare(%s) = %v, want %v", bad.dir, err, bad.want)
			}
			if err := os.Mkdir(bad.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			bad.want = ErrNestedShare
		}
		if _, err := e.x.AddShare(bad.dir, ShareFlags{}); !errors.Is(err, bad.want) {
			t.Errorf("AddShare(%s) = %v, want %v", bad.dir, err, bad.want)
		}
	}

	if _, err := e.x.RemoveShare(filepath.Join(base, "c")); !errors.Is(err, ErrNotShared) {
		t.Errorf("RemoveShare(unshared) = %v", err)
	}
	if _, err := e.x.RescanShare(context.Background(), filepath.Join(base, "c")); !errors.Is(err, ErrNotShared) {
		t.Errorf("RescanShare(unshared) = %v", err)
	}
	if _, err := e.x.Files(filepath.Join(base, "c")); !errors.Is(err, ErrNotShared) {
		t.Errorf("Files(unshared) = %v", err)
	}
	if got, err := e.x.RemoveShare(music); err != nil || got.Name != "music" {
		t.Fatalf("RemoveShare = %+v, %v", got, err)
	}
	if _, err := e.x.RemoveShare(music); !errors.Is(err, ErrNotShared) {
		t.Errorf("second RemoveShare = %v", err)
	}
	// The name is free again, and the parent may now be shared.
	if got := e.add(filepath.Join(base, "a"), ShareFlags{}); got.Name != "a" {
		t.Errorf("share of parent = %+v", got)
	}
	e.reopen()
	if got := e.x.Shares(); len(got) != 2 || got[0].Name != "a" || got[1].Name != "music-2" {
		t.Fatalf("Shares after reopen = %+v", got)
	}
	// A share of a folder since deleted can still be removed.
	if err := os.RemoveAll(filepath.Join(base, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.x.RemoveShare(filepath.Join(base, "a")); err != nil {
		t.Errorf("removing share of deleted folder: %v", err)
	}
}

func TestIndexScan(t *testing.T) {
	e := ixOpen(t)
	dir := ixDir(t)
	files := map[string][]byte{
		"top.txt":                         []byte("top"),
		"empty":                           nil,
		"a/b/c/deep.bin":                  testData(GroupSize + 5),
		"a/two.bin":                       testData(3*GroupSize + 17),
		"Music/Live at Wembley.FLAC":      testData(1000),
		"Music/Björk – Jóga (live).ogg":   testData(2000),
		"a/b/sibling of deep with spaces": []byte("x"),
	}
	for rel, data := range files {
		ixWrite(t, dir, rel, data)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty dir", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.add(dir, ShareFlags{Browsable: true})
	st := e.scan(dir)
	if st.Files != len(files) || st.Hashed != len(files) || st.Unchanged != 0 || st.Removed != 0 || st.Skipped != 0 {
		t.Fatalf("stats = %+v", st)
	}
	var total int64
	for rel, data := range files {
		total += int64(len(data))
		p := filepath.Join(dir, filepath.FromSlash(rel))
		want, err := HashFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := e.x.Lookup(want.Root, ScopeLocal)
		if !ok {
			t.Fatalf("Lookup(%s) not found", rel)
		}
		fi, _ := os.Stat(p)
		if sf.Path != p || sf.Name != filepath.Base(p) || !sf.ModTime.Equal(fi.ModTime()) ||
			sf.Tree.Size != want.Size || string(sf.Tree.Outboard) != string(want.Outboard) {
			t.Errorf("Lookup(%s) = %+v", rel, sf)
		}
	}
	if st.BytesHashed != total {
		t.Errorf("BytesHashed = %d, want %d", st.BytesHashed, total)
	}
	sh := e.x.Shares()[0]
	if sh.Files != len(files) || sh.Bytes != total || sh.LastScan.IsZero() {
		t.Errorf("share after scan = %+v", sh)
	}
	list, err := e.x.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, f := range list {
		rels = append(rels, f.RelPath)
		if f.Share != sh.Name || f.Name != filepath.Base(f.RelPath) || f.Root != ixRoot(t, filepath.Join(dir, f.RelPath)) {
			t.Errorf("Files entry %+v", f)
		}
	}
	slices.Sort(rels)
	wantRels := slices.Sorted(func(yield func(string) bool) {
		for r := range files {
			if !yield(r) {
				return
			}
		}
	})
	if !slices.Equal(rels, wantRels) {
		t.Errorf("Files = %q, want %q", rels, wantRels)
	}
	if _, ok := e.x.Lookup([32]byte{1}, ScopeLocal); ok {
		t.Error("Lookup of unknown root succeeded")
	}
}

func TestIndexRescanIncremental(t *testing.T) {
	e := ixOpen(t)
	dir := ixDir(t)
	for i := range 20 {
		ixWrite(t, dir, fmt.Sprintf("d%d/f%d", i%3, i), testData(int64(100+i)))
	}
	e.add(dir, ShareFlags{Browsable: true})
	if st := e.scan(dir); st.Hashed != 20 {
		t.Fatalf("first scan hashed %d", st.Hashed)
	}
	st := e.scan(dir)
	if st.Hashed != 0 || st.Unchanged != 20 || st.Files != 20 || st.Removed != 0 {
		t.Fatalf("rescan without change = %+v", st)
	}

	p := filepath.Join(dir, "d1", "f7")
	oldRoot := ixRoot(t, p)
	if err := os.WriteFile(p, []byte("new content"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	st = e.scan(dir)
	if st.Hashed != 1 || st.Unchanged != 19 || st.Files != 20 {
		t.Fatalf("rescan after touching one file = %+v", st)
	}
	if _, ok := e.x.Lookup(oldRoot, ScopeLocal); ok {
		t.Error("old content still found")
	}
	if e.hasOutboard(oldRoot) {
		t.Error("old outboard kept")
	}
	sf, ok := e.x.Lookup(ixRoot(t, p), ScopeLocal)
	if !ok || sf.Path != p || sf.Tree.Size != int64(len("new content")) {
		t.Errorf("new content lookup = %+v, %v", sf, ok)
	}
	// Same size, new mtime only: hashed again, same root.
	if err := os.Chtimes(p, future.Add(time.Second), future.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := e.scan(dir); st.Hashed != 1 || st.Unchanged != 19 {
		t.Fatalf("rescan after mtime change = %+v", st)
	}
	if got := e.count(bucketOutboards); got != 20 {
		t.Errorf("%d outboards, want 20", got)
	}
}

func TestIndexFileRemoved(t *testing.T) {
	e := ixOpen(t)
	dir := ixDir(t)
	gone := ixWrite(t, dir, "music/Gone Song.mp3", testData(5000))
	ixWrite(t, dir, "music/Kept Song.mp3", testData(6000))
	e.add(dir, ShareFlags{Browsable: true, Anonymous: true})
	e.scan(dir)
	root := ixRoot(t, gone)
	if res, _ := e.x.Find("gone", ScopeLocal, 0); len(res) != 1 {
		t.Fatalf("Find before removal = %+v", res)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	st := e.scan(dir)
	if st.Removed != 1 || st.Files != 1 || st.Unchanged != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if _, ok := e.x.Lookup(root, ScopeLocal); ok {
		t.Error("removed file found by Lookup")
	}
	if res, err := e.x.Find("gone", ScopeLocal, 0); err != nil || len(res) != 0 {
		t.Errorf("Find after removal = %+v, %v", res, err)
	}
	name := filepath.Base(dir)
	br, err := e.x.Browse(name+"/music", 0)
	if err != nil || len(br.Entries) != 1 || br.Entries[0].Name != "Kept Song.mp3" {
		t.Errorf("Browse after removal = %+v, %v", br, err)
	}
	if e.hasOutboard(root) {
		t.Error("outboard of removed file kept")
	}
	if e.count(bucketFiles) != 1 || e.count(bucketRoots) != 1 || e.count(bucketOutboards) != 1 ||
		e.count(bucketWords) != len(Keywords("Kept Song.mp3")) {
		t.Errorf("buckets not clean: files %d roots %d outboards %d words %d", e.count(bucketFiles),
			e.count(bucketRoots), e.count(bucketOutboards), e.count(bucketWords))
	}
	// A folder that vanishes takes its files along.
	if err := os.RemoveAll(filepath.Join(dir, "music")); err != nil {
		t.Fatal(err)
	}
	if st := e.scan(dir); st.Removed != 1 || st.Files != 0 {
		t.Fatalf("stats after folder removal = %+v", st)
	}
	if n := e.count(bucketFiles) + e.count(bucketRoots) + e.count(bucketOutboards) + e.count(bucketWords); n != 0 {
		t.Errorf("%d keys left", n)
	}
}

func TestIndexDuplicates(t *testing.T) {
	e := ixOpen(t)
	dir := ixDir(t)
	data := testData(2*GroupSize + 1)
	p1 := ixWrite(t, dir, "one/copy.bin", data)
	p2 := ixWrite(t, dir, "two/copy.bin", data)
	e.add(dir, ShareFlags{Browsable: true})
	e.scan(dir)
	root := ixRoot(t, p1)
	if e.count(bucketOutboards) != 1 || e.count(bucketRoots) != 2 || e.count(bucketFiles) != 2 {
		t.Fatalf("outboards %d roots %d files %d", e.count(bucketOutboards), e.count(bucketRoots), e.count(bucketFiles))
	}
	if res, _ := e.x.Find("copy", ScopeLocal, 0); len(res) != 1 {
		t.Errorf("Find returned %d results for one root", len(res))
	}
	if err := os.Remove(p1); err != nil {
		t.Fatal(err)
	}
	if st := e.scan(dir); st.Removed != 1 {
		t.Fatalf("stats = %+v", st)
	}
	sf, ok := e.x.Lookup(root, ScopeFriend)
	if !ok || sf.Path != p2 || OutboardSize(sf.Tree.Size) != int64(len(sf.Tree.Outboard)) {
		t.Fatalf("Lookup after removing one copy = %+v, %v", sf, ok)
	}
	// The outboard still serves proofs.
	proof, err := sf.Tree.AppendProof(nil, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRange(root, sf.Tree.Size, 1, 2, data[GroupSize:], proof); err != nil {
		t.Fatal(err)
	}
}

func TestIndexLookupScope(t *testing.T) {
	e := ixOpen(t)
	base := ixDir(t)
	dirs := map[string]ShareFlags{
		"friends": {Browsable: true},
		"anon":    {Anonymous: true},
		"both":    {Browsable: true, Anonymous: true},
		"private": {},
	}
	roots := map[string][32]byte{}
	for name, flags := range dirs {
		d := filepath.Join(base, name)
		p := ixWrite(t, d, "only in "+name, []byte("content of "+name))
		roots[name] = ixRoot(t, p)
		e.add(d, flags)
	}
	if _, err := e.x.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, flags := range dirs {
		for _, tt := range []struct {
			scope Scope
			want  bool
		}{
			{ScopeFriend, flags.Browsable},
			{ScopeAnonymous, flags.Anonymous},
			{ScopeLocal, true},
			{Scope(0), false},
		} {
			if _, ok := e.x.Lookup(roots[name], tt.scope); ok != tt.want {
				t.Errorf("Lookup(%s, scope %d) = %v, want %v", name, tt.scope, ok, tt.want)
			}
			res, err := e.x.Find("only "+name, tt.scope, 10)
			if err != nil || (len(res) == 1) != tt.want {
				t.Errorf("Find(%s, scope %d) = %+v, %v", name, tt.scope, res, err)
			}
		}
	}
	// A copy of a private file in an anonymous share is servable
	// anonymously, from there only.
	p := ixWrite(t, filepath.Join(base, "anon"), "copy", []byte("content of private"))
	e.scan(filepath.Join(base, "anon"))
	sf, ok := e.x.Lookup(roots["private"], ScopeAnonymous)
	if !ok || sf.Path != p {
		t.Errorf("anonymous lookup of copied file = %+v, %v", sf, ok)
	}
	if _, ok := e.x.Lookup(roots["private"], ScopeFriend); ok {
		t.Error("friend lookup of private file succeeded")
	}
	// Changing flags takes effect at once.
	e.add(filepath.Join(base, "private"), ShareFlags{Browsable: true})
	if _, ok := e.x.Lookup(roots["private"], ScopeFriend); !ok {
		t.Error("friend lookup after making share browsable failed")
	}
}

func TestIndexBrowse(t *testing.T) {
	e := ixOpen(t)
	base := ixDir(t)
	pub := filepath.Join(base, "pub")
	hidden := filepath.Join(base, "hidden")
	ixWrite(t, pub, "a.txt", []byte("a"))
	ixWrite(t, pub, "b/c.txt", []byte("c"))
	ixWrite(t, pub, "b/d/e.txt", []byte("e"))
	ixWrite(t, pub, "b-side.txt", []byte("b-side")) // sorts before "b/" as a key
	ixWrite(t, pub, "big/readme", []byte("r"))
	for i := range MaxBrowseEntries + 476 {
		ixWrite(t, pub, fmt.Sprintf("big/many/f%05d", i), nil)
	}
	ixWrite(t, hidden, "secret.txt", []byte("s"))
	e.add(pub, ShareFlags{Browsable: true})
	e.add(hidden, ShareFlags{Anonymous: true})
	if _, err := e.x.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}

	names := func(r BrowseReply) []string {
		var n []string
		for _, en := range r.Entries {
			if en.Dir {
				n = append(n, en.Name+"/")
			} else {
				n = append(n, en.Name)
			}
		}
		return n
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"", []string{"pub/"}},
		{"pub", []string{"a.txt", "b/", "b-side.txt", "big/"}},
		{"pub/b", []string{"c.txt", "d/"}},
		{"pub/b/d", []string{"e.txt"}},
		{"pub/big", []string{"many/", "readme"}},
	} {
		r, err := e.x.Browse(tt.path, 0)
		if err != nil {
			t.Errorf("Browse(%q): %v", tt.path, err)
			continue
		}
		if got := names(r); !slices.Equal(got, tt.want) || r.More {
			t.Errorf("Browse(%q) = %q more %v, want %q", tt.path, got, r.More, tt.want)
		}
	}
	r, _ := e.x.Browse("pub/b", 0)
	if c := r.Entries[0]; c.Size != 1 || c.Root != ixRoot(t, filepath.Join(pub, "b", "c.txt")) {
		t.Errorf("file entry %+v", c)
	}
	if d := r.Entries[1]; d.Size != 0 || d.Root != [32]byte{} {
		t.Errorf("folder entry %+v", d)
	}
	if r, err := e.x.Browse("pub", 3); err != nil || !slices.Equal(names(r), []string{"big/"}) {
		t.Errorf("Browse offset 3 = %+v, %v", r, err)
	}
	if r, err := e.x.Browse("pub", 4); err != nil || len(r.Entries) != 0 || r.More {
		t.Errorf("Browse past the end = %+v, %v", r, err)
	}

	for _, bad := range []string{
		"hidden", "hidden/secret.txt", "nope", "pub/nope", "pub/a.txt", "pub/b/c.txt",
		"..", "pub/..", "pub/../hidden", "/", "/pub", base, pub, "pub/", "pub//b", "./pub",
		"pub/b\\d", strings.Repeat("x/", MaxPathLen),
	} {
		if _, err := e.x.Browse(bad, 0); !errors.Is(err, ErrNoSuchPath) {
			t.Errorf("Browse(%q) = %v, want ErrNoSuchPath", bad, err)
		}
	}
	// A hidden share and a missing one look the same.
	_, err1 := e.x.Browse("hidden/x", 0)
	_, err2 := e.x.Browse("hiddem/x", 0)
	if strings.ReplaceAll(err1.Error(), "hidden", "hiddem") != err2.Error() {
		t.Errorf("errors differ: %v / %v", err1, err2)
	}

	// Paging through a folder larger than one reply.
	var all []string
	for off := 0; ; {
		r, err := e.x.Browse("pub/big/many", off)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Entries) > MaxBrowseEntries {
			t.Fatalf("%d entries in one reply", len(r.Entries))
		}
		all = append(all, names(r)...)
		off += len(r.Entries)
		if !r.More {
			break
		}
		if off != MaxBrowseEntries {
			t.Fatalf("More after %d entries", off)
		}
	}
	if len(all) != MaxBrowseEntries+476 || !slices.IsSorted(all) || all[0] != "f00000" {
		t.Errorf("paged listing: %d entries, sorted %v", len(all), slices.IsSorted(all))
	}
	// A reply of MaxBrowseEntries entries fits a message.
	r, _ = e.x.Browse("pub/big/many", 0)
	if _, err := (Frame{ID: 1, Msg: r}).toWire(); err != nil {
		t.Fatal(err)
	}
}

func TestIndexFind(t *testing.T) {
	e := ixOpen(t)
	base := ixDir(t)
	music := filepath.Join(base, "music")
	anon := filepath.Join(base, "anon")
	ixWrite(t, music, "Queen/Live at Wembley.FLAC", []byte("wembley"))
	ixWrite(t, music, "Queen/Live Killers.flac", []byte("killers"))
	ixWrite(t, music, "Björk/Jóga (live).ogg", []byte("joga"))
	ixWrite(t, music, "notes/wembley tickets.txt", []byte("tickets"))
	ixWrite(t, anon, "Live at Wembley copy.flac", []byte("wembley"))
	ixWrite(t, anon, "Anonymous only.txt", []byte("anon"))
	for i := range 30 {
		ixWrite(t, music, fmt.Sprintf("many/track %02d.mp3", i), fmt.Appendf(nil, "track %d", i))
	}
	e.add(music, ShareFlags{Browsable: true})
	e.add(anon, ShareFlags{Anonymous: true})
	if _, err := e.x.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}

	find := func(q string, scope Scope, limit int) []string {
		t.Helper()
		res, err := e.x.Find(q, scope, limit)
		if err != nil {
			t.Fatalf("Find(%q): %v", q, err)
		}
		var out []string
		for _, f := range res {
			out = append(out, f.Share+"/"+f.RelPath)
		}
		slices.Sort(out)
		return out
	}
	for _, tt := range []struct {
		q     string
		scope Scope
		want  []string
	}{
		{"wembley", ScopeFriend, []string{"music/Queen/Live at Wembley.FLAC", "music/notes/wembley tickets.txt"}},
		{"WEM", ScopeFriend, []string{"music/Queen/Live at Wembley.FLAC", "music/notes/wembley tickets.txt"}},
		{"live wem", ScopeFriend, []string{"music/Queen/Live at Wembley.FLAC"}},
		{"li  fla", ScopeFriend, []string{"music/Queen/Live Killers.flac", "music/Queen/Live at Wembley.FLAC"}},
		{"live", ScopeFriend, []string{"music/Björk/Jóga (live).ogg", "music/Queen/Live Killers.flac", "music/Queen/Live at Wembley.FLAC"}},
		{"JÓG", ScopeFriend, []string{"music/Björk/Jóga (live).ogg"}},
		{"queen", ScopeFriend, nil}, // folder names are not searched
		{"embley", ScopeFriend, nil},
		{"wembley tickets flac", ScopeFriend, nil},
		{"anonymous", ScopeFriend, nil},
		{"anonymous", ScopeAnonymous, []string{"anon/Anonymous only.txt"}},
		// Same content in both shares: one result, from the share in scope.
		{"wembley flac", ScopeAnonymous, []string{"anon/Live at Wembley copy.flac"}},
		{"wembley flac", ScopeLocal, []string{"anon/Live at Wembley copy.flac"}},
		{"txt", ScopeLocal, []string{"anon/Anonymous only.txt", "music/notes/wembley tickets.txt"}},
	} {
		if got := find(tt.q, tt.scope, 0); !slices.Equal(got, tt.want) {
			t.Errorf("Find(%q, %d) = %q, want %q", tt.q, tt.scope, got, tt.want)
		}
	}
	if got := find("track mp3", ScopeFriend, 0); len(got) != 30 {
		t.Errorf("Find(track) gave %d results", len(got))
	}
	if got := find("track", ScopeFriend, 7); len(got) != 7 {
		t.Errorf("Find(track, limit 7) gave %d results", len(got))
	}
	res, _ := e.x.Find("killers", ScopeFriend, 1)
	if len(res) != 1 || res[0].Name != "Live Killers.flac" || res[0].Size != 7 ||
		res[0].Root != ixRoot(t, filepath.Join(music, "Queen", "Live Killers.flac")) {
		t.Errorf("Find(killers) = %+v", res)
	}
	for _, bad := range []string{"", "  ", "?!", strings.Repeat("a b c d e f g h i j ", MaxQueryWords/10+1), strings.Repeat("x", MaxQueryLen+1)} {
		if _, err := e.x.Find(bad, ScopeLocal, 0); !errors.Is(err, ErrBadQuery) {
			t.Errorf("Find(%q) = %v, want ErrBadQuery", bad, err)
		}
	}
}

func TestIndexPersists(t *testing.T) {
	e := ixOpen(t)
	dir := ixDir(t)
	p := ixWrite(t, dir, "sub/Persistent File.dat", testData(3*GroupSize))
	e.add(dir, ShareFlags{Browsable: true, Anonymous: true})
	e.scan(dir)
	want := e.x.Shares()
	e.reopen()
	if got := e.x.Shares(); len(got) != 1 || !got[0].LastScan.Equal(want[0].LastScan) ||
		got[0].Files != want[0].Files || got[0].Bytes != want[0].Bytes || got[0].Name != want[0].Name {
		t.Fatalf("Shares after reopen = %+v, want %+v", got, want)
	}
	root := ixRoot(t, p)
	if sf, ok := e.x.Lookup(root, ScopeAnonymous); !ok || sf.Path != p {
		t.Errorf("Lookup after reopen = %+v, %v", sf, ok)
	}
	if res, err := e.x.Find("pers", ScopeFriend, 0); err != nil || len(res) != 1 {
		t.Errorf("Find after reopen = %+v, %v", res, err)
	}
	if r, err := e.x.Browse(filepath.Base(dir)+"/sub", 0); err != nil || len(r.Entries) != 1 || r.Entries[0].Root != root {
		t.Errorf("Browse after reopen = %+v, %v", r, err)
	}
	if st := e.scan(dir); st.Hashed != 0 || st.Unchanged != 1 {
		t.Errorf("rescan after reopen = %+v", st)
	}
}

func TestIndexRemoveShareCleansUp(t *testing.T) {
	e := ixOpen(t)
	base := ixDir(t)
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	for i := range 50 {
		ixWrite(t, a, fmt.Sprintf("x/file %d.txt", i), fmt.Appendf(nil, "a%d", i))
	}
	shared := ixWrite(t, a, "common.bin", []byte("in both"))
	ixWrite(t, b, "common copy.bin", []byte("in both"))
	e.add(a, ShareFlags{Browsable: true})
	e.add(b, ShareFlags{Browsable: true})
	if _, err := e.x.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	info, err := e.x.RemoveShare(a)
	if err != nil || info.Files != 51 {
		t.Fatalf("RemoveShare = %+v, %v", info, err)
	}
	if e.count(bucketFiles) != 1 || e.count(bucketRoots) != 1 || e.count(bucketOutboards) != 1 ||
		e.count(bucketWords) != len(Keywords("common copy.bin")) || e.count(bucketShares) != 1 {
		t.Errorf("left: files %d roots %d outboards %d words %d shares %d", e.count(bucketFiles),
			e.count(bucketRoots), e.count(bucketOutboards), e.count(bucketWords), e.count(bucketShares))
	}
	if _, ok := e.x.Lookup(ixRoot(t, shared), ScopeFriend); !ok {
		t.Error("file of the other share no longer found")
	}
	if _, err := e.x.Browse("a", 0); !errors.Is(err, ErrNoSuchPath) {
		t.Errorf("Browse of removed share = %v", err)
	}
}

func BenchmarkLookup(b *testing.B) {
	e := ixOpen(b)
	dir := ixDir(b)
	var roots [][32]byte
	for i := range 1000 {
		p := ixWrite(b, dir, fmt.Sprintf("d%d/file %d", i%10, i), testData(int64(i*3000)))
		roots = append(roots, ixRoot(b, p))
	}
	e.add(dir, ShareFlags{Browsable: true})
	e.scan(dir)
	i := 0
	for b.Loop() {
		if _, ok := e.x.Lookup(roots[i%len(roots)], ScopeFriend); !ok {
			b.Fatal("not found")
		}
		i++
	}
}
