package f2f

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Moving a friend from QUIC to TCP.
//
// Friends are dialled over TCP first (tcpFirstRanker), but two friends
// that start and dial each other at once can meet over QUIC alone: each
// TCP dial fails (the other's port refused it while it was starting),
// QUIC's retransmitted handshake gets through, and from then on libp2p's
// DialPeer returns the QUIC connection it has, so no TCP connection is
// ever added. Over long or lossy paths quic-go moves a download at a
// fraction of what the kernel's TCP moves (issue 14). libp2p has no
// public way to add a second connection to a connected peer, so the
// Connector of the side with the lower peer ID, TCPUpgradeDelay after it
// found a friend connected (and identified) by direct QUIC connections
// only, and once its own dial of the friend has returned, checks with a
// plain TCP connect (no data, closed at once) that the friend's TCP
// address answers, then closes the QUIC connections and dials that
// address alone; if that fails it dials as usual (QUIC again). The order
// keeps the gap short: the check runs while QUIC still carries
// everything, and the close is followed at once by the dial (about two
// round trips until identify). The long-lived links (router, lobbies,
// chat) reopen on the new connection; a download that loses its source
// looks for sources again within a second and keeps every group it
// verified; a tunnel through the friend is set up again by its origin.
// A connection older than TCPUpgradeYoung that carries a bulk stream
// (ConnectorConfig.BulkProtocols) is left until it carries none. The
// side with the higher peer ID checks only after TCPUpgradeInterval (it
// may reach the other's TCP port when the other cannot reach its own).
// Each friend is checked at most once per TCPUpgradeInterval, doubling
// up to TCPUpgradeMax while it stays on QUIC. A move that worked starts
// that afresh: the friend may be moved again TCPRemoveDelay later
// (doubling per move, up to TCPUpgradeInterval), should its TCP
// connection be lost and QUIC be all that comes back.

// tcpUpgradeTimes returns the first delay and the least interval of TCP
// upgrades (ConnectorConfig overrides, else limits.go).
func (c *Connector) tcpUpgradeTimes() (first, interval time.Duration) {
	first, interval = c.cfg.TCPUpgradeDelay, c.cfg.TCPUpgradeInterval
	if first <= 0 {
		first = TCPUpgradeDelay
	}
	if interval <= 0 {
		interval = TCPUpgradeInterval
	}
	return first, interval
}

// quicOnlyConns returns the open connections to id if there is at least
// one and every one is a direct QUIC connection.
func (c *Connector) quicOnlyConns(id peer.ID) []network.Conn {
	var out []network.Conn
	for _, conn := range c.h.Network().ConnsToPeer(id) {
		if conn.IsClosed() {
			continue
		}
		if conn.Stat().Limited || !isDirectQUIC(conn.RemoteMultiaddr()) {
			return nil
		}
		out = append(out, conn)
	}
	return out
}

// movable reports whether the QUIC connections conns may be closed for
// TCP now: each is younger than TCPUpgradeYoung or carries no bulk
// stream.
func (c *Connector) movable(conns []network.Conn, now time.Time) bool {
	for _, conn := range conns {
		if now.Sub(conn.Stat().Opened) < TCPUpgradeYoung {
			continue
		}
		for _, s := range conn.GetStreams() {
			if slices.Contains(c.cfg.BulkProtocols, s.Protocol()) {
				return false
			}
		}
	}
	return true
}

// tcpAddrs returns the direct TCP addresses (IP, not DNS) of id that the
// node may dial, in the order libp2p would dial them, at most
// MaxTCPProbes.
func (c *Connector) tcpAddrs(id peer.ID) []ma.Multiaddr {
	var tcp []ma.Multiaddr
	for _, a := range c.policy.Filter(id, c.h.Peerstore().Addrs(id)) {
		if _, err := manet.ToIP(a); err == nil && isDirectTCPAddr(a) {
			tcp = append(tcp, a)
		}
	}
	ranked := tcpFirstRanker(tcp)
	slices.SortStableFunc(ranked, func(x, y network.AddrDelay) int { return cmp.Compare(x.Delay, y.Delay) })
	out := make([]ma.Multiaddr, 0, min(len(ranked), MaxTCPProbes))
	for _, d := range ranked[:cap(out)] {
		out = append(out, d.Addr)
	}
	return out
}

// maybeTCPUpgrade starts the move of the friend id to TCP if it is due
// (see above). The caller holds c.mu.
func (c *Connector) maybeTCPUpgrade(id peer.ID, st *dialState, now time.Time) {
	if c.cfg.Gater == nil || st.tcpChecking || st.dialing {
		return
	}
	conns := c.quicOnlyConns(id)
	if len(conns) == 0 {
		st.quicSince = time.Time{}
		return
	}
	first, interval := c.tcpUpgradeTimes()
	if st.quicSince.IsZero() {
		st.quicSince = now
		if c.h.ID() > id {
			first = interval
		}
		if at := now.Add(first); at.After(st.tcpAt) {
			st.tcpAt = at
		}
	}
	if now.Before(st.tcpAt) || !c.movable(conns, now) {
		return
	}
	if fr, ok := c.cfg.Friends.Get(id); !ok || !fr.Online {
		return // identify brings its listen addresses
	}
	addrs := c.tcpAddrs(id)
	if len(addrs) == 0 {
		return
	}
	if st.tcpWait == 0 {
		st.tcpWait = interval
	} else {
		st.tcpWait = min(2*st.tcpWait, TCPUpgradeMax)
	}
	st.tcpAt = now.Add(st.tcpWait)
	st.tcpChecking = true
	c.wg.Add(1)
	go c.tcpUpgrade(id, st, addrs)
}

// tcpUpgrade checks the friend id's TCP addresses and, if one answers
// and the friend is still on QUIC alone, moves it to TCP.
func (c *Connector) tcpUpgrade(id peer.ID, st *dialState, addrs []ma.Multiaddr) {
	defer c.wg.Done()
	_, interval := c.tcpUpgradeTimes()
	addr, failed := c.probeTCP(addrs)
	c.mu.Lock()
	conns := c.quicOnlyConns(id)
	if addr == nil || st.dialing || len(conns) == 0 || !c.movable(conns, time.Now()) || c.ctx.Err() != nil {
		st.tcpChecking = false
		c.mu.Unlock()
		return
	}
	st.dialing = true // the loop leaves the friend to us meanwhile
	c.mu.Unlock()

	c.log.Info("friend connected over QUIC only: moving it to TCP", slog.String("peer", id.ShortString()), slog.String("addr", addr.String()),
		slog.Int("silent", failed))
	done := c.cfg.Gater.dialOnly(id, addr)
	for _, conn := range conns {
		c.tcpClosed.Add(1)
		conn.Close()
	}
	ctx, cancel := context.WithTimeout(network.WithForceDirectDial(c.ctx, "move a friend from QUIC to TCP"), DialTimeout)
	err := c.h.Connect(ctx, peer.AddrInfo{ID: id})
	cancel()
	done()
	moved := err == nil && slices.ContainsFunc(c.h.Network().ConnsToPeer(id), func(x network.Conn) bool {
		return !x.IsClosed() && isDirectTCPAddr(x.RemoteMultiaddr())
	})
	if moved {
		c.tcpUpgraded.Add(1)
		c.log.Info("friend moved to TCP", slog.String("peer", id.ShortString()))
	} else if c.ctx.Err() == nil {
		c.log.Info("TCP dial of a friend failed: dialling it as before", slog.String("peer", id.ShortString()), slog.Any("err", err))
		ctx, cancel := context.WithTimeout(c.ctx, DialTimeout)
		if err := c.h.Connect(ctx, peer.AddrInfo{ID: id}); err != nil {
			c.log.Debug("redial after a failed move to TCP failed", slog.String("peer", id.ShortString()), slog.Any("err", err))
		}
		cancel()
	}
	c.mu.Lock()
	if moved {
		// Start the backoff afresh: if this TCP connection is lost
		// later, the friend is moved back after TCPRemoveDelay
		// (doubling per move), not after the backoff of failed checks.
		st.tcpMoves++
		st.tcpWait = 0
		st.tcpAt = time.Now().Add(min(TCPRemoveDelay<<min(st.tcpMoves-1, 16), interval))
	}
	st.dialing, st.tcpChecking = false, false
	if c.h.Network().Connectedness(id) != network.Connected {
		st.next = time.Time{}
	}
	c.mu.Unlock()
	c.poke()
}

// probeTCP returns the first of addrs at which a plain TCP connect
// succeeds within TCPProbeTimeout (closed at once, nothing sent), or nil,
// and how many did not answer before it.
func (c *Connector) probeTCP(addrs []ma.Multiaddr) (ma.Multiaddr, int) {
	failed := 0
	for _, a := range addrs {
		netw, hostport, err := manet.DialArgs(a)
		if err != nil {
			continue
		}
		c.tcpProbes.Add(1)
		d := net.Dialer{Timeout: TCPProbeTimeout}
		conn, err := d.DialContext(c.ctx, netw, hostport)
		if err != nil {
			failed++
			c.tcpProbesFailed.Add(1)
			c.log.Debug("a friend's TCP address does not answer", slog.String("addr", a.String()), slog.Any("err", err))
			continue
		}
		conn.Close()
		return a, failed
	}
	return nil, failed
}
