package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"kith/node"
)

// restart starts the node of a demo home again after it was closed, as
// `kith up` would after a reboot.
func (d *Demo) restart(name string) (*node.Node, error) {
	n, err := node.Start(d.config(name))
	if err != nil {
		return nil, err
	}
	d.Nodes[name] = n
	return n, nil
}

func privateChatDemo(ctx context.Context, d *Demo) error {
	ana, ben := d.Nodes["ana"], d.Nodes["ben"]
	ben.Close()
	d.Say("ben's daemon stops")
	text := "ben, the train leaves at 9 from platform 4"
	m, err := ana.Chat().Send(ben.ID(), text)
	if err != nil {
		return err
	}
	d.Say("ana writes to ben while he is offline: %q", text)
	if s := ana.Chat().Summary(ben.ID()); s.Pending != 1 {
		return fmt.Errorf("ana's outbox holds %d messages, want 1", s.Pending)
	}
	d.Say("the message waits in ana's outbox (stored in her bbolt file, safe across restarts)")
	t0 := time.Now()
	ben, err = d.restart("ben")
	if err != nil {
		return err
	}
	d.Say("ben's daemon starts again")
	err = WaitFor(ctx, 20*time.Second, "delivery to ben", func() bool { return ana.Chat().Summary(ben.ID()).Pending == 0 })
	if err != nil {
		return err
	}
	got, err := ben.Chat().History(ana.ID(), 0, time.Time{}, 0)
	if err != nil {
		return err
	}
	if len(got) != 1 || got[0].ID != m.ID || got[0].Text != text {
		return fmt.Errorf("ben's history: %+v", got)
	}
	d.Say("delivered %v after ben came back, acked, and in ben's history once: %q", time.Since(t0).Round(time.Millisecond), got[0].Text)
	// The chain's router links must be up again for the next steps.
	cai := d.Nodes["cai"]
	return WaitFor(ctx, 20*time.Second, "ben's router links", func() bool {
		links := ben.Router().Links()
		return slices.Contains(links, ana.ID()) && slices.Contains(links, cai.ID())
	})
}

func distantChatDemo(ctx context.Context, d *Demo) error {
	ana, eli := d.Nodes["ana"], d.Nodes["eli"]
	anon, err := ana.Chat().Identities().New("night-owl")
	if err != nil {
		return err
	}
	eliID, err := eli.Chat().Identities().New("porto-traveller")
	if err != nil {
		return err
	}
	d.Say("ana makes the chat identity %q, eli %q: pseudonyms, not linked to their nodes", anon.Nick, eliID.Nick)
	d.Say("eli's chat id, which she gives out: %s", eliID.ID)
	for _, name := range []string{"cai", "dan"} {
		if tp := tapOf(d, name); tp != nil {
			tp.reset()
		}
	}
	text := "hello porto-traveller, is the night train worth it?"
	t0 := time.Now()
	if _, err := ana.Chat().SendDistant("", eliID.ID, text); err != nil {
		return err
	}
	err = WaitFor(ctx, 60*time.Second, "the distant message", func() bool {
		s, _ := ana.Chat().DistantSummary("", eliID.ID)
		return s.Pending == 0
	})
	if err != nil {
		return err
	}
	got, err := eli.Chat().DistantHistory("", anon.ID, 0, 0)
	if err != nil {
		return err
	}
	if len(got) != 1 || got[0].Text != text {
		return fmt.Errorf("eli's distant history: %+v", got)
	}
	d.Say("eli got %q from %s in %v: a tunnel across ben, cai and dan, Noise_XK end to end",
		got[0].Text, anon.ID.Short(), time.Since(t0).Round(time.Millisecond))
	answer := "worth every minute, take the sleeper"
	if _, err := eli.Chat().SendDistant("", anon.ID, answer); err != nil {
		return err
	}
	err = WaitFor(ctx, 60*time.Second, "the answer", func() bool {
		ms, _ := ana.Chat().DistantHistory("", eliID.ID, 0, 0)
		return len(ms) == 2 && ms[1].Text == answer
	})
	if err != nil {
		return err
	}
	d.Say("and eli's answer came back to ana's identity: %q", answer)
	for _, name := range []string{"cai", "dan"} {
		tp := tapOf(d, name)
		if tp == nil {
			continue
		}
		tp.mu.Lock()
		seen := append(bytes.Clone(tp.ctrl.Bytes()), tp.data.Bytes()...)
		tp.mu.Unlock()
		for _, secret := range [][]byte{[]byte(text), []byte(answer), []byte(anon.Nick), []byte(eliID.Nick), anon.ID[:], eliID.ID[:]} {
			if bytes.Contains(seen, secret) {
				return fmt.Errorf("relay %s saw %q", name, secret)
			}
		}
		if len(seen) == 0 {
			return errors.New("relay " + name + " moved nothing: the check proves nothing")
		}
		d.Say("relay %s moved %d bytes of this conversation: no text, no nickname, no chat id", name, len(seen))
	}
	return nil
}

// tapOf returns the byte recorder of a relay of the tunnel chain.
func tapOf(d *Demo, name string) *relayTap { return d.taps[name] }

func lobbyDemo(ctx context.Context, d *Demo) error {
	chain := []string{"ana", "ben", "cai", "dan", "eli"}
	for _, name := range []string{"ben", "cai", "dan"} {
		if _, err := d.Nodes[name].Chat().Identities().New(name + "-rides"); err != nil {
			return err
		}
	}
	ana := d.Nodes["ana"]
	lobby, err := ana.Lobbies().Create("night trains", "sleepers, routes, tips", false, "")
	if err != nil {
		return err
	}
	d.Say("ana opens the public lobby %q (%s); friends announce it to their friends as they join", lobby.Name, lobby.ID)
	t0 := time.Now()
	for _, name := range chain[1:] {
		n := d.Nodes[name]
		err := WaitFor(ctx, 20*time.Second, name+" to hear of the lobby", func() bool {
			for _, li := range n.Lobbies().List() {
				if li.ID == lobby.ID {
					return true
				}
			}
			return false
		})
		if err != nil {
			return err
		}
		if _, err := n.Lobbies().Join(lobby.ID, ""); err != nil {
			return err
		}
	}
	d.Say("ben, cai, dan and eli joined, each through the friend who announced it, in %v", time.Since(t0).Round(time.Millisecond))
	before := settledLinkTotals(ctx, d, chain)
	texts := map[string]string{"eli": "hello from the far end of the chain", "ana": "welcome, eli: the 23:10 to Lisbon is the one"}
	for _, from := range []string{"eli", "ana"} {
		if _, err := d.Nodes[from].Lobbies().Send(lobby.ID, texts[from]); err != nil {
			return err
		}
	}
	t1 := time.Now()
	for _, name := range chain {
		n := d.Nodes[name]
		err := WaitFor(ctx, 20*time.Second, name+" to get both messages", func() bool {
			ms, _ := n.Lobbies().Log(lobby.ID, 0, 0)
			got := 0
			for _, m := range ms {
				if m.Text == texts["eli"] || m.Text == texts["ana"] {
					got++
				}
			}
			return got == 2
		})
		if err != nil {
			return err
		}
	}
	d.Say("eli's and ana's messages reached all five members, 4 hops apart, in %v, each once", time.Since(t1).Round(time.Millisecond))
	after := settledLinkTotals(ctx, d, chain)
	if after-before != 8 {
		return fmt.Errorf("%d lobby messages crossed the chain's links for 2 messages on 4 links", after-before)
	}
	d.Say("lobby messages that crossed the chain's 4 links meanwhile: 8, so each of the 2 crossed each link once")
	return nil
}

// settledLinkTotals waits until no lobby message has moved for a moment
// (joins and keep-alives settle) and returns lobbyLinkTotals.
func settledLinkTotals(ctx context.Context, d *Demo, names []string) uint64 {
	last := lobbyLinkTotals(d, names)
	for range 50 {
		select {
		case <-ctx.Done():
			return last
		case <-time.After(100 * time.Millisecond):
		}
		now := lobbyLinkTotals(d, names)
		if now == last {
			return now
		}
		last = now
	}
	return last
}

// lobbyLinkTotals sums the lobby messages the named nodes sent to friends.
func lobbyLinkTotals(d *Demo, names []string) uint64 {
	var n uint64
	for _, name := range names {
		for _, ls := range d.Nodes[name].Lobbies().Stats().Links {
			n += ls.Out
		}
	}
	return n
}
