package node

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/chat"
	"kith/node/api"
)

// startChat starts private and distant chat on the node's host and
// store; chat events go out on the node's event bus.
func startChat(n *Node) (*chat.Service, error) {
	cfg := chat.Config{
		Host: n.host, DB: n.db, Friends: n.friends, Log: n.log.With("service", "chat"),
		Events: n.publishChatEvent,
	}
	t := n.tun.Load()
	if t != nil {
		cfg.Tunnels = t.router
	}
	s, err := chat.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting chat: %w", err)
	}
	if t != nil {
		t.chat.Store(s)
	}
	return s, nil
}

// publishChatEvent puts a chat event on the bus as the API shows it,
// with the friend's name. Its type follows from the data's: chat names
// the same events with the same words.
func (n *Node) publishChatEvent(_ string, data any) {
	ev := func(p peer.ID) api.ChatEvent {
		name := ""
		if f, ok := n.friends.Get(p); ok {
			name = f.Name
		}
		return api.ChatEvent{PeerID: p.String(), Name: name}
	}
	switch d := data.(type) {
	case chat.PrivateEvent:
		e := ev(d.Peer)
		m := apiMessage(d.Message)
		e.Message = &m
		n.events.Publish(api.EventChatMessage, e)
	case chat.DeliveredEvent:
		e := ev(d.Peer)
		e.IDs = msgIDs(d.IDs)
		n.events.Publish(api.EventChatDelivered, e)
	case chat.TypingEvent:
		n.events.Publish(api.EventChatTyping, ev(d.Peer))
	case chat.DistantEvent:
		n.events.Publish(api.EventDistantMessage, api.DistantEvent{Local: d.Local.String(), Remote: d.Remote.String(),
			Message: apiMessage(d.Message), Request: d.Request})
	case chat.DistantDeliveredEvent:
		n.events.Publish(api.EventDistantDelivered, api.DistantDeliveredEvent{Local: d.Local.String(), Remote: d.Remote.String(),
			IDs: msgIDs(d.IDs)})
	default:
		n.log.Debug("chat event of an unknown kind dropped", slog.String("type", fmt.Sprintf("%T", data)))
	}
}

// Chat is the node's chat service.
func (n *Node) Chat() *chat.Service { return n.chat }

// Conversations lists the private chat with every friend, most recent
// first; friends never talked to come last, by name.
func (n *Node) Conversations() []api.Conversation {
	out := []api.Conversation{}
	for _, f := range n.friends.List() {
		s := n.chat.Summary(f.ID)
		out = append(out, api.Conversation{PeerID: f.ID.String(), Name: f.Name, Online: f.Online,
			Unread: s.Unread, Pending: s.Pending, Messages: s.Messages, Stored: s.Stored, Trimmed: s.Trimmed, Last: apiMessagePtr(s.Last)})
	}
	lastTime := func(c api.Conversation) time.Time {
		if c.Last == nil {
			return time.Time{}
		}
		return c.Last.Stored
	}
	slices.SortStableFunc(out, func(a, b api.Conversation) int {
		if c := lastTime(b).Compare(lastTime(a)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
