package f2f

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"kith/f2f/pb"
)

func FuzzReachRequest(f *testing.F) {
	a := ma.StringCast("/ip4/1.2.0.1/tcp/4001")
	for _, m := range []*pb.ReachRequest{
		{},
		{Addrs: [][]byte{a.Bytes()}},
		{Addrs: [][]byte{a.Bytes(), []byte("junk")}},
		{Addrs: make([][]byte, MaxReachAddrs+1)},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		addrs, err := readReachRequest(b)
		if err != nil {
			return
		}
		if len(addrs) > MaxReachAddrs {
			t.Fatalf("%d addresses accepted", len(addrs))
		}
	})
}

func FuzzReachAnswer(f *testing.F) {
	for _, m := range []*pb.ReachAnswer{
		{},
		{Results: []pb.ReachAnswer_Result{pb.ReachAnswer_REACHED, pb.ReachAnswer_FAILED}},
		{Results: []pb.ReachAnswer_Result{7, -1}},
		{Results: make([]pb.ReachAnswer_Result, 20)},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b, 2)
	}
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		n = max(0, min(n, MaxReachAddrs))
		res, err := readReachAnswer(b, n)
		if err != nil {
			return
		}
		if len(res) > n {
			t.Fatalf("%d results for %d addresses", len(res), n)
		}
		for _, v := range res {
			if v != pb.ReachAnswer_SKIPPED && v != pb.ReachAnswer_REACHED && v != pb.ReachAnswer_FAILED {
				t.Fatalf("result %v passed", v)
			}
		}
	})
}

func FuzzIntroduction(f *testing.F) {
	inviterKey, inviter := newKey(f)
	_, token := newKey(f)
	k, _ := newKey(f)
	text, err := NewInvite(k, nil, "intro")
	if err != nil {
		f.Fatal(err)
	}
	sig, _ := k.Sign(introBinding(inviter, token, text))
	own, _ := NewInvite(inviterKey, nil, "inviter")
	for _, m := range []*pb.Introduction{
		{Invite: text, Binding: sig},
		{Invite: text, Binding: sig[:10]},
		{Invite: own, Binding: sig},
		{Invite: "kith:garbage"},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, _, err := readIntroduction(b, inviter, token)
		if err != nil {
			return
		}
		if inv.ID == inviter || inv.ID == token || len(inv.IntroKey) > 0 {
			t.Fatalf("accepted an introduction of %s", inv.ID)
		}
	})
}
