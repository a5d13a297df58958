//go:build linux

package share

import (
	"errors"

	"golang.org/x/sys/unix"
)

// openBeneath opens rel beneath the folder dfd with openat2, which lets the
// kernel refuse symlinks (RESOLVE_NO_SYMLINKS, magic links included) and
// any escape from dfd (RESOLVE_BENEATH) in one call. On kernels before 5.6,
// or where a sandbox refuses the call, it walks the path with openWalk.
func openBeneath(dfd int, rel string) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(openFileFlags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	}
	fd, err := unix.Openat2(dfd, rel, &how)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return openWalk(dfd, rel)
	}
	return fd, err
}

// nameMax returns the longest file name, in bytes, that the file system of
// dir takes: its statfs name length, at most MaxNameLen.
func nameMax(dir string) int {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Namelen <= 0 {
		return MaxNameLen
	}
	return min(int(st.Namelen), MaxNameLen)
}
