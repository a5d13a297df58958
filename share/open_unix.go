//go:build unix

package share

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Served and hashed files are opened beneath their share's folder without
// following any symlink: a folder inside a share that is replaced by a
// symlink to somewhere else (after the scan, with a file there of the same
// size and mtime) must not make the node read, hash or send a file from
// outside the share. The scanner never follows folder symlinks, and for a
// file symlink it records the file inside the share the link resolved to
// (fileRecord.Target), which has no symlink on its path; so refusing every
// symlink at open time is exactly the scanner's rule, enforced again at the
// moment of reading.

// errOutsideShare means a path inside a share is not a plain relative path
// of names.
var errOutsideShare = errors.New("path leaves the share")

// openFileFlags are the flags of an opened shared file: O_NONBLOCK so that
// a file replaced by a FIFO since the scan cannot block the open.
const openFileFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOFOLLOW

// openInShare opens the file rel (slash-separated, relative) inside the
// share folder dir for reading, following no symlink: not the folder dir
// itself if it became one, not any folder on the way, not the file. The
// error of a path through a symlink is ELOOP (or EXDEV from openat2 for
// one that leads outside).
func openInShare(dir, rel string) (*os.File, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	fd, err := openBeneath(dfd, rel)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(dir, filepath.FromSlash(rel)), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, filepath.FromSlash(rel))), nil
}

// checkRel refuses anything but names separated by single slashes.
func checkRel(rel string) error {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return fmt.Errorf("%w: %q", errOutsideShare, rel)
	}
	for name := range strings.SplitSeq(rel, "/") {
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("%w: %q", errOutsideShare, rel)
		}
	}
	return nil
}

// openWalk opens rel beneath the folder dfd one name at a time, each with
// O_NOFOLLOW: where openat2 is missing, this is the same rule by hand.
func openWalk(dfd int, rel string) (int, error) {
	names := strings.Split(rel, "/")
	cur := dfd
	defer func() {
		if cur != dfd {
			unix.Close(cur)
		}
	}()
	for _, name := range names[:len(names)-1] {
		next, err := unix.Openat(cur, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		if cur != dfd {
			unix.Close(cur)
		}
		cur = next
	}
	return unix.Openat(cur, names[len(names)-1], openFileFlags, 0)
}
