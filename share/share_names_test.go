package share

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDownloadLongNameCollides downloads a file whose name is the longest
// a file system takes (255 bytes, two-byte characters up to the extension)
// twice into one folder: the second copy's "name (2).bin" is shortened to
// fit, at a character boundary, keeping the extension, and no partial file
// is left behind.
func TestDownloadLongNameCollides(t *testing.T) {
	e := newDLEnv(t)
	name := strings.Repeat("é", 125) + "x.bin" // 250 + 1 + 4 bytes
	if len(name) != MaxNameLen {
		t.Fatalf("name of %d bytes", len(name))
	}
	data, sf := e.cat.add(t, e.shared, "long.bin", 2*GroupSize+5, true, false)
	link := Link{Root: sf.Tree.Root, Name: name, Size: sf.Tree.Size}
	e.finder.set(newTestSource("a"))
	m := e.manager(testTuning)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	first := waitDone(t, m, link.Root)
	checkDone(t, m, first, data)
	if filepath.Base(first.Path) != name {
		t.Errorf("first copy named %q", filepath.Base(first.Path))
	}
	addAgain(t, m, link)
	second := waitDone(t, m, link.Root)
	checkDone(t, m, second, data)
	got := filepath.Base(second.Path)
	if len(got) > MaxNameLen || !utf8.ValidString(got) || !strings.HasSuffix(got, "é (2).bin") || second.Path == first.Path {
		t.Errorf("second copy named %q (%d bytes)", got, len(got))
	}
	t.Logf("second copy: %d bytes, %q", len(got), got)
}

func TestCandidateName(t *testing.T) {
	for _, c := range []struct {
		name   string
		n      int
		budget int
		want   string
	}{
		{"song.flac", 1, 255, "song.flac"},
		{"song.flac", 2, 255, "song (2).flac"},
		{"archive.tar.gz", 3, 255, "archive.tar (3).gz"},
		{".bashrc", 2, 255, " (2).bashrc"},
		{"noext", 12, 255, "noext (12)"},
		{"aaaaaaaaaa.txt", 2, 16, "aaaaaaaa (2).txt"},
		{"ééééé.txt", 2, 17, "éééé (2).txt"},                                              // a 2-byte character is not split
		{"a." + strings.Repeat("e", 100), 2, 40, "a." + strings.Repeat("e", 34) + " (2)"}, // a long "extension" is stem
	} {
		got := candidateName(c.name, c.n, c.budget)
		if got != c.want || len(got) > c.budget || !utf8.ValidString(got) {
			t.Errorf("candidateName(%q, %d, %d) = %q (%d bytes), want %q", c.name, c.n, c.budget, got, len(got), c.want)
		}
	}
}

// TestDownloadUncreatableFails: a folder in which the file cannot be
// created fails the download when it is added, before anything is
// fetched.
func TestDownloadUncreatableFails(t *testing.T) {
	e := newDLEnv(t)
	_, link := e.file("f.bin", dlSize)
	var calls int64
	src := newTestSource("a")
	e.finder.set(src)
	m := e.manager(testTuning)
	dir := filepath.Join(t.TempDir(), "locked")
	os.Mkdir(dir, 0o700)
	os.Chmod(dir, 0o500)
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		// Root ignores modes: make the folder immutable instead.
		f.Close()
		os.Remove(filepath.Join(dir, "probe"))
		if err := exec.Command("chattr", "+i", dir).Run(); err != nil {
			t.Skipf("cannot make a folder that refuses new files: %v", err)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
		if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
			f.Close()
			t.Skip("cannot make a folder that refuses new files")
		}
	}
	_, err := m.Add(link, dir)
	if err == nil || !errors.Is(err, os.ErrPermission) && !strings.Contains(err.Error(), "not permitted") {
		t.Errorf("Add into a folder that refuses files: %v", err)
	}
	if n := src.offered.Load(); n != 0 || calls != 0 {
		t.Errorf("the source was offered %d times", n)
	}
	if _, ok := m.Info(link.Root); ok {
		t.Error("the download was recorded")
	}
}
