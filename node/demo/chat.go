package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"kith/node"
)

// restart starts the node of a demo home again after it was closed, as
// `kith up` would after a reboot.
func (d *Demo) restart(name string) (*node.Node, error) {
	cfg := node.DefaultConfig(filepath.Join(d.dir, name))
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS = false
	cfg.NoAPI = true
	cfg.RedialMin = 200 * time.Millisecond
	cfg.RedialMax = 2 * time.Second
	n, err := node.Start(cfg)
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
