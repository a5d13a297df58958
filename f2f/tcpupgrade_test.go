package f2f

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"kith/internal/bulk"
)

// inviteAt is p's invite carrying the addresses addrs only.
func (p *testPeer) inviteAt(addrs []ma.Multiaddr) Invite {
	p.t.Helper()
	text, err := NewInvite(p.key, addrs, "peer")
	if err != nil {
		p.t.Fatal(err)
	}
	inv, err := ParseInvite(text)
	if err != nil {
		p.t.Fatal(err)
	}
	return inv
}

// quicAddrs are p's QUIC listen addresses.
func (p *testPeer) quicAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range p.host.Addrs() {
		if isDirectQUIC(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		p.t.Fatal("no QUIC address")
	}
	return out
}

// connLog records the transports of a host's connections to one peer as
// they open and close.
type connLog struct {
	mu           sync.Mutex
	opened       []string // "tcp" or "quic", in order
	disconnected int
}

func watchConns(p *testPeer) *connLog {
	l := &connLog{}
	p.host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if isDirectTCPAddr(c.RemoteMultiaddr()) {
				l.opened = append(l.opened, "tcp")
			} else {
				l.opened = append(l.opened, "quic")
			}
		},
		DisconnectedF: func(network.Network, network.Conn) {
			l.mu.Lock()
			l.disconnected++
			l.mu.Unlock()
		},
	})
	return l
}

func (l *connLog) snapshot() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.opened...), l.disconnected
}

func openTCPConns(p *testPeer, other *testPeer) int {
	n := 0
	for _, c := range p.host.Network().ConnsToPeer(other.id) {
		if !c.IsClosed() && isDirectTCPAddr(c.RemoteMultiaddr()) {
			n++
		}
	}
	return n
}

// TestQUICOnlyFriendMovesToTCP: two friends that listen on TCP and QUIC
// but meet over QUIC alone (each knows only the other's QUIC address, as
// when each TCP dial failed while the other was starting) end up with a
// TCP connection, and a bulk stream goes over it. libp2p alone keeps the
// QUIC connection for good.
func TestQUICOnlyFriendMovesToTCP(t *testing.T) {
	a := newPeer(t, "both")
	b := newPeer(t, "both")
	lo, hi := a, b
	if hi.id < lo.id {
		lo, hi = hi, lo
	}
	loLog, hiLog := watchConns(lo), watchConns(hi)
	if _, err := lo.friends.Add(hi.inviteAt(hi.quicAddrs()), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := hi.friends.Add(lo.inviteAt(lo.quicAddrs()), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a TCP connection between the friends", func() bool {
		return openTCPConns(lo, hi) > 0 && openTCPConns(hi, lo) > 0
	})
	if opened, _ := loLog.snapshot(); len(opened) == 0 || opened[0] != "quic" {
		t.Fatalf("the friends did not meet over QUIC first: %v", opened)
	}
	waitFor(t, 10*time.Second, "both online again", func() bool { return online(lo, hi.id) && online(hi, lo.id) })

	// Both ends' bulk streams go over TCP.
	for _, p := range []struct{ from, to *testPeer }{{lo, hi}, {hi, lo}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := bulk.NewStream(ctx, p.from.host, p.to.id, testProto)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !isDirectTCPAddr(s.Conn().RemoteMultiaddr()) {
			t.Errorf("bulk stream on %s, want TCP", s.Conn().RemoteMultiaddr())
		}
		s.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Write([]byte{7}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	ls, hs := lo.conn.Stats(), hi.conn.Stats()
	if ls.TCPUpgraded != 1 || ls.TCPUpgradeCloses == 0 {
		t.Errorf("lower peer ID: %d moves to TCP, %d QUIC connections closed; want 1 and at least 1", ls.TCPUpgraded, ls.TCPUpgradeCloses)
	}
	if hs.TCPProbes != 0 || hs.TCPUpgradeCloses != 0 {
		t.Errorf("higher peer ID probed %d times and closed %d connections; only the lower one moves", hs.TCPProbes, hs.TCPUpgradeCloses)
	}
	lo1, _ := loLog.snapshot()
	hi1, _ := hiLog.snapshot()
	t.Logf("connections opened: lower %v, higher %v; lower's stats %+v", lo1, hi1, ls)
}

// TestQUICOnlyFriendWithDeadTCPStaysOnQUIC: a friend connected over QUIC
// whose TCP address does not answer is checked with a TCP connect at
// most once per interval (doubling) and its QUIC connection is never
// closed.
func TestQUICOnlyFriendWithDeadTCPStaysOnQUIC(t *testing.T) {
	const interval = 100 * time.Millisecond
	short := func(p *testPeer) {
		p.onConnector = func(c *ConnectorConfig) { c.TCPUpgradeDelay, c.TCPUpgradeInterval = interval, interval }
	}
	a := newPeerWith(t, "quic", short)
	b := newPeerWith(t, "quic", short)
	lo, hi := a, b
	if hi.id < lo.id {
		lo, hi = hi, lo
	}
	// A TCP port on 127.0.0.1 that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	loLog := watchConns(lo)
	if _, err := lo.friends.Add(hi.inviteAt(append(hi.quicAddrs(), dead)), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := hi.friends.Add(lo.inviteAt(lo.quicAddrs()), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "friends online", func() bool { return online(lo, hi.id) && online(hi, lo.id) })
	conns := lo.host.Network().ConnsToPeer(hi.id)
	// Before hi listed lo, hi's gater may have refused lo's first dial:
	// only what closes from now on counts.
	_, discBefore := loLog.snapshot()
	start := time.Now()
	waitFor(t, 30*time.Second, "three checks of the dead TCP address", func() bool { return lo.conn.Stats().TCPProbes >= 3 })
	elapsed := time.Since(start)
	s := lo.conn.Stats()
	if s.TCPUpgradeCloses != 0 || s.TCPUpgraded != 0 || hi.conn.Stats().TCPUpgradeCloses != 0 {
		t.Fatalf("closed %d connections for a TCP port that does not answer (moved %d)", s.TCPUpgradeCloses, s.TCPUpgraded)
	}
	if s.TCPProbesFailed != s.TCPProbes {
		t.Errorf("%d of %d checks of a dead port succeeded", s.TCPProbes-s.TCPProbesFailed, s.TCPProbes)
	}
	for _, c := range conns {
		if c.IsClosed() {
			t.Errorf("the QUIC connection %s was closed", c.RemoteMultiaddr())
		}
	}
	if _, disc := loLog.snapshot(); disc != discBefore {
		t.Errorf("%d connections to the friend closed", disc-discBefore)
	}
	// The backoff doubles: in elapsed there is room for at most
	// 1 + log2(elapsed/interval) + 1 checks (the first one included).
	bound := uint64(2)
	for d := interval; d < elapsed+interval; d *= 2 {
		bound++
	}
	if s.TCPProbes > bound {
		t.Errorf("%d checks in %v, want at most %d (backoff from %v)", s.TCPProbes, elapsed, bound, interval)
	}
	t.Logf("%d checks in %v after online, none closed a connection", s.TCPProbes, elapsed)
}

// TestFriendMovedBackToTCPAfterLosingIt: friends moved from QUIC to TCP
// lose their TCP connection and meet again over QUIC alone (as a relay
// and a holder did in wan-bench's lossy profile, 21 s into a download).
// The lower peer ID must move the friend to TCP again after
// TCPRemoveDelay, not after TCPUpgradeInterval (10 minutes), the backoff
// of failed checks.
func TestFriendMovedBackToTCPAfterLosingIt(t *testing.T) {
	a := newPeer(t, "both")
	b := newPeer(t, "both")
	lo, hi := a, b
	if hi.id < lo.id {
		lo, hi = hi, lo
	}
	if _, err := lo.friends.Add(hi.inviteAt(hi.quicAddrs()), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := hi.friends.Add(lo.inviteAt(lo.quicAddrs()), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the first move to TCP", func() bool {
		return lo.conn.Stats().TCPUpgraded == 1 && openTCPConns(lo, hi) > 0
	})
	moved := time.Now()

	// The TCP connection is lost and only QUIC comes back.
	releaseLo := lo.gater.dialOnly(hi.id, hi.quicAddrs()[0])
	releaseHi := hi.gater.dialOnly(lo.id, lo.quicAddrs()[0])
	for _, c := range lo.host.Network().ConnsToPeer(hi.id) {
		c.Close()
	}
	waitFor(t, 20*time.Second, "the friends on QUIC alone", func() bool {
		return online(lo, hi.id) && online(hi, lo.id) && openTCPConns(lo, hi) == 0 && len(lo.conn.quicOnlyConns(hi.id)) > 0
	})
	releaseLo()
	releaseHi()
	waitFor(t, TCPRemoveDelay+20*time.Second, "the second move to TCP", func() bool {
		return lo.conn.Stats().TCPUpgraded == 2 && openTCPConns(lo, hi) > 0
	})
	if since := time.Since(moved); since < TCPRemoveDelay {
		t.Errorf("moved again %v after the first move, before TCPRemoveDelay (%v)", since, TCPRemoveDelay)
	}
	if hs := hi.conn.Stats(); hs.TCPUpgradeCloses != 0 {
		t.Errorf("higher peer ID closed %d connections; only the lower one moves", hs.TCPUpgradeCloses)
	}
}
