package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"
)

// Friends is what chat asks about friends: f2f.Friends implements it.
type Friends interface {
	IsFriend(peer.ID) bool
}

// ErrNotFriend means a private message was addressed to a peer that is
// not a friend.
var ErrNotFriend = errors.New("not a friend")

// Config configures the chat service.
type Config struct {
	Host    host.Host
	DB      *bolt.DB
	Friends Friends
	// Events receives incoming messages, delivery acks and typing
	// notices (types "chat.message", "chat.delivered", "chat.typing" and
	// the "distant." ones); nil drops them. It must not block.
	Events func(typ string, data any)
	// Log receives the service's events; nil discards them.
	Log *slog.Logger
	// Tunnels makes the tunnels of distant chat; nil leaves distant
	// messages in the outbox.
	Tunnels Tunnels
}

// Service is private and distant chat on one node. Its methods are safe
// for concurrent use; Close stops it.
type Service struct {
	cfg  Config
	e    *engine
	sub  event.Subscription
	ids  *Identities
	wg   sync.WaitGroup
	once sync.Once

	mu            sync.Mutex
	limits        map[peer.ID]*rate.Limiter // per friend, for incoming messages
	distantLimits map[ChatID]*rate.Limiter  // per distant peer, likewise
}

// PrivateEvent is the data of a "chat.message" event.
type PrivateEvent struct {
	Peer    peer.ID `json:"peer_id"`
	Message Message `json:"message"`
}

// DeliveredEvent is the data of a "chat.delivered" event.
type DeliveredEvent struct {
	Peer peer.ID `json:"peer_id"`
	IDs  []MsgID `json:"ids"`
}

// TypingEvent is the data of a "chat.typing" event.
type TypingEvent struct {
	Peer peer.ID `json:"peer_id"`
}

// New starts the chat service: it registers the private chat protocol,
// and resumes delivering every outbox left from before.
func New(cfg Config) (*Service, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	hist, err := openHistory(cfg.DB)
	if err != nil {
		return nil, err
	}
	ids, err := OpenIdentities(cfg.DB)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, e: newEngine(hist, cfg.Log, cfg.Events), ids: ids,
		limits: map[peer.ID]*rate.Limiter{}, distantLimits: map[ChatID]*rate.Limiter{}}
	s.sub, err = cfg.Host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return nil, fmt.Errorf("subscribing to peer events: %w", err)
	}
	cfg.Host.SetStreamHandler(protocol.ID(ProtocolID), s.handle)
	s.wg.Add(1)
	go s.watchPeers()
	convs, err := hist.pendingConvs()
	if err != nil {
		s.Close()
		return nil, err
	}
	for _, c := range convs {
		if p, ok := c.friend(); ok {
			s.e.kick(c, s.friendRoute(p), false)
		} else if local, remote, ok := c.distant(); ok {
			if id, ok := ids.Get(local); ok {
				s.e.kick(c, s.distantRoute(id, remote), false)
			}
		}
	}
	return s, nil
}

// Close stops delivering and serving; messages still in an outbox wait
// for the next start.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.cfg.Host.RemoveStreamHandler(protocol.ID(ProtocolID))
		s.sub.Close()
		s.e.close()
		s.wg.Wait()
	})
	return nil
}

// Identities returns the node's chat identities.
func (s *Service) Identities() *Identities { return s.ids }

// friend returns the peer of a friend's conversation.
func (c convKey) friend() (peer.ID, bool) {
	if len(c) < 2 || c[0] != 'f' {
		return "", false
	}
	return peer.ID(c[1:]), true
}

// watchPeers wakes a friend's courier when the friend comes online.
func (s *Service) watchPeers() {
	defer s.wg.Done()
	for ev := range s.sub.Out() {
		p := ev.(event.EvtPeerIdentificationCompleted).Peer
		if !s.cfg.Friends.IsFriend(p) {
			continue
		}
		conv := friendConv(p)
		if s.e.hist.pending(conv) > 0 {
			s.e.kick(conv, s.friendRoute(p), false)
		}
	}
}

func (s *Service) friendRoute(p peer.ID) route {
	return route{
		ready: func() bool {
			return s.cfg.Friends.IsFriend(p) && s.cfg.Host.Network().Connectedness(p) == network.Connected
		},
		dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			st, err := s.cfg.Host.NewStream(network.WithNoDial(ctx, "chat delivers to connected friends"), p, protocol.ID(ProtocolID))
			if err != nil {
				return nil, fmt.Errorf("opening chat stream: %w", err)
			}
			return st, nil
		},
		acked: func(ms []Message) {
			ev := DeliveredEvent{Peer: p}
			for _, m := range ms {
				ev.IDs = append(ev.IDs, m.ID)
			}
			s.e.events("chat.delivered", ev)
		},
	}
}

// Send writes text to friend p: the message enters the history and the
// outbox at once and is delivered when p is online.
func (s *Service) Send(p peer.ID, text string) (Message, error) {
	if err := CheckText(text); err != nil {
		return Message{}, err
	}
	if !s.cfg.Friends.IsFriend(p) {
		return Message{}, fmt.Errorf("%w: %s", ErrNotFriend, p)
	}
	conv := friendConv(p)
	m, _, err := s.e.hist.append(conv, Message{ID: NewMsgID(), Time: time.Now().UTC().Truncate(time.Millisecond), Out: true, Text: text})
	if err != nil {
		return Message{}, err
	}
	s.e.events("chat.message", PrivateEvent{Peer: p, Message: m})
	s.e.kick(conv, s.friendRoute(p), false)
	return m, nil
}

// Typing tells friend p, if online, that the user is typing.
func (s *Service) Typing(p peer.ID) {
	if s.cfg.Friends.IsFriend(p) {
		s.e.typing(friendConv(p), s.friendRoute(p))
	}
}

// History returns up to limit messages with friend p stored after
// sequence number after and written at or after since (if not zero).
func (s *Service) History(p peer.ID, after uint64, since time.Time, limit int) ([]Message, error) {
	return s.e.hist.list(friendConv(p), after, since, limit)
}

// MarkRead marks every message with friend p read.
func (s *Service) MarkRead(p peer.ID) error { return s.e.hist.markRead(friendConv(p)) }

// Summary is the state of the conversation with one peer.
type Summary struct {
	Unread  int `json:"unread"`
	Pending int `json:"pending"` // outgoing messages not acked yet
	// Last is the newest message, if any.
	Last *Message `json:"last,omitempty"`
}

// Summary returns the state of the conversation with friend p.
func (s *Service) Summary(p peer.ID) Summary { return s.e.hist.summary(friendConv(p)) }

func (s *Service) limiter(p peer.ID) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return peerLimiter(s.limits, p)
}

// handle serves a friend's private chat stream.
func (s *Service) handle(st network.Stream) {
	p := st.Conn().RemotePeer()
	if !s.cfg.Friends.IsFriend(p) {
		st.Reset()
		return
	}
	conv := friendConv(p)
	// Two streams of one conversation may overlap (a resend on a new
	// stream while the old one drains): each stores in order and the
	// store drops what the other stored first, so order holds.
	ctx, cancel := context.WithCancel(s.e.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	err := s.e.serve(ctx, st, receiver{
		conv:    conv,
		limit:   s.limiter(p),
		noHello: true,
		stored: func(m Message) {
			s.e.events("chat.message", PrivateEvent{Peer: p, Message: m})
		},
		typing: func() { s.e.events("chat.typing", TypingEvent{Peer: p}) },
	})
	if err != nil {
		if errors.Is(err, ErrBadFrame) {
			s.cfg.Log.Warn("friend broke the chat protocol; stream closed", slog.String("peer", p.String()), slog.Any("err", err))
		} else {
			s.cfg.Log.Debug("chat stream ended", slog.String("peer", p.String()), slog.Any("err", err))
		}
		st.Reset()
		return
	}
	st.Close()
}
