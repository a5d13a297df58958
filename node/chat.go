package node

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/chat"
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

// ChatEvent is the data of the "chat.message", "chat.delivered" and
// "chat.typing" events on the API's event stream.
type ChatEvent struct {
	PeerID  string        `json:"peer_id"`
	Name    string        `json:"name"`
	Message *chat.Message `json:"message,omitempty"`
	IDs     []chat.MsgID  `json:"ids,omitempty"`
}

// publishChatEvent puts a chat event on the bus with the friend's name.
func (n *Node) publishChatEvent(typ string, data any) {
	ev := func(p peer.ID) ChatEvent {
		name := ""
		if f, ok := n.friends.Get(p); ok {
			name = f.Name
		}
		return ChatEvent{PeerID: p.String(), Name: name}
	}
	switch d := data.(type) {
	case chat.PrivateEvent:
		e := ev(d.Peer)
		e.Message = &d.Message
		n.events.Publish(typ, e)
	case chat.DeliveredEvent:
		e := ev(d.Peer)
		e.IDs = d.IDs
		n.events.Publish(typ, e)
	case chat.TypingEvent:
		n.events.Publish(typ, ev(d.Peer))
	default:
		n.events.Publish(typ, data)
	}
}

// Chat is the node's chat service.
func (n *Node) Chat() *chat.Service { return n.chat }

// Conversation is the state of the private chat with one friend.
type Conversation struct {
	PeerID  string `json:"peer_id"`
	Name    string `json:"name"`
	Online  bool   `json:"online"`
	Unread  int    `json:"unread"`
	Pending int    `json:"pending"`
	// Messages and Stored are what the history holds (Stored against
	// chat.HistoryBudget); Trimmed counts older messages deleted to keep
	// the budget.
	Messages int           `json:"messages"`
	Stored   int64         `json:"stored"`
	Trimmed  int           `json:"trimmed,omitempty"`
	Last     *chat.Message `json:"last,omitempty"`
}

// Conversations lists the private chat with every friend, most recent
// first; friends never talked to come last, by name.
func (n *Node) Conversations() []Conversation {
	var out []Conversation
	for _, f := range n.friends.List() {
		s := n.chat.Summary(f.ID)
		out = append(out, Conversation{PeerID: f.ID.String(), Name: f.Name, Online: f.Online,
			Unread: s.Unread, Pending: s.Pending, Messages: s.Messages, Stored: s.Stored, Trimmed: s.Trimmed, Last: s.Last})
	}
	lastTime := func(c Conversation) time.Time {
		if c.Last == nil {
			return time.Time{}
		}
		return c.Last.Stored
	}
	slices.SortStableFunc(out, func(a, b Conversation) int {
		if c := lastTime(b).Compare(lastTime(a)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
