// Package demo runs kith's guided demonstration: several real nodes in one
// process, each in a temporary home, on loopback TCP, walked through what
// kith does while a narrator prints each step. Later capabilities add their
// own steps to Steps.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/node"
)

// Demo is the state shared by the steps: the nodes and the narrator.
type Demo struct {
	out   io.Writer
	start time.Time
	dir   string
	// Nodes by name, in chain order: alice - bob - carol - dave.
	Nodes map[string]*node.Node
	Chain []string
	// Stranger is a node no one befriended.
	Stranger *node.Node
	// taps record what the relays of the tunnel chain moved.
	taps map[string]*relayTap
}

// Step is one part of the demo.
type Step struct {
	Title string
	Run   func(ctx context.Context, d *Demo) error
}

// Steps are run in order; each capability of kith adds its own.
var Steps = []Step{
	{"Start four nodes and a stranger on 127.0.0.1", startNodes},
	{"Exchange invites along a chain", befriendChain},
	{"Friends connect", waitConnected},
	{"A stranger is refused at the gate", strangerRefused},
	{"Removing a friend closes the connection at once", removeFriend},
	{"Share a file; a friend browses and downloads it from two sources", shareAndDownload},
	{"Anonymous search and a tunnelled download along a chain of five", tunnelDemo},
	{"Private chat: a message waits for a friend who is offline", privateChatDemo},
	{"Distant chat between the ends of the chain, through tunnels", distantChatDemo},
	{"A chat lobby across the chain, relayed friend to friend", lobbyDemo},
}

// Run plays every step, printing to out, and stops all nodes at the end.
func Run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "kith-demo-")
	if err != nil {
		return fmt.Errorf("making demo folder: %w", err)
	}
	defer os.RemoveAll(dir)
	d := &Demo{out: out, start: time.Now(), dir: dir, Nodes: map[string]*node.Node{}}
	defer d.stopAll()
	fmt.Fprintf(out, "kith demo: real libp2p nodes on loopback, homes under %s\n", dir)
	for i, s := range Steps {
		fmt.Fprintf(out, "\n== %d. %s\n", i+1, s.Title)
		if err := s.Run(ctx, d); err != nil {
			return fmt.Errorf("demo step %q: %w", s.Title, err)
		}
	}
	fmt.Fprintf(out, "\ndemo finished in %.1fs: every step behaved as described.\n", time.Since(d.start).Seconds())
	return nil
}

// Say prints one line of narration with the time since the demo started.
func (d *Demo) Say(format string, a ...any) {
	fmt.Fprintf(d.out, "  [%5.2fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, a...))
}

// StartNode initialises a home called name and starts its node on loopback.
func (d *Demo) StartNode(name string) (*node.Node, error) {
	home := filepath.Join(d.dir, name)
	if _, err := node.Init(home, name); err != nil {
		return nil, err
	}
	return node.Start(d.config(name))
}

// config is the node configuration of the demo home called name: loopback
// TCP only, no mDNS, no API socket, quick redials.
func (d *Demo) config(name string) node.Config {
	cfg := node.DefaultConfig(filepath.Join(d.dir, name))
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS = false
	cfg.NoAPI = true
	cfg.RedialMin = 200 * time.Millisecond
	cfg.RedialMax = 2 * time.Second
	return cfg
}

func (d *Demo) stopAll() {
	for _, n := range d.Nodes {
		n.Close()
	}
	if d.Stranger != nil {
		d.Stranger.Close()
	}
}

// WaitFor polls cond until it holds or ctx or the timeout ends.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// short prints a peer ID as its last eight characters, as people read them.
func short(id peer.ID) string {
	s := id.String()
	return "…" + s[len(s)-8:]
}

func startNodes(ctx context.Context, d *Demo) error {
	d.Chain = []string{"alice", "bob", "carol", "dave"}
	for _, name := range d.Chain {
		n, err := d.StartNode(name)
		if err != nil {
			return err
		}
		d.Nodes[name] = n
		d.Say("%-6s is %s, listening on %s", name, short(n.ID()), n.Host().Addrs()[0])
	}
	s, err := d.StartNode("eve")
	if err != nil {
		return err
	}
	d.Stranger = s
	d.Say("%-6s is %s: no one will befriend her", "eve", short(s.ID()))
	return nil
}

// befriend makes a and b friends: each adds the other's invite.
func (d *Demo) befriend(a, b string) error {
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		inv, err := d.Nodes[pair[1]].Invite()
		if err != nil {
			return err
		}
		if _, err := d.Nodes[pair[0]].AddFriend(inv, pair[1]); err != nil {
			return err
		}
	}
	d.Say("%s and %s added each other's invites", a, b)
	return nil
}

func befriendChain(ctx context.Context, d *Demo) error {
	inv, err := d.Nodes["alice"].Invite()
	if err != nil {
		return err
	}
	d.Say("an invite is one signed line: %s…%s (%d chars)", inv[:24], inv[len(inv)-8:], len(inv))
	for i := 0; i+1 < len(d.Chain); i++ {
		if err := d.befriend(d.Chain[i], d.Chain[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func waitConnected(ctx context.Context, d *Demo) error {
	t0 := time.Now()
	for i := 0; i+1 < len(d.Chain); i++ {
		a, b := d.Nodes[d.Chain[i]], d.Nodes[d.Chain[i+1]]
		err := WaitFor(ctx, 15*time.Second, d.Chain[i]+" and "+d.Chain[i+1]+" to connect", func() bool {
			fa, _ := a.Friends().Get(b.ID())
			fb, _ := b.Friends().Get(a.ID())
			return fa.Online && fb.Online
		})
		if err != nil {
			return err
		}
	}
	d.Say("all %d links of the chain are up after %v", len(d.Chain)-1, time.Since(t0).Round(time.Millisecond))
	for _, name := range d.Chain {
		st := d.Nodes[name].Status()
		d.Say("%-6s: %d of %d friends online, %d connections", name, st.FriendsOnline, st.FriendsTotal, st.Connections)
	}
	if d.Nodes["alice"].Host().Network().Connectedness(d.Nodes["carol"].ID()) == network.Connected {
		return errors.New("alice is connected to carol, who is not her friend")
	}
	d.Say("alice and carol are not friends, so they have no connection")
	return nil
}

func strangerRefused(ctx context.Context, d *Demo) error {
	alice, eve := d.Nodes["alice"], d.Stranger
	before := alice.Gater().Refused()
	inv, err := alice.Invite()
	if err != nil {
		return err
	}
	if _, err := eve.AddFriend(inv, "alice"); err != nil {
		return err
	}
	d.Say("eve adds alice's invite and dials her; alice never added eve")
	err = WaitFor(ctx, 10*time.Second, "alice to refuse eve", func() bool { return alice.Gater().Refused() > before })
	if err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // give a wrongly admitted connection time to show
	f, _ := eve.Friends().Get(alice.ID())
	if f.Online {
		return errors.New("eve got through to alice")
	}
	d.Say("alice's gater refused eve %d time(s) right after the handshake; no protocol ran", alice.Gater().Refused()-before)
	d.Say("eve sees alice as offline; alice's friend list does not mention eve")
	return nil
}

func removeFriend(ctx context.Context, d *Demo) error {
	carol, dave := d.Nodes["carol"], d.Nodes["dave"]
	t0 := time.Now()
	if _, err := dave.RemoveFriend("carol"); err != nil {
		return err
	}
	err := WaitFor(ctx, 5*time.Second, "carol to see dave offline", func() bool {
		f, _ := carol.Friends().Get(dave.ID())
		return !f.Online && dave.Host().Network().Connectedness(carol.ID()) != network.Connected
	})
	if err != nil {
		return err
	}
	d.Say("dave removed carol: connection closed in %v, and carol's redials are refused", time.Since(t0).Round(time.Millisecond))
	return nil
}
