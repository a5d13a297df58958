//go:build !linux

package f2f

// setSendBuffer leaves the socket to the kernel outside Linux.
func setSendBuffer(uintptr, int) (bool, error) { return false, nil }
