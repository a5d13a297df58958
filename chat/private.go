package chat

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
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
	typingLimits  map[peer.ID]*rate.Limiter // per friend, for typing events
	distantLimits map[ChatID]*rate.Limiter  // per distant peer, likewise
	streams       map[peer.ID]int           // chat streams served per friend
	serving       int                       // chat streams and distant sessions served
	distant       int                       // distant sessions served
	handshakes    *rate.Limiter             // incoming distant handshakes
	requests      *rate.Limiter             // distant sessions of identities not accepted

	stats struct {
		streamsRefused, streamsBroken, refusedStorage, refusedRequests atomic.Uint64
		sessionsLimited, typingDropped                                 atomic.Uint64
		queued, delivered, received                                    atomic.Uint64
	}
	fullWarned atomic.Int64 // when storage full was last logged, Unix ns
}

// Stats counts what the chat service refused, and what it holds.
type Stats struct {
	// Streams is the chat streams and distant sessions served now.
	Streams int `json:"streams"`
	// Queued counts messages the user wrote (private and distant) that
	// entered an outbox; Delivered counts those the other side acked;
	// Received counts messages from others stored.
	Queued    uint64 `json:"queued"`
	Delivered uint64 `json:"delivered"`
	Received  uint64 `json:"received"`
	// StreamsRefused counts chat streams and distant sessions refused at
	// once for a cap (ChatStreamsPerFriend, MaxChatStreams,
	// MaxDistantSessions).
	StreamsRefused uint64 `json:"streams_refused"`
	// StreamsBroken counts streams reset because the peer broke the
	// protocol (a bad frame, more than the send window).
	StreamsBroken uint64 `json:"streams_broken"`
	// RefusedStorage counts incoming messages refused, not acked, because
	// ChatStorageBudget was reached.
	RefusedStorage uint64 `json:"refused_storage"`
	// RefusedRequests counts incoming distant messages refused, not
	// acked, for the requests' quotas.
	RefusedRequests uint64 `json:"refused_requests"`
	// SessionsLimited counts distant sessions refused for the handshake
	// or request session rates.
	SessionsLimited uint64 `json:"sessions_limited"`
	// TypingDropped counts typing notices over TypingEventRate.
	TypingDropped uint64 `json:"typing_dropped"`
	// StoredBytes and StoredMessages are what all conversations hold
	// (MessageCost), against ChatStorageBudget.
	StoredBytes    int64 `json:"stored_bytes"`
	StoredMessages int64 `json:"stored_messages"`
	// Requests and RequestBytes are the distant requests and what they
	// hold, against MaxDistantRequests and DistantRequestsBytes.
	Requests     int64 `json:"requests"`
	RequestBytes int64 `json:"request_bytes"`
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	all, req := s.e.hist.totals()
	s.mu.Lock()
	n := s.serving
	s.mu.Unlock()
	return Stats{Streams: n, Queued: s.stats.queued.Load(), Delivered: s.stats.delivered.Load(), Received: s.stats.received.Load(),
		StreamsRefused: s.stats.streamsRefused.Load(), StreamsBroken: s.stats.streamsBroken.Load(),
		RefusedStorage: s.stats.refusedStorage.Load(), RefusedRequests: s.stats.refusedRequests.Load(),
		SessionsLimited: s.stats.sessionsLimited.Load(), TypingDropped: s.stats.typingDropped.Load(),
		StoredBytes: all.Bytes, StoredMessages: all.Msgs, Requests: req.Msgs, RequestBytes: req.Bytes}
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
		limits: map[peer.ID]*rate.Limiter{}, typingLimits: map[peer.ID]*rate.Limiter{},
		distantLimits: map[ChatID]*rate.Limiter{}, streams: map[peer.ID]int{},
		handshakes: rate.NewLimiter(DistantHandshakeRate, DistantHandshakeBurst),
		requests:   rate.NewLimiter(DistantRequestSessionRate, DistantRequestSessionBurst)}
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

// Close stops delivering and serving, and waits for every courier,
// stream handler and distant session to end; messages still in an
// outbox wait for the next start.
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
			s.stats.delivered.Add(uint64(len(ms)))
			s.e.events("chat.delivered", ev)
		},
	}
}

// Send writes text to friend p: the message enters the history and the
// outbox at once and is delivered when p is online.
func (s *Service) Send(p peer.ID, text string) (Message, error) {
	return s.SendKeyed(p, text, "")
}

// Errors of SendKeyed.
var (
	// ErrBadIdempotencyKey means a send's idempotency key is longer than
	// MaxIdempotencyKeySize.
	ErrBadIdempotencyKey = fmt.Errorf("idempotency key longer than %d bytes", MaxIdempotencyKeySize)
	// ErrIdempotencyKeyReused means a send's idempotency key was used
	// before for another text to the same friend.
	ErrIdempotencyKeyReused = errors.New("idempotency key used before for another message")
)

// keyedMsgID is the id of the message a client sends to conv with key:
// the same for every retry of that send, and unrelated to other keys and
// conversations.
func keyedMsgID(conv convKey, key string) MsgID {
	h := sha256.New()
	h.Write([]byte("kith chat send key\x00"))
	h.Write([]byte(conv))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return MsgID(h.Sum(nil)[:len(MsgID{})])
}

// SendKeyed is Send with a local client's idempotency key (if not empty):
// a retry of a send with the same key, after the client lost the answer,
// returns the message the first one stored instead of storing and
// delivering a second. The key is folded into the message's id, which is
// stored with the message and known to the history's id index.
func (s *Service) SendKeyed(p peer.ID, text, key string) (Message, error) {
	if err := CheckText(text); err != nil {
		return Message{}, err
	}
	if len(key) > MaxIdempotencyKeySize {
		return Message{}, ErrBadIdempotencyKey
	}
	if !s.cfg.Friends.IsFriend(p) {
		return Message{}, fmt.Errorf("%w: %s", ErrNotFriend, p)
	}
	conv := friendConv(p)
	id := NewMsgID()
	if key != "" {
		id = keyedMsgID(conv, key)
	}
	m, dup, err := s.e.hist.append(conv, Message{ID: id, Time: time.Now().UTC().Truncate(time.Millisecond), Out: true, Text: text})
	if err != nil {
		return Message{}, err
	}
	if dup {
		if m.Text != text {
			return Message{}, ErrIdempotencyKeyReused
		}
		return m, nil
	}
	s.stats.queued.Add(1)
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

// History returns a page of the history with friend p: messages stored
// after sequence number after and stored at or after since (if not
// zero; by this node's clock, when they arrived or were written), in the
// order they were stored, at most limit (MaxLogPage if 0) and
// MaxLogPageBytes of text. An empty page means there are no more.
func (s *Service) History(p peer.ID, after uint64, since time.Time, limit int) ([]Message, error) {
	return s.e.hist.list(friendConv(p), after, since, limit)
}

// HistoryBefore returns the page of the history with friend p that ends
// just before sequence number before (0: the newest page), oldest first,
// bounded as History's.
func (s *Service) HistoryBefore(p peer.ID, before uint64, limit int) ([]Message, error) {
	return s.e.hist.listBefore(friendConv(p), before, limit)
}

// ClearHistory deletes the history with friend p, but for the messages
// still waiting for delivery.
func (s *Service) ClearHistory(p peer.ID) error { return s.e.hist.clear(friendConv(p), true) }

// MarkRead marks every message with friend p read.
func (s *Service) MarkRead(p peer.ID) error { return s.e.hist.markRead(friendConv(p)) }

// Summary is the state of the conversation with one peer.
type Summary struct {
	Unread  int `json:"unread"`
	Pending int `json:"pending"` // outgoing messages not acked yet
	// Messages is how many messages the history holds, Stored what they
	// count against HistoryBudget (MessageCost), and Trimmed how many
	// older ones were deleted to keep it.
	Messages int   `json:"messages"`
	Stored   int64 `json:"stored"`
	Trimmed  int   `json:"trimmed,omitempty"`
	// Request is set for a distant conversation the user has not
	// answered nor accepted.
	Request bool `json:"request,omitempty"`
	// Last is the newest message, if any.
	Last *Message `json:"last,omitempty"`
}

// Summary returns the state of the conversation with friend p.
func (s *Service) Summary(p peer.ID) Summary { return s.e.hist.summary(friendConv(p)) }

func (s *Service) limiter(p peer.ID) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return peerLimiter(s.limits, p, MessagesPerSecond, MessageBurst)
}

// typingEvent publishes a friend's typing notice, at most at
// TypingEventRate.
func (s *Service) typingEvent(p peer.ID) {
	s.mu.Lock()
	ok := peerLimiter(s.typingLimits, p, TypingEventRate, TypingEventBurst).Allow()
	s.mu.Unlock()
	if !ok {
		s.stats.typingDropped.Add(1)
		return
	}
	s.e.events("chat.typing", TypingEvent{Peer: p})
}

// admit counts one more stream served for friend p (distant: a distant
// session, p empty), within ChatStreamsPerFriend, MaxChatStreams and
// MaxDistantSessions; release undoes it.
func (s *Service) admit(p peer.ID, distant bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving >= MaxChatStreams || (distant && s.distant >= MaxDistantSessions) ||
		(!distant && s.streams[p] >= ChatStreamsPerFriend) {
		s.stats.streamsRefused.Add(1)
		return false
	}
	s.serving++
	if distant {
		s.distant++
	} else {
		s.streams[p]++
	}
	return true
}

func (s *Service) release(p peer.ID, distant bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serving--
	if distant {
		s.distant--
	} else if s.streams[p]--; s.streams[p] <= 0 {
		delete(s.streams, p)
	}
}

// refused counts an incoming message refused for a budget.
func (s *Service) refused(err error) {
	if errors.Is(err, ErrChatStorageFull) {
		s.stats.refusedStorage.Add(1)
		now := time.Now().UnixNano()
		if last := s.fullWarned.Load(); now-last >= int64(StorageFullWarnEvery) && s.fullWarned.CompareAndSwap(last, now) {
			s.cfg.Log.Warn("chat storage full: incoming messages wait in their senders' outboxes", slog.Any("err", err))
		}
	} else {
		s.stats.refusedRequests.Add(1)
	}
}

// handle serves a friend's private chat stream: at most
// ChatStreamsPerFriend at once per friend, each tracked by the engine so
// that Close waits for it.
func (s *Service) handle(st network.Stream) {
	p := st.Conn().RemotePeer()
	if !s.cfg.Friends.IsFriend(p) || !s.admit(p, false) {
		st.Reset()
		return
	}
	defer s.release(p, false)
	if !s.e.track() {
		st.Reset()
		return
	}
	defer s.e.wg.Done()
	conv := friendConv(p)
	// Two streams of one conversation may overlap (a resend on a new
	// stream while the old one drains): each stores in order and the
	// store drops what the other stored first, so order holds.
	ctx, cancel := context.WithCancel(s.e.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	err := s.e.serve(ctx, st, st.Scope(), receiver{
		conv:    conv,
		limit:   s.limiter(p),
		noHello: true,
		stored: func(m Message) {
			s.stats.received.Add(1)
			s.e.events("chat.message", PrivateEvent{Peer: p, Message: m})
		},
		typing:  func() { s.typingEvent(p) },
		refused: s.refused,
	})
	switch {
	case err == nil, errors.Is(err, errStopped):
	case errors.Is(err, ErrBadFrame):
		s.stats.streamsBroken.Add(1)
		s.cfg.Log.Info("friend broke the chat protocol; stream reset", slog.String("peer", p.String()), slog.Any("err", err))
	default:
		s.cfg.Log.Debug("chat stream ended", slog.String("peer", p.String()), slog.Any("err", err))
	}
}
