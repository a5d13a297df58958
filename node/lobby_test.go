package node

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"kith/chat"
	"kith/node/api"
)

// lobbyHas reports whether a lobby's history at n holds a text message.
func lobbyHas(n *Node, id chat.LobbyID, text string) bool {
	ms, _ := n.Lobbies().Log(id, 0, 0)
	return slices.ContainsFunc(ms, func(m chat.LobbyMessage) bool { return m.Text == text })
}

func lobbyAnnounced(n *Node, id chat.LobbyID) bool {
	for _, li := range n.Lobbies().List() {
		if li.ID == id && len(li.Friends) > 0 {
			return true
		}
	}
	return false
}

// TestLobbyThroughAPI drives lobbies over a chain a - b - c, a through its
// API: create, announce, join with history, relay, invite into a private
// lobby, events, errors, and a restart of the middle node.
func TestLobbyThroughAPI(t *testing.T) {
	nodes := tunnelNet(t, []string{"alice", "bob", "carol"}, [][2]int{{0, 1}, {1, 2}}, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	cl := api.NewClient(a.cfg.Home)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Without a chat identity there is no lobby, and the error says what to do.
	if _, err := cl.LobbyCreate(ctx, "hall", "", false, ""); !errors.Is(err, api.ErrNoIdentity) {
		t.Fatalf("create without identity: %v", err)
	}
	for _, n := range nodes {
		if _, err := n.Chat().Identities().New(n.Name()); err != nil {
			t.Fatal(err)
		}
	}
	evs, stopEvents := a.Events().Subscribe()
	defer stopEvents()

	li, err := cl.LobbyCreate(ctx, "hall", "the big room", false, "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := chat.ParseLobbyID(li.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !li.Joined || li.AsNick != "alice" {
		t.Fatalf("created %+v", li)
	}
	if _, err := cl.LobbySend(ctx, id.String(), "first!"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "bob sees hall", func() bool { return lobbyAnnounced(b, id) })
	if _, err := b.Lobbies().Join(id, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "carol sees hall through bob", func() bool { return lobbyAnnounced(c, id) })
	if _, err := c.Lobbies().Join(id, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "carol's history", func() bool { return lobbyHas(c, id, "first!") })
	waitFor(t, 10*time.Second, "bob subscribed to carol", func() bool { return b.Lobbies().Subscribed(c.ID(), id) })
	if _, err := c.Lobbies().Send(id, "hi from carol"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "carol's message at alice", func() bool {
		ms, err := cl.LobbyLog(ctx, id.String(), 0, 0)
		return err == nil && slices.ContainsFunc(ms, func(m api.LobbyMessage) bool {
			return m.Text == "hi from carol" && m.Nick == "carol" && m.Kind == api.LobbyKindText
		})
	})
	// The message came as an event on alice's bus, with the author's chat id.
	deadline := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case ev := <-evs:
			if me, ok := ev.Data.(api.LobbyMessageEvent); ok && ev.Type == api.EventLobbyMessage && me.Message.Text == "hi from carol" {
				carol, _ := c.Chat().Identities().Resolve("")
				if me.Message.Author != carol.ID.String() {
					t.Fatalf("event author %s", me.Message.Author)
				}
				found = true
			}
		case <-deadline:
			t.Fatal("no lobby.message event for carol's message")
		}
	}
	ps, err := cl.LobbyParticipants(ctx, id.String())
	if err != nil || len(ps) != 3 {
		t.Fatalf("participants %v %+v", err, ps)
	}

	// A private lobby: not announced; bob joins on alice's invite.
	priv, err := cl.LobbyCreate(ctx, "backroom", "", true, "alice")
	if err != nil {
		t.Fatal(err)
	}
	privID, err := chat.ParseLobbyID(priv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lobbies().Join(privID, ""); !errors.Is(err, chat.ErrUnknownLobby) {
		t.Fatalf("join private without invite: %v", err)
	}
	if err := cl.LobbyInvite(ctx, priv.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "bob's invite", func() bool {
		ls, err := b.LobbyList()
		return err == nil && len(ls.Invites) == 1 && ls.Invites[0].FromName == "alice"
	})
	if _, err := b.Lobbies().Join(privID, ""); err != nil {
		t.Fatal(err)
	}
	ls, err := cl.LobbyList(ctx)
	if err != nil || len(ls.Lobbies) != 2 {
		t.Fatalf("alice's lobbies: %v %+v", err, ls)
	}

	// API errors keep their meaning across the socket.
	for name, tc := range map[string]struct {
		call func() error
		want error
	}{
		"bad id":         {func() error { _, err := cl.LobbySend(ctx, "zz", "x"); return err }, api.ErrBadLobbyID},
		"not joined":     {func() error { _, err := cl.LobbySend(ctx, chat.NewLobbyID().String(), "x"); return err }, api.ErrNotJoined},
		"empty text":     {func() error { _, err := cl.LobbySend(ctx, id.String(), " "); return err }, api.ErrEmptyText},
		"unknown lobby":  {func() error { _, err := cl.LobbyJoin(ctx, chat.NewLobbyID().String(), ""); return err }, api.ErrUnknownLobby},
		"joined already": {func() error { _, err := cl.LobbyJoin(ctx, id.String(), ""); return err }, api.ErrAlreadyJoined},
		"bad name":       {func() error { _, err := cl.LobbyCreate(ctx, "", "", false, ""); return err }, api.ErrBadLobbyName},
		"bad identity":   {func() error { _, err := cl.LobbyCreate(ctx, "x", "", false, "nobody"); return err }, api.ErrUnknownIdentity},
	} {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}

	// Bob restarts: his lobbies and history stay, his links subscribe again,
	// and he relays between alice and carol once more.
	home := b.cfg.Home
	b.Close()
	cfg := testConfig(home)
	cfg.NoAPI = true
	cfg.TunnelRand = maxDepth{}
	b2, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	if !lobbyHas(b2, id, "hi from carol") || !lobbyHas(b2, id, "first!") {
		t.Fatal("bob lost the history on restart")
	}
	joined := 0
	for _, li := range b2.Lobbies().List() {
		if li.Joined {
			joined++
		}
	}
	if joined != 2 {
		t.Fatalf("bob is in %d lobbies after restart", joined)
	}
	waitFor(t, 20*time.Second, "bob subscribed again", func() bool {
		return a.Lobbies().Subscribed(b2.ID(), id) && c.Lobbies().Subscribed(b2.ID(), id)
	})
	if _, err := cl.LobbySend(ctx, id.String(), "welcome back"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "relayed after restart", func() bool { return lobbyHas(c, id, "welcome back") })
}
