//go:build unix

package share

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenInShare opens files beneath a share folder with openat2 and with
// the walk that stands in for it: plain files open, FIFOs do not block,
// and any symlink on the way (a folder swapped for one, a file, the share
// folder itself) or a path that leaves the share is refused.
func TestOpenInShare(t *testing.T) {
	base := t.TempDir()
	share := filepath.Join(base, "share")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(share, "docs", "deep"), filepath.Join(outside, "docs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(share, "docs", "deep", "a.txt"), []byte("inside"), 0o600)
	os.WriteFile(filepath.Join(outside, "docs", "a.txt"), []byte("secret"), 0o600)
	os.Symlink(filepath.Join(outside, "docs"), filepath.Join(share, "swapped"))
	os.Symlink("deep/a.txt", filepath.Join(share, "docs", "link.txt"))
	os.Symlink(share, filepath.Join(base, "sharelink"))
	if err := syscall.Mkfifo(filepath.Join(share, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}

	opens := map[string]func(dir, rel string) (*os.File, error){
		"openat2": openInShare,
		"walk": func(dir, rel string) (*os.File, error) {
			if err := checkRel(rel); err != nil {
				return nil, err
			}
			dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			defer unix.Close(dfd)
			fd, err := openWalk(dfd, rel)
			if err != nil {
				return nil, err
			}
			return os.NewFile(uintptr(fd), rel), nil
		},
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			f, err := open(share, "docs/deep/a.txt")
			if err != nil {
				t.Fatalf("plain file: %v", err)
			}
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) != "inside" {
				t.Errorf("read %q", b)
			}
			if f, err := open(share, "fifo"); err != nil {
				t.Errorf("fifo: %v", err)
			} else {
				f.Close()
			}
			for _, c := range []struct{ dir, rel string }{
				{share, "swapped/a.txt"},
				{share, "docs/link.txt"},
				{share, "../outside/docs/a.txt"},
				{share, "docs/../../outside/docs/a.txt"},
				{share, "/etc/passwd"},
				{share, ""},
				{filepath.Join(base, "sharelink"), "docs/deep/a.txt"},
			} {
				if f, err := open(c.dir, c.rel); err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					t.Errorf("%s beneath %s opened: read %q", c.rel, c.dir, b)
				} else if name == "openat2" && c.rel == "swapped/a.txt" && !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EXDEV) {
					t.Errorf("%s: %v, want ELOOP or EXDEV", c.rel, err)
				}
			}
		})
	}
}
