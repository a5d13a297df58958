//go:build linux

package share

import (
	"os"
	"syscall"
)

// syncData flushes a file's data (not its metadata) to the disk.
func syncData(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// mapFile maps the first size bytes of f read-only, for hashing in place;
// unmap releases it. A page past the end of a file that shrank meanwhile
// faults (SIGBUS): its readers run with debug.SetPanicOnFault.
func mapFile(f *os.File, size int64) (data []byte, unmap func(), err error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, func() {}, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, func() {}, nil // fall back to reading
	}
	return b, func() { syscall.Munmap(b) }, nil
}

// reserveSpace allocates size bytes of disk for f, so that a full disk
// is found when a download starts, not half way, and the file's blocks
// are laid out once instead of as written. A file system that cannot
// preallocate is not an error.
func reserveSpace(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if err == syscall.EOPNOTSUPP || err == syscall.ENOSYS {
		return nil
	}
	return err
}

// freeSpace is the space free for files in the file system of dir.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
