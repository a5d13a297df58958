package tunnels

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/internal/bulk"
)

// TunnelProtocol is the libp2p protocol ID of one hop of a tunnel's data
// plane. A stream starts with a TunnelHeaderSize header, the tunnel's id
// on that link as a big-endian uint64, and then carries the tunnel's
// bytes.
const TunnelProtocol = "/kith/tunnel/1"

// TunnelHeaderSize is the size of the header of a TunnelProtocol stream.
const TunnelHeaderSize = 8

// openTunnelStream opens the data stream of tunnel id to p and writes its
// header.
func (r *Router) openTunnelStream(p peer.ID, id TunnelID) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(r.ctx, LinkOpenTimeout)
	defer cancel()
	s, err := bulk.NewStream(ctx, r.h, p, TunnelProtocol)
	if err != nil {
		return nil, fmt.Errorf("opening tunnel stream: %w", err)
	}
	s.SetWriteDeadline(time.Now().Add(r.cfg.WriteTimeout))
	if err := writeTunnelHeader(s, id); err != nil {
		s.Reset()
		return nil, fmt.Errorf("opening tunnel stream: %w", err)
	}
	s.SetWriteDeadline(time.Time{})
	return s, nil
}

// writeTunnelHeader writes the header of a TunnelProtocol stream: id as a
// big-endian uint64, in one Write.
func writeTunnelHeader(w io.Writer, id TunnelID) error {
	var hdr [TunnelHeaderSize]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(id))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("writing tunnel header: %w", err)
	}
	return nil
}

// readTunnelHeader reads the header of a TunnelProtocol stream from bytes a
// friend sent and returns the tunnel's id on that link. It reads exactly
// TunnelHeaderSize bytes, or fails if the stream ends before; a zero id,
// which no hop ever picks, is an error too. It blocks until the header is
// read or r fails: the caller sets a deadline.
func readTunnelHeader(r io.Reader) (TunnelID, error) {
	var hdr [TunnelHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("reading tunnel header: %w", err)
	}
	id := TunnelID(binary.BigEndian.Uint64(hdr[:]))
	if id == 0 {
		return 0, errors.New("reading tunnel header: zero tunnel id")
	}
	return id, nil
}

// handleTunnelStream takes the stream from the left hop of a tunnel this
// node answered with TunnelOK: a holder runs the session's responder on
// it, a relay splices it with the stream it opened to the right.
func (r *Router) handleTunnelStream(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !r.tunnelStreams.acquire(p, MaxTunnelStreamsPerFriend) {
		r.log.Debug("refusing a tunnel stream over the friend's limit", slog.String("peer", p.ShortString()))
		s.Reset()
		return
	}
	defer r.tunnelStreams.release(p)
	s.SetReadDeadline(time.Now().Add(r.cfg.WriteTimeout))
	id, err := readTunnelHeader(s)
	if err != nil {
		r.log.Debug("bad tunnel stream", slog.String("peer", p.ShortString()), slog.Any("err", err))
		s.Reset()
		return
	}
	s.SetReadDeadline(time.Time{})
	key := linkKey{p, id}

	r.mu.Lock()
	rt := r.tun.byLeft[key]
	if rt == nil || rt.state != routeAwaitLeft || (!rt.holder && rt.rightStream == nil) || r.ctx.Err() != nil {
		r.mu.Unlock()
		s.Reset()
		return
	}
	rt.state = routeActive
	rt.leftStream = s
	right := rt.rightStream
	if !r.track(1) {
		r.mu.Unlock()
		s.Reset()
		return
	}
	r.mu.Unlock()
	defer r.wg.Done()

	if rt.holder {
		r.mu.Lock()
		rt.leftStream = nil // the session owns it now
		_, streams := r.tun.remove(rt, nil, nil)
		r.mu.Unlock()
		resetAll(streams)
		r.tunnelsServed.Add(1)
		if rt.endpoint {
			r.cfg.Endpoint.ServeTunnel(rt.target, s)
			return
		}
		sess, err := AcceptFileSession(r.ctx, s, rt.root)
		if err != nil {
			r.log.Debug("tunnel handshake failed", slog.Any("err", err))
			return
		}
		r.cfg.OnTunnel(&Tunnel{Session: sess, Root: rt.root})
		return
	}
	var opts []SpliceOption
	if tap := r.cfg.Tap; tap != nil && tap.Data != nil {
		opts = append(opts, WithObserver(tap.Data))
	}
	r.tunnelsRelayed.Add(1)
	err = Splice(s, right, RelayBufSize, opts...)
	if err != nil && !errors.Is(err, io.EOF) {
		r.log.Debug("relayed tunnel broke", slog.Any("err", err))
	}
	r.mu.Lock()
	rt.leftStream, rt.rightStream = nil, nil // Splice closed them
	r.tun.remove(rt, nil, nil)
	r.mu.Unlock()
}
