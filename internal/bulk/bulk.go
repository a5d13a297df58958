// Package bulk opens the libp2p streams that carry bulk data (downloads,
// tunnels) on the connection best suited to them: a direct TCP connection
// when the peer has one besides QUIC.
//
// Why: libp2p opens a stream on the connection with the most streams
// (often a QUIC one, which it dials first), and over long paths quic-go's
// congestion control moves a download at a fraction of what the kernel's
// TCP moves over the same link: its slow start ends early, and its Cubic
// barely grows while the sender leaves the window unused for an instant
// (issue 14; BENCHMARKS.md, "Over long paths"). Small, latency-bound
// streams (chat, searches) stay where libp2p puts them.
package bulk

import (
	"context"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"
)

// NewStream opens a stream of protocol pid to p, as h.NewStream does
// (dialing first unless ctx says network.WithNoDial), on a direct TCP
// connection to p if there is one, else wherever h.NewStream opens it.
// The protocol is negotiated lazily, with the first write, as h.NewStream
// does when it knows the peer speaks pid.
func NewStream(ctx context.Context, h host.Host, p peer.ID, pid protocol.ID) (network.Stream, error) {
	if nodial, _ := network.GetNoDial(ctx); !nodial && h.Network().Connectedness(p) != network.Connected {
		if err := h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return nil, err
		}
	}
	c := tcpConn(h.Network().ConnsToPeer(p))
	if c == nil {
		return h.NewStream(ctx, p, pid)
	}
	s, err := c.NewStream(ctx)
	if err != nil {
		return h.NewStream(ctx, p, pid)
	}
	if err := s.SetProtocol(pid); err != nil {
		s.Reset()
		return nil, fmt.Errorf("opening %s stream: %w", pid, err)
	}
	return &stream{Stream: s, rw: msmux.NewMSSelect(s, pid)}, nil
}

// tcpConn returns the newest open, direct, unlimited TCP connection of
// conns, or nil.
func tcpConn(conns []network.Conn) network.Conn {
	var best network.Conn
	for _, c := range conns {
		if c.IsClosed() || c.Stat().Limited || !isDirectTCP(c.RemoteMultiaddr()) {
			continue
		}
		if best == nil || c.Stat().Opened.After(best.Stat().Opened) {
			best = c
		}
	}
	return best
}

// isDirectTCP reports whether a is a TCP address not through a relay.
func isDirectTCP(a ma.Multiaddr) bool {
	tcp := false
	for _, c := range a {
		switch c.Code() {
		case ma.P_TCP:
			tcp = true
		case ma.P_CIRCUIT:
			return false
		}
	}
	return tcp
}

// stream is a stream whose protocol is negotiated by rw with its first
// write (libp2p's own host wraps its streams the same way).
type stream struct {
	network.Stream
	rw io.ReadWriteCloser
}

func (s *stream) Read(b []byte) (int, error)  { return s.rw.Read(b) }
func (s *stream) Write(b []byte) (int, error) { return s.rw.Write(b) }
func (s *stream) Close() error                { return s.rw.Close() }

// CloseWrite sends the negotiation first if nothing was written yet.
func (s *stream) CloseWrite() error {
	if f, ok := s.rw.(interface{ Flush() error }); ok {
		_ = f.Flush() // an error shows in the next read
	}
	return s.Stream.CloseWrite()
}
