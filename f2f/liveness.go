package f2f

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"
)

// probeOtherConns runs when a friend's connection fresh has identified
// while older connections to the friend are still open. A friend that
// crashed and came back leaves a dead connection behind (QUIC has no reset
// to tell us; it idles out after half a minute), and libp2p keeps opening
// streams on it, since it carries more streams than the new one. Each
// other connection is pinged over itself; one that does not answer within
// ConnProbeTimeout is closed.
func (c *Connector) probeOtherConns(p peer.ID, fresh network.Conn) {
	for _, conn := range c.h.Network().ConnsToPeer(p) {
		if conn == fresh || conn.IsClosed() {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			err := pingConn(c.ctx, conn)
			if err == nil || c.ctx.Err() != nil {
				return
			}
			c.staleClosed.Add(1)
			c.log.Info("closing a dead connection to a friend that reconnected",
				slog.String("peer", p.ShortString()), slog.String("addr", conn.RemoteMultiaddr().String()), slog.Any("err", err))
			conn.Close()
		}()
	}
}

// pingConn sends one libp2p ping over conn itself, not over whichever
// connection the host would pick, and waits for the echo.
func pingConn(ctx context.Context, conn network.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, ConnProbeTimeout)
	defer cancel()
	s, err := conn.NewStream(ctx)
	if err != nil {
		return fmt.Errorf("probing connection: %w", err)
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := s.SetProtocol(ping.ID); err != nil {
		return fmt.Errorf("probing connection: %w", err)
	}
	if err := msmux.SelectProtoOrFail(ping.ID, s); err != nil {
		return fmt.Errorf("probing connection: %w", err)
	}
	var out, in [ping.PingSize]byte
	rand.Read(out[:])
	if _, err := s.Write(out[:]); err != nil {
		return fmt.Errorf("probing connection: %w", err)
	}
	if _, err := io.ReadFull(s, in[:]); err != nil {
		return fmt.Errorf("probing connection: %w", err)
	}
	if !bytes.Equal(in[:], out[:]) {
		return fmt.Errorf("probing connection: ping echo differs")
	}
	return nil
}
