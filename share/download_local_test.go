package share

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDownloadFolderRemoved removes the downloads folder (and the partial
// file in it) under a running download, as a user cleaning up could. The
// download must say so soon, while its source still has the rest to send,
// not write the whole file into the removed folder and fail at the end;
// once the folder is back it puts its partial file back, keeps what it had
// verified and completes.
func TestDownloadFolderRemoved(t *testing.T) {
	e := newDLEnv(t)
	data, link := e.file("kept.bin", dlSize)
	release := make(chan struct{})
	src := newTestSource("a")
	src.wrap = holdAfter(3, release)
	e.finder.set(src)
	tu := testTuning
	tu.Window = 1
	m := e.manager(tu)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, m, link.Root, "groups recorded", func(i DownloadInfo) bool { return i.Verified >= 4 })
	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	info := waitInfo(t, m, link.Root, "paused for the folder", func(i DownloadInfo) bool {
		return i.State == StatePaused || i.State == StateFailed || i.State == StateDone
	})
	if info.State != StatePaused || !strings.Contains(info.Reason, e.dir) || !strings.Contains(info.Reason, "removed") {
		t.Fatalf("after the folder was removed: state %s, reason %q, error %q; want paused, naming the folder", info.State, info.Reason, info.Error)
	}
	if err := os.Mkdir(e.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	close(release)
	info = waitDone(t, m, link.Root)
	checkDone(t, m, info, data)
	if info.ResumedGroups < 4 {
		t.Errorf("resumed %d groups after the folder came back; want the 4 or more verified before", info.ResumedGroups)
	}
}

// TestDownloadDestinationRemoved removes the folder a download goes to
// (--to) while it runs: paused with a reason, and done once it is back.
func TestDownloadDestinationRemoved(t *testing.T) {
	e := newDLEnv(t)
	data, link := e.file("to.bin", dlSize)
	release := make(chan struct{})
	src := newTestSource("a")
	src.wrap = holdAfter(2, release)
	e.finder.set(src)
	to := filepath.Join(t.TempDir(), "to")
	os.Mkdir(to, 0o700)
	m := e.manager(testTuning)
	if _, err := m.Add(link, to); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, m, link.Root, "groups verified", func(i DownloadInfo) bool { return i.Received >= 2 })
	os.RemoveAll(to)
	info := waitInfo(t, m, link.Root, "paused", func(i DownloadInfo) bool { return i.State == StatePaused })
	if !strings.Contains(info.Reason, to) {
		t.Errorf("reason %q does not name %s", info.Reason, to)
	}
	os.Mkdir(to, 0o700)
	close(release)
	checkDone(t, m, waitDone(t, m, link.Root), data)
}

// smallFS mounts a new ext2 file system of mib MiB (no room reserved for
// root; ext2 cannot preallocate, so a full disk shows in the writes
// themselves) and returns its folder, or skips the test where that cannot
// be done (not root, no mkfs.ext2, no loop devices).
func smallFS(t *testing.T, mib int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making a small file system to fill needs root (mount -o loop)")
	}
	img := filepath.Join(t.TempDir(), "small.img")
	dir := t.TempDir()
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(mib)<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext2", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Skipf("cannot make a small file system (mkfs.ext2: %v): %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small file system (mount -o loop: %v): %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file at path until the disk under it is full but for
// leave bytes.
func fill(t *testing.T, path string, leave int64) {
	t.Helper()
	free, err := freeSpace(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n := free - leave; n > 0; n -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
			if errors.Is(err, os.ErrNotExist) || !isNoSpace(err) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Sync()
}

// TestDownloadDiskFull fills the disk of the downloads folder under a
// running download. The download must pause, saying the disk is full, keep
// its partial file and what it verified, and go on by itself once space is
// freed, fetching no group twice.
func TestDownloadDiskFull(t *testing.T) {
	e := newDLEnv(t)
	e.dir = filepath.Join(smallFS(t, 16), "dl")
	os.Mkdir(e.dir, 0o700)
	data, link := e.file("big.bin", dlSize)
	filler := filepath.Join(filepath.Dir(e.dir), "filler")
	fill(t, filler, 1<<20) // room for about 4 of the 13 groups
	e.finder.set(newTestSource("a"))
	m := e.manager(testTuning)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	info := waitInfo(t, m, link.Root, "paused for space", func(i DownloadInfo) bool {
		return i.State == StatePaused || i.State == StateFailed || i.State == StateDone
	})
	if info.State != StatePaused || !strings.Contains(info.Reason, "full") {
		t.Fatalf("on a full disk: state %s, reason %q, error %q; want paused for space", info.State, info.Reason, info.Error)
	}
	if info.Received == 0 {
		t.Errorf("nothing verified before the disk filled: %+v", info)
	}
	if _, err := os.Stat(m.partialPath(link.Root)); err != nil {
		t.Errorf("partial file: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	info = waitDone(t, m, link.Root)
	checkDone(t, m, info, data) // every group fetched once
}

// TestDownloadDiskFullAtStart: a disk too full to reserve the partial file
// (tmpfs preallocates, so the reservation is where it shows) pauses the
// download before anything is fetched but its size proof, and it goes on
// once there is space.
func TestDownloadDiskFullAtStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a small file system to fill needs root (mount -t tmpfs)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	e := newDLEnv(t)
	e.dir = filepath.Join(mnt, "dl")
	os.Mkdir(e.dir, 0o700)
	data, link := e.file("big.bin", dlSize)
	filler := filepath.Join(mnt, "filler")
	fill(t, filler, 1<<20)
	e.finder.set(newTestSource("a"))
	m := e.manager(testTuning)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	info := waitInfo(t, m, link.Root, "paused for space", func(i DownloadInfo) bool {
		return i.State == StatePaused || i.State == StateFailed || i.State == StateDone
	})
	if info.State != StatePaused || !strings.Contains(info.Reason, "full") {
		t.Fatalf("on a full disk: state %s, reason %q, error %q; want paused for space", info.State, info.Reason, info.Error)
	}
	os.Remove(filler)
	checkDone(t, m, waitDone(t, m, link.Root), data)
}

// TestDownloadFolderRemovedBeforeStart removes the downloads folder while a
// download still waits for a source: paused, and once the folder is back
// and a source comes, done (its .partial made again).
func TestDownloadFolderRemovedBeforeStart(t *testing.T) {
	e := newDLEnv(t)
	data, link := e.file("later.bin", dlSize)
	m := e.manager(testTuning)
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(e.dir)
	info := waitInfo(t, m, link.Root, "paused", func(i DownloadInfo) bool { return i.State == StatePaused })
	if !strings.Contains(info.Reason, e.dir) {
		t.Errorf("reason %q does not name %s", info.Reason, e.dir)
	}
	os.Mkdir(e.dir, 0o700)
	e.finder.set(newTestSource("a"))
	checkDone(t, m, waitDone(t, m, link.Root), data)
}

// TestDownloadAcrossFileSystems downloads into a folder on another file
// system than the partial file's (a tmpfs): the file is copied to a hidden
// name there and linked, so only the whole file ever appears under its
// name, and the hidden copy is gone after.
func TestDownloadAcrossFileSystems(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a second file system needs root (mount -t tmpfs)")
	}
	to := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", to).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", to).Run() })
	e := newDLEnv(t)
	data, link := e.file("far.bin", dlSize)
	e.finder.set(newTestSource("a"))
	m := e.manager(testTuning)
	if _, err := m.Add(link, to); err != nil {
		t.Fatal(err)
	}
	info := waitDone(t, m, link.Root)
	checkDone(t, m, info, data)
	if info.Path != filepath.Join(to, "far.bin") {
		t.Errorf("path %s", info.Path)
	}
	if ents, _ := os.ReadDir(to); len(ents) != 1 {
		t.Errorf("%s holds %d entries; want the file only", to, len(ents))
	}
}
