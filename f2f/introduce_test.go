package f2f

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// inviter is a peer that hands out introduction invites.
type inviter struct {
	*testPeer
	in *Introductions
}

func newInviter(t *testing.T) *inviter {
	a := newPeer(t, "tcp")
	in, err := OpenIntroductions(a.db, a.friends, testLog)
	if err != nil {
		t.Fatal(err)
	}
	ServeIntroductions(a.host, a.gater, in)
	return &inviter{a, in}
}

// introInvite issues a token and returns the parsed introduction invite.
func (a *inviter) introInvite(t *testing.T, ttl time.Duration) Invite {
	t.Helper()
	seed, exp, err := a.in.Issue(ttl)
	if err != nil {
		t.Fatal(err)
	}
	text, err := NewIntroInvite(a.key, a.host.Addrs(), "inviter", seed, exp)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ParseInvite(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.IntroKey) != 32 || !inv.IntroExpires.Equal(exp) {
		t.Fatalf("invite lost its token: %+v", inv)
	}
	return inv
}

// introduce has p present inv's token with p's own invite.
func introduce(p *testPeer, inv Invite) (string, error) {
	text, err := NewInvite(p.key, p.host.Addrs(), "p")
	if err != nil {
		return "", err
	}
	return Introduce(context.Background(), inv, p.key, text, nil)
}

// TestIntroductionTokens: a table of tokens, valid, used, replayed,
// expired and forged, and of introductions bound to another key; only
// the valid token, used once, makes a friend.
func TestIntroductionTokens(t *testing.T) {
	a := newInviter(t)
	b, c, d := newPeer(t, "tcp"), newPeer(t, "tcp"), newPeer(t, "tcp")
	used := a.introInvite(t, time.Hour)
	expired := a.introInvite(t, time.Hour)
	forged := used
	forged.IntroKey = make([]byte, 32)
	rand.Read(forged.IntroKey)
	bound := a.introInvite(t, time.Hour)

	cases := []struct {
		name   string
		run    func() (string, error)
		before func()
		want   error
		friend *testPeer // who must be a friend of A afterwards (nil: nobody new)
	}{
		{name: "valid", run: func() (string, error) { return introduce(b, used) }, friend: b},
		{name: "replayed by the same key", run: func() (string, error) { return introduce(b, used) }, want: ErrIntroRefused},
		{name: "used, second key", run: func() (string, error) { return introduce(c, used) }, want: ErrIntroRefused},
		{name: "expired", run: func() (string, error) { return introduce(c, expired) }, want: ErrIntroRefused,
			before: func() {
				later := func() time.Time { return time.Now().Add(2 * time.Hour) }
				a.in.clock.Store(&later)
			}},
		{name: "forged", run: func() (string, error) { return introduce(c, forged) }, want: ErrIntroRefused,
			before: func() { a.in.clock.Store(nil) }},
		{name: "another node's invite", want: ErrIntroRefused, run: func() (string, error) {
			// D holds the token but presents C's invite, signed by D.
			text, _ := NewInvite(c.key, c.host.Addrs(), "c")
			return Introduce(context.Background(), bound, d.key, text, nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			friendsBefore := len(a.friends.IDs())
			got, err := tc.run()
			if tc.want == nil && (err != nil || got != IntroAccepted) {
				t.Fatalf("got %q, %v; want accepted", got, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %q, %v; want %v", got, err, tc.want)
			}
			wantFriends := friendsBefore
			if tc.friend != nil {
				wantFriends++
				if !a.friends.IsFriend(tc.friend.id) {
					t.Fatal("the introduced node is not a friend")
				}
			}
			if n := len(a.friends.IDs()); n != wantFriends {
				t.Fatalf("%d friends, want %d", n, wantFriends)
			}
		})
	}
	if a.friends.IsFriend(c.id) || a.friends.IsFriend(d.id) {
		t.Fatal("a refused introduction made a friend")
	}
	// Used, expired and forged tokens were refused by the gater (no
	// stream at all), the bad binding by the introduction itself.
	if st := a.in.Stats(); st.Accepted != 1 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
	if n := a.gater.Refused(); n < 4 {
		t.Fatalf("the gater refused %d token connections, want at least 4", n)
	}
	// B, introduced, adds A: they are friends on both sides and connect.
	b.add(a.testPeer)
	waitFor(t, 10*time.Second, "A and B online", func() bool { return online(a.testPeer, b.id) && online(b, a.id) })
}

// tokenHost is a bare host with the key of an introduction token.
func tokenHost(t *testing.T, seed []byte) host.Host {
	k, err := introKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(k), libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestIntroductionTokenOpensNothingElse attacks the token's admission: a
// token's connection gets no stream but the introduction (no test
// protocol, no identify: it learns nothing of the inviter), and a
// stranger without a token opens no stream at all.
func TestIntroductionTokenOpensNothingElse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newInviter(t)
	inv := a.introInvite(t, time.Hour)
	th := tokenHost(t, inv.IntroKey)
	if err := th.Connect(ctx, peer.AddrInfo{ID: a.id, Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if _, err := th.NewStream(ctx, a.id, testProto); err == nil {
		// libp2p may return the stream before the remote refuses it:
		// the first read fails then.
		s, _ := th.NewStream(ctx, a.id, testProto)
		if s != nil {
			s.Write([]byte{1})
			if _, err := s.Read(make([]byte, 1)); err == nil {
				t.Fatal("a token opened the test protocol")
			}
		}
	}
	tokenID := th.ID()
	waitFor(t, 5*time.Second, "A to refuse the token's other streams", func() bool { return a.gater.Stats().IntroStreamsRefused > 0 })
	if a.rec.count(tokenID) != 0 {
		t.Fatal("the test protocol's handler ran for a token")
	}
	// Identify would have told it every protocol of A; multistream
	// negotiation acknowledges, at most, the one it tried.
	if protos, _ := th.Peerstore().GetProtocols(a.id); len(protos) > 1 || (len(protos) == 1 && protos[0] != testProto) {
		t.Fatalf("the token's host learned A's protocols through identify: %v", protos)
	}
	if addrs := th.Peerstore().Addrs(a.id); len(addrs) > len(a.host.Addrs()) {
		t.Fatalf("the token's host learned more addresses of A: %v", addrs)
	}
	if a.gater.Stats().IntroAdmitted == 0 {
		t.Fatal("the token's connection was not counted")
	}

	// A stranger with its own key and no token.
	x := newPeer(t, "tcp")
	x.add(a.testPeer)
	refused := a.gater.Refused()
	x.host.Peerstore().AddAddrs(a.id, a.host.Addrs(), time.Minute)
	if s, err := x.host.NewStream(ctx, a.id, IntroduceProtocol); err == nil {
		s.Write([]byte{1})
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Fatal("a stranger without a token opened the introduction")
		}
	}
	waitFor(t, 5*time.Second, "A to refuse the stranger", func() bool { return a.gater.Refused() > refused })
	if st := a.in.Stats(); st.Accepted+st.Refused+st.Pending != 0 {
		t.Fatalf("an introduction was taken: %+v", st)
	}
}

// TestIntroductionApproval: with approval on, an introduction waits; the
// owner's approval makes the friend.
func TestIntroductionApproval(t *testing.T) {
	a := newInviter(t)
	a.in.SetApprove(true)
	e := newPeer(t, "tcp")
	got, err := introduce(e, a.introInvite(t, time.Hour))
	if err != nil || got != IntroPending {
		t.Fatalf("got %q, %v; want pending", got, err)
	}
	if a.friends.IsFriend(e.id) {
		t.Fatal("added before approval")
	}
	reqs := a.in.Requests()
	if len(reqs) != 1 || reqs[0].ID != e.id {
		t.Fatalf("requests %+v", reqs)
	}
	if _, err := a.in.Approve(e.id.String()); err != nil {
		t.Fatal(err)
	}
	if !a.friends.IsFriend(e.id) || len(a.in.Requests()) != 0 {
		t.Fatal("approval did not make the friend")
	}
	if _, err := a.in.Approve(e.id.String()); !errors.Is(err, ErrNoSuchRequest) {
		t.Fatalf("second approval: %v", err)
	}
}
