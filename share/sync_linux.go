//go:build linux

package share

import (
	"os"
	"syscall"
)

// syncData flushes a file's data (not its metadata) to the disk.
func syncData(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
