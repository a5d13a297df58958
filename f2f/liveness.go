package f2f

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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
	c.probeConns(p, fresh, "closing a dead connection to a friend that reconnected")
}

// Probe checks every connection to friend p and closes those that do
// not answer a ping within ConnProbeTimeout. Services call it when p left
// a request unanswered (a reachability check, a relay reservation): a
// friend whose address changed, or whose router lost its NAT state,
// leaves a connection that looks open for half a minute but carries
// nothing, and every stream opened on it in that time waits for nothing.
// Closing it lets the connector redial at once. It returns at once; at
// most MaxConcurrentProbes pings run at a time.
func (c *Connector) Probe(p peer.ID) {
	if !c.cfg.Friends.IsFriend(p) {
		return
	}
	c.probeConns(p, nil, "closing a friend connection that left a request unanswered and does not answer a ping")
}

// probeConns pings each open connection to p other than skip and closes
// the dead ones, logging why.
func (c *Connector) probeConns(p peer.ID, skip network.Conn, why string) {
	for _, conn := range c.h.Network().ConnsToPeer(p) {
		if conn != skip && !conn.IsClosed() {
			c.probeConn(conn, why)
		}
	}
}

// probeConn pings conn over itself on a goroutine of the connector (at
// most MaxConcurrentProbes at a time) and, if it is dead, closes it,
// logging why, and looks at once which friends are due for a dial.
func (c *Connector) probeConn(conn network.Conn, why string) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case c.probes <- struct{}{}:
			defer func() { <-c.probes }()
		case <-c.ctx.Done():
			return
		}
		err := pingConn(c.ctx, conn)
		if err == nil || c.ctx.Err() != nil {
			return
		}
		c.staleClosed.Add(1)
		c.log.Info(why, slog.String("peer", conn.RemotePeer().ShortString()), slog.String("addr", conn.RemoteMultiaddr().String()), slog.Any("err", err))
		conn.Close()
		c.poke()
	}()
}

// pingConn sends one libp2p ping over conn itself, not over whichever
// connection the host would pick, and returns an error only when conn is
// dead: it closed, or nothing came back within ConnProbeTimeout. A friend
// that answers at all, be it only to refuse the stream (its resource
// manager allows few ping streams per peer, and both friends probe at
// once after a simultaneous dial), is there; so is a probe refused by our
// own limits, which says nothing of the connection. Closing on those
// closed healthy connections, and the streams on them.
func pingConn(ctx context.Context, conn network.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, ConnProbeTimeout)
	defer cancel()
	err := echoOver(ctx, conn)
	var connErr *network.ConnError
	switch {
	case err == nil:
		return nil
	case conn.IsClosed() || errors.As(err, &connErr):
		return fmt.Errorf("probing connection: closed: %w", err)
	case ctx.Err() != nil:
		return fmt.Errorf("probing connection: no answer within %v: %w", ConnProbeTimeout, err)
	}
	return nil
}

// echoOver opens a ping stream on conn and checks the echo.
func echoOver(ctx context.Context, conn network.Conn) error {
	s, err := conn.NewStream(ctx)
	if err != nil {
		return err
	}
	defer s.Reset()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := s.SetProtocol(ping.ID); err != nil {
		return err
	}
	if err := msmux.SelectProtoOrFail(ping.ID, s); err != nil {
		return err
	}
	var out, in [ping.PingSize]byte
	rand.Read(out[:])
	if _, err := s.Write(out[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(s, in[:]); err != nil {
		return err
	}
	if !bytes.Equal(in[:], out[:]) {
		return errors.New("ping echo differs")
	}
	return nil
}
