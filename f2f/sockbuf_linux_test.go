package f2f

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sys/unix"
)

// socketSendBuffer finds, among this process's file descriptors, the
// TCP socket whose local and remote ports are those of c, and returns
// its SO_SNDBUF as the kernel reports it (twice what was asked).
func socketSendBuffer(t *testing.T, c network.Conn) int {
	t.Helper()
	port := func(a ma.Multiaddr) int {
		v, err := a.ValueForProtocol(ma.P_TCP)
		if err != nil {
			t.Fatalf("%v is not TCP: %v", a, err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	local, remote := port(c.LocalMultiaddr()), port(c.RemoteMultiaddr())
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); !strings.HasPrefix(link, "socket:") {
			continue
		}
		sa, err1 := unix.Getsockname(fd)
		pa, err2 := unix.Getpeername(fd)
		l, ok1 := sa.(*unix.SockaddrInet4)
		r, ok2 := pa.(*unix.SockaddrInet4)
		if err1 != nil || err2 != nil || !ok1 || !ok2 || l.Port != local || r.Port != remote {
			continue
		}
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
			continue
		}
		n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
		if err != nil {
			t.Fatalf("SO_SNDBUF: %v", err)
		}
		return n
	}
	t.Fatalf("no socket with ports %d -> %d", local, remote)
	return 0
}

// canForceSendBuffer reports whether this process may set a send buffer
// past net.core.wmem_max (CAP_NET_ADMIN).
func canForceSendBuffer(t *testing.T) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, TCPSendBuffer) == nil
}

// TestFriendTCPSendBuffer: both ends of a friends' TCP connection get a
// send buffer of TCPSendBuffer (the kernel reports twice that), while a
// connection the gater refuses, a stranger's, is never tuned.
func TestFriendTCPSendBuffer(t *testing.T) {
	if !canForceSendBuffer(t) {
		t.Skip("this process may not force socket buffers (needs CAP_NET_ADMIN; CI runs as root)")
	}
	a, b, stranger := newPeer(t, "tcp"), newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(a, b)
	waitFor(t, 10*time.Second, "friends to connect", func() bool { return online(a, b.id) && online(b, a.id) })

	eachFriendConn(t, a, b, func(name string, side *testPeer, c network.Conn) {
		if got := socketSendBuffer(t, c); got < 2*TCPSendBuffer {
			t.Errorf("%s's socket to its friend (%s): SO_SNDBUF %d, want at least %d", name, c.Stat().Direction, got, 2*TCPSendBuffer)
		}
		if n := side.gater.Stats().SendBuffers; n == 0 {
			t.Errorf("%s's gater counted no tuned send buffer", name)
		}
	})

	// The stranger's connection is refused at the gate: nothing is tuned.
	before := a.gater.Stats().SendBuffers
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stranger.add(a)
	if err := stranger.host.Connect(ctx, peer.AddrInfo{ID: a.id, Addrs: a.host.Addrs()}); err == nil {
		waitFor(t, 3*time.Second, "the stranger's connection to close", func() bool {
			return stranger.host.Network().Connectedness(a.id) != network.Connected
		})
	}
	if a.gater.Refused() == 0 {
		t.Fatal("the stranger was not refused")
	}
	if got := a.gater.Stats().SendBuffers; got != before {
		t.Fatalf("the gater tuned %d sockets for a stranger", got-before)
	}
}

// TestAllowedSendBuffer: without the right to force it, the send buffer
// is set only where the administrator's limit gives more than
// autotuning would reach, and never past that limit.
func TestAllowedSendBuffer(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                string
		n, wmemMax, autoMax int
		want                int
	}{
		{"Linux defaults: autotuning reaches more", 8 * mib, 212992, 4 * mib, 0},
		{"wmem_max raised past the need", 8 * mib, 32 * mib, 4 * mib, 8 * mib},
		{"wmem_max raised a little", 8 * mib, 3 * mib, 4 * mib, 3 * mib},
		{"wmem_max at half autotuning's", 8 * mib, 2 * mib, 4 * mib, 0},
		{"autotuning already past it", 8 * mib, 32 * mib, 16 * mib, 0},
		{"nonsense sysctl", 8 * mib, 0, 4 * mib, 0},
	} {
		if got := allowedSendBuffer(c.n, c.wmemMax, c.autoMax); got != c.want {
			t.Errorf("%s: asked %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSysctlInt: the reader of sysctl files fails clearly on files that
// are missing, short or not numbers.
func TestSysctlInt(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	three := write("tcp_wmem", "4096\t16384\t4194304\n")
	if v, err := sysctlInt(three, 2); err != nil || v != 4194304 {
		t.Fatalf("third field: %d, %v", v, err)
	}
	if v, err := sysctlInt(three, 0); err != nil || v != 4096 {
		t.Fatalf("first field: %d, %v", v, err)
	}
	for name, c := range map[string]struct {
		path  string
		field int
	}{
		"missing":    {filepath.Join(dir, "none"), 0},
		"short":      {three, 3},
		"not number": {write("garbled", "4096 lots\n"), 1},
		"empty":      {write("empty", ""), 0},
	} {
		if v, err := sysctlInt(c.path, c.field); err == nil {
			t.Errorf("%s: got %d, want an error", name, v)
		}
	}
}
