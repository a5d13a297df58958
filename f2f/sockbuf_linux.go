package f2f

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// setSendBuffer gives the socket fd a send buffer of n bytes, past
// net.core.wmem_max if the process may (SO_SNDBUFFORCE needs
// CAP_NET_ADMIN), else up to net.core.wmem_max if that is more than
// autotuning reaches (net.ipv4.tcp_wmem's maximum); otherwise it leaves
// the socket to autotuning, which a fixed buffer would switch off. It
// reports whether it set the buffer.
func setSendBuffer(fd uintptr, n int) (bool, error) {
	err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, unix.EPERM) {
		return false, fmt.Errorf("force send buffer: %w", err)
	}
	sys := readSendSysctls()
	if sys.err != nil {
		return false, sys.err
	}
	ask := allowedSendBuffer(n, sys.wmemMax, sys.autoMax)
	if ask == 0 {
		return false, nil
	}
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, ask); err != nil {
		return false, fmt.Errorf("set send buffer: %w", err)
	}
	return true, nil
}

// readSendSysctls returns net.core.wmem_max and net.ipv4.tcp_wmem's
// maximum, read once per process, not at every friend's connection.
var readSendSysctls = sync.OnceValue(func() (v struct {
	wmemMax, autoMax int
	err              error
}) {
	var err1, err2 error
	v.wmemMax, err1 = sysctlInt("/proc/sys/net/core/wmem_max", 0)
	v.autoMax, err2 = sysctlInt("/proc/sys/net/ipv4/tcp_wmem", 2)
	v.err = errors.Join(err1, err2)
	return v
})

// allowedSendBuffer is what to ask SO_SNDBUF for, without the right to
// force it, for a buffer of n bytes where the administrator allows
// wmemMax (net.core.wmem_max) and autotuning reaches autoMax
// (net.ipv4.tcp_wmem's maximum); 0 means leave the socket to autotuning,
// which a fixed buffer would switch off, because it would reach more.
// The kernel doubles what is asked; autotuning's limit is not doubled.
func allowedSendBuffer(n, wmemMax, autoMax int) int {
	ask := min(n, wmemMax)
	if ask <= 0 || 2*ask <= autoMax {
		return 0
	}
	return ask
}

// sysctlInt reads the field'th number of the sysctl file at path.
func sysctlInt(path string, field int) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read sysctl: %w", err)
	}
	f := strings.Fields(string(b))
	if field >= len(f) {
		return 0, fmt.Errorf("sysctl %s: %d fields", path, len(f))
	}
	v, err := strconv.Atoi(f[field])
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", path, err)
	}
	return v, nil
}
