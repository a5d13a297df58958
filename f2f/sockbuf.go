package f2f

import (
	"log/slog"
	"syscall"

	"github.com/libp2p/go-libp2p/core/network"
)

// Send buffers of friends' TCP connections.
//
// The bulk streams of a friend (share, tunnels) run over its TCP
// connection (tcpupgrade.go), and over a long path the kernel's send
// buffer, not the path, is what limits them: autotuning stops at
// net.ipv4.tcp_wmem's maximum. quic-go meets the same limit on UDP and
// forces its buffers past net.core.rmem_max when the process may
// (CAP_NET_ADMIN); kith does the same for the TCP connections of
// friends, and where it may not, asks for what net.core.wmem_max allows
// if that is more than autotuning would reach. Elsewhere, and where the
// administrator allows less, the kernel's autotuning stays.

// rawConn is the part of a TCP connection (manet wraps *net.TCPConn
// and keeps its methods) that reaches the socket.
type rawConn interface {
	SyscallConn() (syscall.RawConn, error)
}

// tuneFriendSocket gives the TCP connection under cma, just admitted
// for a friend, a send buffer of TCPSendBuffer where the platform and
// the process's rights allow it. Connections that are not TCP (QUIC,
// relayed) are left alone.
func (g *Gater) tuneFriendSocket(cma network.ConnMultiaddrs) {
	rc, ok := cma.(rawConn)
	if !ok || !isDirectTCPAddr(cma.RemoteMultiaddr()) {
		return
	}
	sc, err := rc.SyscallConn()
	if err != nil {
		return
	}
	var set bool
	if cerr := sc.Control(func(fd uintptr) { set, err = setSendBuffer(fd, TCPSendBuffer) }); cerr != nil {
		err = cerr
	}
	switch {
	case err != nil:
		g.log.Debug("friend's TCP send buffer left to the kernel", slog.Any("err", err))
	case set:
		g.sendBuffers.Add(1)
	}
}
