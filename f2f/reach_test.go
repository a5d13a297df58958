package f2f

import (
	"net"
	"strconv"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"kith/f2f/pb"
)

// startReach runs Reach on p, checking the addresses cand admits (the
// public ones in a real node; here loopback ones).
func startReach(t *testing.T, p *testPeer, cand func(ma.Multiaddr) bool) *Reach {
	t.Helper()
	r, err := NewReach(ReachConfig{Host: p.host, Key: p.key, Friends: p.friends, Traversal: p.trav, Log: testLog, candidate: cand})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// closedPort returns a loopback TCP address nothing listens on.
func closedPort(t *testing.T) ma.Multiaddr {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(port))
}

// TestReachDialBack: a friend dials A back with its own key from a fresh
// port. A's real address is reached (A is "public"), an address nothing
// listens on is not; a node whose only candidate is unreachable is
// "private". Reached addresses are advertised.
func TestReachDialBack(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			closed := closedPort(t)
			a := newPeerWith(t, tr, func(p *testPeer) { p.trav = NewTraversal([]ma.Multiaddr{closed}) })
			p := newPeer(t, tr)
			befriend(a, p)
			waitFor(t, 10*time.Second, "friends online", func() bool { return online(a, p.id) && online(p, a.id) })
			startReach(t, p, isLoopbackAddr)
			ra := startReach(t, a, isLoopbackAddr)
			ra.Recheck()
			waitFor(t, 20*time.Second, "A's reachability", func() bool { return ra.State().State != ReachUnknown })
			st := ra.State()
			t.Logf("A: %+v", st)
			if st.State != ReachPublic {
				t.Fatalf("A's own address not reached: %+v", st)
			}
			own := ""
			for _, l := range a.host.Network().ListenAddresses() {
				if tw := thinWaist(l); tw != nil {
					own = tw.String()
				}
			}
			if len(st.Reachable) != 1 || st.Reachable[0] != own {
				t.Fatalf("reachable %v, want [%s]", st.Reachable, own)
			}
			if len(st.Unreachable) != 1 || st.Unreachable[0] != closed.String() {
				t.Fatalf("unreachable %v, want [%s]", st.Unreachable, closed)
			}
			if len(st.CheckedBy) != 1 || st.CheckedBy[0] != p.id {
				t.Fatalf("checked by %v", st.CheckedBy)
			}
			adopted := ra.Adopted()
			if len(adopted) != 1 || adopted[0].String() != own {
				t.Fatalf("adopted %v", adopted)
			}
		})
	}
	t.Run("private", func(t *testing.T) {
		closed := closedPort(t)
		a := newPeerWith(t, "tcp", func(p *testPeer) { p.trav = NewTraversal([]ma.Multiaddr{closed}) })
		p := newPeer(t, "tcp")
		befriend(a, p)
		waitFor(t, 10*time.Second, "friends online", func() bool { return online(a, p.id) && online(p, a.id) })
		startReach(t, p, isLoopbackAddr)
		ra := startReach(t, a, func(x ma.Multiaddr) bool { return x.Equal(closed) })
		ra.Recheck()
		waitFor(t, 20*time.Second, "A's reachability", func() bool { return ra.State().State != ReachUnknown })
		if st := ra.State(); st.State != ReachPrivate || len(st.Unreachable) != 1 {
			t.Fatalf("A with only a closed port: %+v", st)
		}
	})
}

// TestReachDialsOnlyTheAsker attacks the dial-back: a friend asks P to
// dial an address on another IP than the friend's connection (a service
// of someone else) and one its policy refuses; P dials neither (SKIPPED,
// nothing connects to the listener). A friend asking in a loop is cut
// off at the rate.
func TestReachDialsOnlyTheAsker(t *testing.T) {
	other, accepted, err := hangUpListener(t, "127.0.0.2")
	if err != nil {
		t.Skip("no 127.0.0.2 here:", err)
	}
	a, p := newPeer(t, "tcp"), newPeer(t, "tcp")
	befriend(a, p)
	waitFor(t, 10*time.Second, "friends online", func() bool { return online(a, p.id) && online(p, a.id) })
	startReach(t, p, isLoopbackAddr)
	ra := startReach(t, a, isLoopbackAddr)
	metadata := ma.StringCast("/ip4/169.254.169.254/tcp/80")
	res, err := ra.ask(p.id, []ma.Multiaddr{other, metadata})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0] != pb.ReachAnswer_SKIPPED || res[1] != pb.ReachAnswer_SKIPPED {
		t.Fatalf("answers %v, want both skipped", res)
	}
	time.Sleep(200 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("P dialled another IP than the asker's %d times", n)
	}
	// The rate: ReachRequestBurst answered, then refused.
	answered := 1
	for range 2 * ReachRequestBurst {
		if _, err := ra.ask(p.id, []ma.Multiaddr{other}); err == nil {
			answered++
		}
	}
	if answered != ReachRequestBurst {
		t.Fatalf("%d requests answered in a row, want %d", answered, ReachRequestBurst)
	}
}
