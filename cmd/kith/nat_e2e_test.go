package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"kith/f2f"
	"kith/internal/netnstest"
	"kith/node/api"
)

// The topology of issue 12, in network namespaces: an "internet" segment
// (a bridge in namespace i) with public-looking addresses (1.2.0.0/16,
// as go-libp2p's own hole-punching tests use: libp2p relays and punches
// only through addresses manet.IsPublicAddr accepts); two home routers
// RA and RB that MASQUERADE a LAN each; HA behind RA, HB behind RB; P on
// the internet side with no NAT. Nothing links these namespaces to the
// machine's own network (netnstest checks before any daemon starts).
const (
	raWAN = "1.2.0.1"
	rbWAN = "1.2.0.2"
	pIP   = "1.2.0.3"
	haIP  = "10.0.1.2"
	hbIP  = "10.0.2.2"
)

type natTopo struct {
	net                  *netnstest.Net
	i, ra, rb, p, ha, hb string
}

func newNATTopo(t *testing.T) *natTopo {
	t.Helper()
	n := netnstest.New(t, "iptables")
	tp := &natTopo{net: n, i: n.Add("i"), ra: n.Add("ra"), rb: n.Add("rb"), p: n.Add("p"), ha: n.Add("ha"), hb: n.Add("hb")}
	for _, x := range []struct{ ns, port, ip string }{{tp.ra, "ra", raWAN}, {tp.rb, "rb", rbWAN}, {tp.p, "p", pIP}} {
		n.Link(x.ns, "wan", tp.i, x.port)
		n.Addr(x.ns, "wan", x.ip+"/16")
	}
	n.Bridge(tp.i, "br0", "ra", "rb", "p")
	for _, x := range []struct{ r, h, sub string }{{tp.ra, tp.ha, "1"}, {tp.rb, tp.hb, "2"}} {
		n.Link(x.r, "lan", x.h, "eth0")
		n.Addr(x.r, "lan", "10.0."+x.sub+".1/24")
		n.Addr(x.h, "eth0", "10.0."+x.sub+".2/24")
		n.DefaultRoute(x.h, "10.0."+x.sub+".1")
		n.HomeRouter(x.r, "wan", "lan")
	}
	n.Isolated()
	return tp
}

// startNSDaemon runs `kith up` for home inside namespace ns, listening on
// every interface of the namespace (TCP and QUIC on port), without mDNS
// unless extra asks for it.
func startNSDaemon(t *testing.T, n *netnstest.Net, ns, home string, port int, extra ...string) *daemon {
	t.Helper()
	p := strconv.Itoa(port)
	args := []string{"up", "--home", home, "--listen", "/ip4/0.0.0.0/tcp/" + p, "--listen", "/ip4/0.0.0.0/udp/" + p + "/quic-v1"}
	mdns := false
	for _, e := range extra {
		if e == "--mdns" {
			mdns = true
			continue
		}
		args = append(args, e)
	}
	if !mdns {
		args = append(args, "--no-mdns")
	}
	d := &daemon{home: home, log: &syncBuffer{}, done: make(chan error, 1), started: time.Now()}
	d.cmd = n.Command(ns, kithBin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = append(os.Environ(), "KITH_HOME=")
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.Started(d.cmd)
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if dir := os.Getenv("KITH_NAT_LOGDIR"); dir != "" {
			name := fmt.Sprintf("%s-%d-%s.log", filepath.Base(home), port, d.started.Format("150405.000"))
			os.WriteFile(filepath.Join(dir, name), []byte(d.log.String()), 0o600)
		}
		if t.Failed() {
			t.Logf("log of %s (port %d):\n%s", filepath.Base(home), port, tail(d.log.String(), 60))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for kith(t, "status", "--home", home).code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("daemon in %s did not come up:\n%s", home, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func inviteOf(t *testing.T, home string) api.InviteInfo {
	t.Helper()
	var inv api.InviteInfo
	if err := json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", home)), &inv); err != nil {
		t.Fatal(err)
	}
	return inv
}

func statusOf(t *testing.T, home string) api.Status {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(mustKith(t, "status", "--json", "--home", home)), &st); err != nil {
		t.Fatal(err)
	}
	if st.Reach == nil {
		t.Fatalf("status of %s has no reachability", home)
	}
	return st
}

func friendOf(t *testing.T, home, id string) api.FriendInfo {
	t.Helper()
	for _, f := range friendLs(t, home) {
		if f.PeerID == id {
			return f
		}
	}
	t.Fatalf("%s has no friend %s", home, id)
	return api.FriendInfo{}
}

// waitFriendState polls home's friend ls until cond holds for friend id,
// for at most d, and returns the friend then and how long it took.
func waitFriendState(t *testing.T, home, id string, d time.Duration, what string, cond func(api.FriendInfo) bool) (api.FriendInfo, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		f := friendOf(t, home, id)
		if cond(f) {
			return f, time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: %s not within %v: %+v", filepath.Base(home), what, d, f)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func befriendHomes(t *testing.T, a, b string) {
	t.Helper()
	mustKith(t, "friend", "add", inviteOf(t, b).Invite, "--home", a)
	mustKith(t, "friend", "add", inviteOf(t, a).Invite, "--home", b)
}

// writeRandom writes size pseudo-random bytes to path.
func writeRandom(t *testing.T, path string, size int64, seed byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{seed}), size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// linkOf returns the link of the shared file name of home.
func linkOf(t *testing.T, home, name string) string {
	t.Helper()
	for _, l := range strings.Fields(mustKith(t, "share", "ls", "--links", "--home", home)) {
		if strings.Contains(l, "name="+name) {
			return l
		}
	}
	t.Fatalf("%s shares no %s", home, name)
	return ""
}

// fetch downloads link into dir with home's daemon and waits for it.
func fetch(t *testing.T, home, link, dir string, d time.Duration) api.DownloadInfo {
	t.Helper()
	os.MkdirAll(dir, 0o700)
	mustKith(t, "get", link, "--to", dir, "--detach", "--home", home)
	root := strings.TrimPrefix(strings.SplitN(link, "?", 2)[0], "kith://file/")
	deadline := time.Now().Add(d)
	for {
		for _, dl := range downloadsOf(t, home) {
			if dl.Root != root {
				continue
			}
			switch dl.State {
			case api.StateDone:
				return dl
			case api.StateFailed:
				t.Fatalf("download failed: %+v", dl)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("download of %s not done within %v: %+v", link, d, downloadsOf(t, home))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func relayBytes(t *testing.T, home string) uint64 {
	t.Helper()
	st := statusOf(t, home)
	if st.Reach.Relay == nil {
		t.Fatal("P does not relay")
	}
	return st.Reach.Relay.Bytes
}

const mib = 1 << 20

// TestNATTraversal is issue 12 in network namespaces: real `kith up`
// daemons behind two home routers and a friend with a public address.
// The subtests run in order on one topology.
func TestNATTraversal(t *testing.T) {
	top := t // daemons started in a subtest outlive it
	tp := newNATTopo(t)
	dir := t.TempDir()
	homes := map[string]string{}
	for _, name := range []string{"p", "ha", "hb"} {
		homes[name] = filepath.Join(dir, name)
		mustKith(t, "init", "--name", name, "--home", homes[name], "--port", "4001")
	}
	hP, hA, hB := homes["p"], homes["ha"], homes["hb"]
	shared := filepath.Join(dir, "shared")
	os.MkdirAll(shared, 0o700)
	writeRandom(t, filepath.Join(shared, "big.bin"), 256*mib, 1)
	writeRandom(t, filepath.Join(shared, "medium.bin"), 64*mib, 2)

	const relayRate = 8 * mib
	started := time.Now()
	startNSDaemon(t, tp.net, tp.p, hP, 4001, "--relay-rate", "8MiB")
	dA := startNSDaemon(t, tp.net, tp.ha, hA, 4001)
	dB := startNSDaemon(t, tp.net, tp.hb, hB, 4001)
	idP, idA, idB := inviteOf(t, hP).PeerID, inviteOf(t, hA).PeerID, inviteOf(t, hB).PeerID
	befriendHomes(t, hA, hP)
	befriendHomes(t, hB, hP)
	waitFriend(t, hA, idP, true)
	waitFriend(t, hB, idP, true)
	mustKith(t, "share", "add", shared, "--home", hB)

	t.Run("relayed then hole-punched", func(t *testing.T) {
		// Both run and know P: both learn from P that they are behind
		// NAT and reserve a slot on P's relay.
		for _, h := range []string{hA, hB} {
			deadline := time.Now().Add(30 * time.Second)
			for len(statusOf(t, h).Reach.Reservations) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s holds no reservation on P: %+v", h, statusOf(t, h).Reach)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		t.Logf("FIGURE HA and HB held reservations on P %v after they started", time.Since(started))
		// Now they become friends. HA adds HB first, as a user pasting
		// an invite: it cannot reach HB yet.
		invB := inviteOf(t, hB)
		mustKith(t, "friend", "add", invB.Invite, "--home", hA)
		time.Sleep(2 * time.Second)
		invA := inviteOf(t, hA)
		if !strings.Contains(strings.Join(invA.Addrs, " "), "/p2p/"+idP+"/p2p-circuit") {
			t.Fatalf("HA's invite has no circuit address through P: %v", invA.Addrs)
		}

		mustKith(t, "friend", "add", invA.Invite, "--home", hB)
		f, tRelay := waitFriendState(t, hA, idB, 10*time.Second, "HB online", func(f api.FriendInfo) bool { return f.Online })
		t.Logf("HA-HB connected in %v, path %q", tRelay, f.Path)
		// A minute: under the whole suite on two cores a punch's
		// simultaneous open can miss a few times (the retries come
		// after 3, 6, 12 and 24 s); alone it takes milliseconds.
		f, tDirect := waitFriendState(t, hA, idB, time.Minute, "a direct connection", func(f api.FriendInfo) bool {
			return f.Online && (f.Path == f2f.PathHolePunched || f.Path == f2f.PathDirect)
		})
		t.Logf("FIGURE time to relayed: %v; to %s: %v", tRelay, f.Path, tDirect)
		if st := statusOf(t, hP); st.Reach.Relay.CircuitsTotal == 0 {
			t.Fatalf("the first connection did not go through P: %+v", st.Reach.Relay)
		}
		// Text and JSON say the same.
		if out := mustKith(t, "friend", "ls", "--home", hA); !strings.Contains(out, f.Path) {
			t.Fatalf("friend ls:\n%s", out)
		}
		deadline := time.Now().Add(20 * time.Second)
		for statusOf(t, hA).Reach.Reachability.State != f2f.ReachPrivate {
			if time.Now().After(deadline) {
				t.Fatalf("HA does not know it is behind NAT: %+v", statusOf(t, hA).Reach.Reachability)
			}
			time.Sleep(500 * time.Millisecond)
		}
		stA := statusOf(t, hA)
		if len(stA.Reach.Reservations) == 0 || (f.Path == f2f.PathHolePunched && stA.Reach.HolePunches.Succeeded+statusOf(t, hB).Reach.HolePunches.Succeeded == 0) {
			t.Fatalf("HA's status: %+v", stA.Reach)
		}
		if out := mustKith(t, "status", "--home", hA); !strings.Contains(out, "behind NAT") || !strings.Contains(out, "reserved on p") {
			t.Fatalf("status text:\n%s", out)
		}
		if out := mustKith(t, "status", "--home", hP); !strings.Contains(out, "directly reachable") {
			t.Fatalf("P's status text:\n%s", out)
		}

		// The relayed connection is closed: every stream (the router and
		// lobby links, chat) runs on the direct one now.
		deadline = time.Now().Add(15 * time.Second)
		for statusOf(t, hP).Reach.Relay.Circuits != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("P still relays for HA and HB: %+v", statusOf(t, hP).Reach.Relay)
			}
			time.Sleep(200 * time.Millisecond)
		}
		mustKith(t, "chat", "send", "hb", "hello, directly", "--home", hA)
		deadline = time.Now().Add(20 * time.Second)
		for !strings.Contains(mustKith(t, "chat", "log", "ha", "--home", hB), "hello, directly") {
			if time.Now().After(deadline) {
				t.Fatal("chat over the punched connection not delivered")
			}
			time.Sleep(200 * time.Millisecond)
		}
		if n := statusOf(t, hP).Reach.Relay.Circuits; n != 0 {
			t.Fatalf("chat went through P (%d circuits)", n)
		}

		// 256 MiB from HB to HA: over the direct connection.
		before := relayBytes(t, hP)
		start := time.Now()
		dl := fetch(t, hA, linkOf(t, hB, "big.bin"), filepath.Join(dir, "got-big"), 3*time.Minute)
		took := time.Since(start)
		relayed := relayBytes(t, hP) - before
		t.Logf("FIGURE direct download: 256 MiB in %v (%.1f MiB/s); P relayed %d bytes meanwhile", took, 256/took.Seconds(), relayed)
		if dl.Size != 256*mib {
			t.Fatalf("download %+v", dl)
		}
		if relayed >= mib {
			t.Fatalf("P relayed %d bytes of a download over the direct connection", relayed)
		}
		if g := friendOf(t, hA, idB); g.Path != f.Path {
			t.Fatalf("path after the download: %+v", g)
		}
	})

	t.Run("random ports defeat punching: relayed", func(t *testing.T) {
		dB.stop(t)
		tp.net.SetMasquerade(tp.rb, "wan", "--random-fully")
		// A new port, so that no connection tracked before the change
		// keeps its old mapping.
		dB = startNSDaemon(top, tp.net, tp.hb, hB, 4002)
		f, _ := waitFriendState(t, hA, idB, 30*time.Second, "HB online through P", func(f api.FriendInfo) bool {
			return f.Online && f.Path == f2f.PathRelayed
		})
		if f.Relay != "p" || f.RelayID != idP {
			t.Fatalf("relayed through %q (%s)", f.Relay, f.RelayID)
		}
		if out := mustKith(t, "friend", "ls", "--home", hA); !strings.Contains(out, "relayed through p") {
			t.Fatalf("friend ls:\n%s", out)
		}
		// Punching is tried and fails; the link stays relayed.
		deadline := time.Now().Add(30 * time.Second)
		for statusOf(t, hA).Reach.HolePunches.Failed+statusOf(t, hB).Reach.HolePunches.Failed == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no hole punch was tried")
			}
			time.Sleep(500 * time.Millisecond)
		}
		if f := friendOf(t, hA, idB); f.Path != f2f.PathRelayed {
			t.Fatalf("path %+v", f)
		}
		// Chat and browse work through P.
		mustKith(t, "chat", "send", "hb", "hello through p", "--home", hA)
		deadline = time.Now().Add(20 * time.Second)
		for !strings.Contains(mustKith(t, "chat", "log", "ha", "--home", hB), "hello through p") {
			if time.Now().After(deadline) {
				t.Fatal("chat through the relay not delivered")
			}
			time.Sleep(200 * time.Millisecond)
		}
		if out := mustKith(t, "browse", "hb", "--home", hA); !strings.Contains(out, "shared") {
			t.Fatalf("browse through the relay:\n%s", out)
		}
		// 64 MiB through P, at P's relay rate.
		before := relayBytes(t, hP)
		start := time.Now()
		fetch(t, hA, linkOf(t, hB, "medium.bin"), filepath.Join(dir, "got-medium"), 2*time.Minute)
		took := time.Since(start)
		relayed := relayBytes(t, hP) - before
		t.Logf("FIGURE relayed download: 64 MiB in %v (%.1f MiB/s) at P's cap of 8 MiB/s; P relayed %d bytes", took, 64/took.Seconds(), relayed)
		if relayed < 64*mib {
			t.Fatalf("P relayed only %d bytes of a 64 MiB download", relayed)
		}
		if bound := uint64(float64(relayRate)*took.Seconds()) + 4*mib; relayed > bound {
			t.Fatalf("P relayed %d bytes in %v, over its cap (%d)", relayed, took, bound)
		}
		st := statusOf(t, hP).Reach.Relay
		if st.Rate != relayRate || st.Circuits == 0 {
			t.Fatalf("P's status does not report its relaying: %+v", st)
		}
		if out := mustKith(t, "status", "--home", hP); !strings.Contains(out, "cap 8.0 MiB/s") {
			t.Fatalf("P's status text:\n%s", out)
		}
	})

	hS := filepath.Join(dir, "s")
	t.Run("a stranger cannot use P", func(t *testing.T) {
		mustKith(t, "init", "--name", "s", "--home", hS, "--port", "4010")
		startNSDaemon(top, tp.net, tp.hb, hS, 4010)
		before := statusOf(t, hP).Refused
		mustKith(t, "friend", "add", inviteOf(t, hP).Invite, "--home", hS) // S lists P; P does not list S
		deadline := time.Now().Add(20 * time.Second)
		for statusOf(t, hP).Refused == before {
			if time.Now().After(deadline) {
				t.Fatal("P never refused the stranger")
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(statusOf(t, hS).Reach.Reservations) != 0 {
			t.Fatal("a stranger holds a reservation on P")
		}
		if f := friendOf(t, hS, idP); f.Online || f.Reason == "" {
			t.Fatalf("the stranger's view of P: %+v", f)
		}
	})

	t.Run("port mapping", func(t *testing.T) {
		if _, err := exec.LookPath("miniupnpd"); err != nil {
			t.Skip("miniupnpd not installed (.ci/run installs it)")
		}
		if _, err := exec.LookPath("nft"); err != nil {
			t.Skip("nft not installed")
		}
		startMiniupnpd(top, tp, dir)
		// HA comes back on a new port: UPnP maps it.
		dA.stop(t)
		dA = startNSDaemon(top, tp.net, tp.ha, hA, 4003)
		deadline := time.Now().Add(40 * time.Second)
		var st api.Status
		for {
			st = statusOf(t, hA)
			if st.Reach.Reachability.State == f2f.ReachPublic && len(st.Reach.PortMapping.Mapped) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("HA not reachable through its port mapping: %+v", st.Reach)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("HA: %s; mapped %v", st.Reach.Reachability.How, st.Reach.PortMapping.Mapped)
		// HB comes back and reaches HA: at its mapped port, not through
		// P (a circuit P still keeps for HA's old reservation is refused
		// by HA, which is reachable now).
		dB.stop(t)
		circuitsBefore := statusOf(t, hP).Reach.Relay.CircuitsTotal
		dB = startNSDaemon(top, tp.net, tp.hb, hB, 4002)
		f, took := waitFriendState(t, hB, idA, 30*time.Second, "HB reaching HA directly", func(f api.FriendInfo) bool {
			return f.Online && f.Path == f2f.PathDirect
		})
		t.Logf("FIGURE HB reached HA at its mapped port in %v (%s)", took, f.Path)
		if n := statusOf(t, hP).Reach.Relay.CircuitsTotal; n != circuitsBefore {
			t.Fatalf("P relayed %d circuits while HB reached the reachable HA", n-circuitsBefore)
		}
		if len(statusOf(t, hA).Reach.Reservations) != 0 {
			t.Fatal("a reachable HA holds relay reservations")
		}
		if out := mustKith(t, "status", "--home", hA); !strings.Contains(out, "port map:  /ip4/"+raWAN) {
			t.Fatalf("status text:\n%s", out)
		}
	})

	t.Run("address change", func(t *testing.T) {
		// HA gets a new address on its LAN while running.
		tp.net.DelAddr(tp.ha, "eth0", haIP+"/24")
		tp.net.Addr(tp.ha, "eth0", "10.0.1.12/24")
		tp.net.DefaultRoute(tp.ha, "10.0.1.1")
		start := time.Now()
		mustKith(t, "chat", "send", "ha", "after the move, from p", "--home", hP)
		mustKith(t, "chat", "send", "ha", "after the move, from hb", "--home", hB)
		for _, from := range []string{"p", "hb"} {
			for !strings.Contains(mustKith(t, "chat", "log", from, "--home", hA), "after the move, from "+from) {
				if time.Since(start) > 30*time.Second {
					t.Fatalf("%s's message to HA not delivered within 30 s of HA's move", from)
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("FIGURE %s reached HA again %v after its address changed", from, time.Since(start))
		}
		for _, home := range []string{hP, hB} {
			if f := friendOf(t, home, idA); !f.Online {
				t.Fatalf("%s sees HA offline: %+v", home, f)
			}
		}
	})

	t.Run("forwarded port and announce", func(t *testing.T) {
		// RB forwards 4004 to HB, which announces it; a re-sent invite
		// gives HA the new address.
		dB.stop(t)
		tp.net.Forward(tp.rb, "wan", "tcp", 4004, hbIP+":4004")
		tp.net.Forward(tp.rb, "wan", "udp", 4004, hbIP+":4004")
		dB = startNSDaemon(top, tp.net, tp.hb, hB, 4004,
			"--announce", "/ip4/"+rbWAN+"/tcp/4004", "--announce", "/ip4/"+rbWAN+"/udp/4004/quic-v1")
		inv := inviteOf(t, hB)
		if !strings.Contains(strings.Join(inv.Addrs, " "), "/ip4/"+rbWAN+"/tcp/4004") {
			t.Fatalf("HB's invite lacks its announced address: %v", inv.Addrs)
		}
		var added api.FriendInfo
		if err := json.Unmarshal([]byte(mustKith(t, "friend", "add", inv.Invite, "--json", "--home", hA)), &added); err != nil {
			t.Fatal(err)
		}
		if !added.Updated || !strings.Contains(strings.Join(added.Addrs, " "), rbWAN+"/tcp/4004") {
			t.Fatalf("re-sent invite did not update HB's addresses: %+v", added)
		}
		// Either HA dials the forwarded port, or, when HA still holds a
		// relay reservation from its move, HB reaches it through P first
		// and DCUtR replaces that with a punched direct connection, which
		// nothing then needs to replace. Both leave the relay; that the
		// forwarded port answers from outside is P's dial-back below.
		f, took := waitFriendState(t, hA, idB, 30*time.Second, "HA reaching HB directly", func(f api.FriendInfo) bool {
			return f.Online && (f.Path == f2f.PathDirect || f.Path == f2f.PathHolePunched)
		})
		t.Logf("HA reached HB in %v (%s)", took, f.Path)
		deadline := time.Now().Add(30 * time.Second)
		forwarded := "/ip4/" + rbWAN + "/tcp/4004"
		for st := statusOf(t, hB).Reach.Reachability; st.State != f2f.ReachPublic || !slices.Contains(st.Reachable, forwarded); st = statusOf(t, hB).Reach.Reachability {
			if time.Now().After(deadline) {
				t.Fatalf("HB with a forwarded port %s: %+v", forwarded, st)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	t.Run("warning when nothing reaches a node", func(t *testing.T) {
		// The stranger runs behind RB with no friend that relays for it:
		// 20 s after its start it is told what to do.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(statusOf(t, hS).Reach.Warning, "--announce") {
			if time.Now().After(deadline) {
				t.Fatalf("no warning for a node nobody can reach: %+v", statusOf(t, hS).Reach)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if out := mustKith(t, "status", "--home", hS); !strings.Contains(out, "warning:") {
			t.Fatalf("status text:\n%s", out)
		}
	})
}

// startMiniupnpd makes RA a UPnP IGD and NAT-PMP gateway for its LAN.
func startMiniupnpd(t *testing.T, tp *natTopo, dir string) {
	t.Helper()
	rules := `table inet kithupnp {
  chain miniupnpd {
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    jump miniupnpd
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
  }
}
`
	rulesFile := filepath.Join(dir, "upnp.nft")
	os.WriteFile(rulesFile, []byte(rules), 0o600)
	tp.net.Run(tp.ra, "nft", "-f", rulesFile)
	conf := filepath.Join(dir, "miniupnpd.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`ext_ifname=wan
listening_ip=lan
http_port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
uuid=3d5b2c4e-0b4a-4f6e-9d3c-2f1e0a9b8c7d
upnp_table_name=kithupnp
upnp_nat_table_name=kithupnp
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
lease_file=%s
allow 1024-65535 10.0.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, filepath.Join(dir, "upnp.leases"))), 0o600)
	log := &syncBuffer{}
	cmd := tp.net.Command(tp.ra, "miniupnpd", "-d", "-f", conf, "-P", filepath.Join(dir, "miniupnpd.pid"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tp.net.Started(cmd)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("miniupnpd:\n%s", tail(log.String(), 30))
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "Listening for NAT-PMP") {
		if time.Now().After(deadline) {
			t.Fatalf("miniupnpd did not start:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNATMovingLAN: two friends on a LAN that find each other with mDNS
// (only inside the test's namespaces) both change address while
// running; they are online again, and chat gets through, within 30 s.
func TestNATMovingLAN(t *testing.T) {
	n := netnstest.New(t)
	lan, l1, l2 := n.Add("lan"), n.Add("l1"), n.Add("l2")
	n.Link(l1, "eth0", lan, "l1")
	n.Link(l2, "eth0", lan, "l2")
	n.Bridge(lan, "br0", "l1", "l2")
	n.Addr(l1, "eth0", "10.9.0.1/24")
	n.Addr(l2, "eth0", "10.9.0.2/24")
	for _, ns := range []string{l1, l2} {
		n.IP(ns, "route", "replace", "224.0.0.0/4", "dev", "eth0")
	}
	n.Isolated()
	dir := t.TempDir()
	h1, h2 := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	mustKith(t, "init", "--name", "one", "--home", h1, "--port", "4001")
	mustKith(t, "init", "--name", "two", "--home", h2, "--port", "4001")
	startNSDaemon(t, n, l1, h1, 4001, "--mdns")
	startNSDaemon(t, n, l2, h2, 4001, "--mdns")
	befriendHomes(t, h1, h2)
	id1, id2 := inviteOf(t, h1).PeerID, inviteOf(t, h2).PeerID
	waitFriend(t, h1, id2, true)
	waitFriend(t, h2, id1, true)

	// Both move: new DHCP leases, say.
	for _, m := range []struct{ ns, old, new string }{{l1, "10.9.0.1/24", "10.9.0.11/24"}, {l2, "10.9.0.2/24", "10.9.0.12/24"}} {
		n.DelAddr(m.ns, "eth0", m.old)
		n.Addr(m.ns, "eth0", m.new)
		n.IP(m.ns, "route", "replace", "224.0.0.0/4", "dev", "eth0")
	}
	start := time.Now()
	mustKith(t, "chat", "send", "two", "moved, from one", "--home", h1)
	mustKith(t, "chat", "send", "one", "moved, from two", "--home", h2)
	for _, c := range []struct{ home, from, text string }{{h2, "one", "moved, from one"}, {h1, "two", "moved, from two"}} {
		for !strings.Contains(mustKith(t, "chat", "log", c.from, "--home", c.home), c.text) {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("%q not delivered within 30 s of both moving: %+v", c.text, friendLs(t, c.home))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("FIGURE two LAN friends that both moved were back in touch %v later", time.Since(start))
	for _, c := range []struct{ home, id, ip string }{{h1, id2, "10.9.0.12"}, {h2, id1, "10.9.0.11"}} {
		f := friendOf(t, c.home, c.id)
		if !f.Online || !strings.Contains(strings.Join(f.Addrs, " "), c.ip) {
			t.Fatalf("after the move: %+v", f)
		}
	}
}

// TestNATHolePunchTrials measures, for BENCHMARKS.md, in the topology of
// TestNATTraversal, KITH_NAT_TRIALS times (20 for the figures): two new
// nodes behind the two NATs start, befriend P, hold reservations on it,
// and become friends; the time from then to their relayed and to their
// hole-punched connection, and whether the punch succeeds. Then a
// 128 MiB download over a punched connection against one relayed by P
// with no rate cap. It runs only when KITH_NAT_TRIALS is set:
// `KITH_NAT_TRIALS=20 go test -run TestNATHolePunchTrials -v ./cmd/kith/`.
func TestNATHolePunchTrials(t *testing.T) {
	trials, _ := strconv.Atoi(os.Getenv("KITH_NAT_TRIALS"))
	if trials <= 0 {
		t.Skip("set KITH_NAT_TRIALS=20 to measure hole punching for BENCHMARKS.md")
	}
	tp := newNATTopo(t)
	dir := t.TempDir()
	hP := filepath.Join(dir, "p")
	mustKith(t, "init", "--name", "p", "--home", hP, "--port", "4001")
	startNSDaemon(t, tp.net, tp.p, hP, 4001, "--relay-rate", "0")
	idP := inviteOf(t, hP).PeerID
	shared := filepath.Join(dir, "shared")
	os.MkdirAll(shared, 0o700)
	writeRandom(t, filepath.Join(shared, "bench.bin"), 128*mib, 3)

	var relayed, punched, stops []time.Duration
	succeeded, viaRelay := 0, 0
	var hA, hB, idB string
	var dA, dB *daemon
	for i := range trials {
		if dA != nil {
			s := time.Now()
			dA.stop(t)
			dB.stop(t)
			stops = append(stops, time.Since(s))
		}
		// New nodes on new ports each time: no mapping the routers track
		// from an earlier trial helps.
		hA, hB = filepath.Join(dir, fmt.Sprintf("a%d", i)), filepath.Join(dir, fmt.Sprintf("b%d", i))
		mustKith(t, "init", "--name", "ha", "--home", hA, "--port", strconv.Itoa(4100+2*i))
		mustKith(t, "init", "--name", "hb", "--home", hB, "--port", strconv.Itoa(4101+2*i))
		dA = startNSDaemon(t, tp.net, tp.ha, hA, 4100+2*i)
		dB = startNSDaemon(t, tp.net, tp.hb, hB, 4101+2*i)
		befriendHomes(t, hA, hP)
		befriendHomes(t, hB, hP)
		for _, h := range []string{hA, hB} {
			deadline := time.Now().Add(30 * time.Second)
			for len(statusOf(t, h).Reach.Reservations) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("trial %d: %s holds no reservation", i+1, h)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		circuits := statusOf(t, hP).Reach.Relay.CircuitsTotal
		idB = inviteOf(t, hB).PeerID
		mustKith(t, "friend", "add", inviteOf(t, hB).Invite, "--home", hA)
		start := time.Now()
		mustKith(t, "friend", "add", inviteOf(t, hA).Invite, "--home", hB)
		var tRelay time.Duration
		first, ok := "", false
		for time.Since(start) < 30*time.Second {
			f := friendOf(t, hA, idB)
			if f.Online && tRelay == 0 {
				tRelay, first = time.Since(start), f.Path
			}
			if f.Online && f.Path == f2f.PathHolePunched {
				punched = append(punched, time.Since(start))
				ok = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		usedRelay := statusOf(t, hP).Reach.Relay.CircuitsTotal > circuits
		if tRelay > 0 && usedRelay {
			relayed = append(relayed, tRelay)
			viaRelay++
		}
		if ok {
			succeeded++
		}
		t.Logf("trial %d: online after %v (first path %q, through P: %v), hole-punched: %v", i+1, tRelay, first, usedRelay, ok)
	}
	t.Logf("FIGURE hole punching (DCUtR): %d of %d trials; %d connected through P first; from friendship to relayed %v; to hole-punched %v; daemon stops %v",
		succeeded, trials, viaRelay, spread(relayed), spread(punched), spread(stops))

	// The same file over the last punched connection, then relayed by P.
	mustKith(t, "share", "add", shared, "--home", hB)
	if f := friendOf(t, hA, idB); f.Path == f2f.PathRelayed || !f.Online {
		t.Fatalf("not direct before the download: %+v", f)
	}
	start := time.Now()
	fetch(t, hA, linkOf(t, hB, "bench.bin"), filepath.Join(dir, "got1"), 3*time.Minute)
	direct := time.Since(start)
	dB.stop(t)
	tp.net.SetMasquerade(tp.rb, "wan", "--random-fully")
	startNSDaemon(t, tp.net, tp.hb, hB, 4900)
	waitFriendState(t, hA, idB, 60*time.Second, "HB relayed", func(f api.FriendInfo) bool { return f.Online && f.Path == f2f.PathRelayed })
	start = time.Now()
	fetch(t, hA, linkOf(t, hB, "bench.bin"), filepath.Join(dir, "got2"), 5*time.Minute)
	relay := time.Since(start)
	t.Logf("FIGURE 128 MiB download: direct %v (%.1f MiB/s), relayed by P with no cap %v (%.1f MiB/s): relayed/direct = %.2f",
		direct, 128/direct.Seconds(), relay, 128/relay.Seconds(), direct.Seconds()/relay.Seconds())
	_ = idP
}

// spread prints the median and range of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return fmt.Sprintf("median %v (%v - %v, n=%d)", s[len(s)/2].Round(10*time.Millisecond), s[0].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond), len(s))
}
