package chat

// Chat lobbies (RetroShare's chat lobbies) on /kith/lobby/1.
//
// Each pair of connected friends keeps one lobby stream (opened by the
// lower peer ID) that carries, both ways: signed lobby messages; which
// lobbies each side wants the traffic of (subscribe, unsubscribe); the
// public lobbies each side is in (announce, replacing the previous list);
// invites; and history requests and replies.
//
// Relay: a node in lobby L takes a message of L that it has not seen
// (by id: a bounded seen cache kept longer than the age window, and the
// stored history), that is fresh (LobbyMaxAge, LobbyMaxSkew), well
// formed, signed by its author and within the friend's and the author's
// rates; it stores it (keep-alives are not stored) and sends it on to
// every friend link subscribed to L but the one it came from. So each
// message crosses each link at most once in each direction. Whatever is
// dropped is counted by reason (LobbyStats) and logged at debug level.
//
// Links: the per-friend streams are kith/internal/friendlink's (opening,
// the bounded send queue and its writer, the framed reader, and the
// misbehaviour policy); a frame that breaks the protocol (ErrBadLobbyFrame)
// is a fault under that policy: the link is reset and the friend refused
// a lobby link for friendlink.FaultPause, its connection left alone.
//
// Only members subscribe, so only members relay: a lobby's traffic stays
// on the friend links between its members.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"kith/chat/pb"
	kframe "kith/internal/frame"
	"kith/internal/friendlink"
	"kith/internal/seen"
)

// Errors of lobbies.
var (
	// ErrBadLobbyID means a text is not a lobby id.
	ErrBadLobbyID = errors.New("not a lobby id")
	// ErrBadLobbyName means a lobby name is empty, too long or not text.
	ErrBadLobbyName = errors.New("bad lobby name")
	// ErrBadLobbyTopic means a lobby topic is too long or not text.
	ErrBadLobbyTopic = errors.New("bad lobby topic")
	// ErrUnknownLobby means a lobby is neither joined, nor announced by a
	// friend, nor named by a pending invite.
	ErrUnknownLobby = errors.New("unknown lobby: no friend announces it and no invite names it (`kith lobby ls` lists those you can join)")
	// ErrNotJoined means a lobby is not joined.
	ErrNotJoined = errors.New("lobby not joined: join it first with `kith lobby join ID`")
	// ErrAlreadyJoined means a lobby is joined already.
	ErrAlreadyJoined = errors.New("lobby joined already")
	// ErrTooManyLobbies means the node is in MaxLobbies lobbies.
	ErrTooManyLobbies = fmt.Errorf("in %d lobbies already: leave one first", MaxLobbies)
	// ErrLobbyTooFast means the user sends faster than the lobby's
	// per-author rate: friends would drop the message.
	ErrLobbyTooFast = errors.New("sending too fast for the lobby: wait a second")
	// ErrLobbyFriendOffline means an invite is for a friend with no lobby
	// link (not connected).
	ErrLobbyFriendOffline = errors.New("friend is offline: invite again when it is online")
	// ErrLobbiesClosed means the lobby service is shutting down.
	ErrLobbiesClosed = errors.New("lobbies closed")
)

// LobbyFriends is what lobbies ask about friends: f2f.Friends implements
// it.
type LobbyFriends = friendlink.Friends

// LobbyConfig configures the lobby service.
type LobbyConfig struct {
	Host       host.Host
	DB         *bolt.DB
	Friends    LobbyFriends
	Identities *Identities
	// Events receives "lobby.message" (LobbyEvent: a stored message,
	// text, join or leave, from anyone including this node or a history
	// reply) and "lobby.invite" (LobbyInvite); nil drops them. It must
	// not block.
	Events func(typ string, data any)
	// Log receives the service's events; nil discards them.
	Log *slog.Logger
	// KeepAlive is how often members say they are there; 0 means
	// LobbyKeepAlive.
	KeepAlive time.Duration
	// LinkRetry is how often links to connected friends are (re)opened;
	// 0 means LobbyLinkRetry.
	LinkRetry time.Duration
	// AnnounceInterval is how often public lobbies are announced anyway;
	// 0 means LobbyAnnounceInterval.
	AnnounceInterval time.Duration
	// OnRelay, if set, sees every lobby message frame that crosses a
	// friend link: received from p (out false, before any check) or
	// written to p (out true). History replies are not included. It is
	// called from many goroutines and must not block.
	OnRelay func(p peer.ID, out bool, id MsgID)
}

// LobbyEvent is the data of a "lobby.message" event.
type LobbyEvent struct {
	Message LobbyMessage
	// History is set for a message that came in a history reply.
	History bool
}

// LobbyInfo describes a lobby: one this node is in, or a public one a
// friend announces.
type LobbyInfo struct {
	ID      LobbyID
	Name    string
	Topic   string
	Private bool
	Joined  bool
	// As is the identity the node speaks as in a joined lobby.
	As Identity
	// Participants counts the authors heard lately (for a joined lobby),
	// or the most any friend announced.
	Participants int
	// Friends are the friends that announce the lobby.
	Friends []peer.ID
}

// Participant is an author heard in a lobby lately.
type Participant struct {
	ID       ChatID
	Nick     string
	LastSeen time.Time
	// via is the friend link the author was first heard through ("" for
	// this node's own identity).
	via peer.ID
}

// LinkStats counts the lobby messages that crossed the lobby links to
// one friend, over all of them since the service started: the counters
// never decrease.
type LinkStats struct {
	// In and Out count lobby messages read from and written to the
	// friend.
	In, Out uint64
	// QueueDrops counts frames dropped on a full send queue to the friend.
	QueueDrops uint64
}

// LobbyStats counts what the lobby service relayed and dropped.
type LobbyStats struct {
	// Dropped counts dropped messages and frames by reason (the Drop*
	// constants).
	Dropped map[string]uint64
	// Disconnected counts friend links reset for a bad frame (and their
	// friends refused a lobby link for friendlink.FaultPause).
	Disconnected uint64
	// ParticipantsRefused counts authors heard but not listed as
	// participants, for MaxLobbyParticipants, LobbyParticipantsPerLink or
	// the link's LobbyNewParticipantRate.
	ParticipantsRefused uint64
	// Links counts messages per friend that had a lobby link since the
	// service started, connected or not now.
	Links map[peer.ID]LinkStats
}

// joinedLobby is a lobby the node is in.
type joinedLobby struct {
	id    LobbyID
	rec   lobbyRecord
	as    Identity
	parts map[ChatID]Participant
	// asked is when the node asked a friend for the lobby's history, zero
	// once answered; friends asking for history meanwhile wait in waiters
	// so they get what the answer brings, not an empty history.
	asked   time.Time
	waiters []*lobbyLink
	// nextKeepAlive is when this node next says it is in the lobby.
	nextKeepAlive time.Time
	// missed is set while no friend link carries the lobby after it did
	// (and after a start): the node may have missed messages, so the
	// next friend that subscribes is asked for recent history.
	missed bool
}

// allows reports whether the lobby's traffic may go to friend p: any
// friend for a public lobby; for a private one, only the friend that
// invited this node and those it invited. So a friend that learns a
// private lobby's id cannot listen in by subscribing.
func (j *joinedLobby) allows(p peer.ID) bool {
	return !j.rec.Private || slices.Contains(j.rec.Members, p.String())
}

func (j *joinedLobby) announced(parts int) lobbyAnnounced {
	return lobbyAnnounced{ID: j.id, Name: j.rec.Name, Topic: j.rec.Topic, Participants: parts}
}

// Lobbies is the chat lobby service of one node. Its methods are safe for
// concurrent use; Close stops it.
type Lobbies struct {
	cfg    LobbyConfig
	log    *slog.Logger
	store  *lobbyStore
	lm     *friendlink.Manager[outFrame]
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup
	wgMu   sync.Mutex // guards closing and wg.Add; taken after mu
	closed bool

	mu       sync.Mutex
	joined   map[LobbyID]*joinedLobby
	links    map[peer.ID]*lobbyLink
	seen     *seen.Set[MsgID] // message ids taken lately
	authors  map[ChatID]*rate.Limiter
	dropped  map[string]uint64
	announce chan struct{} // wakes the loop to announce to every link
	// gone adds up the counters of the links that went down, per friend,
	// so Stats never decrease: one entry per friend that had a link.
	gone map[peer.ID]LinkStats

	partsRefused atomic.Uint64
}

// NewLobbies starts the lobby service: it loads the joined lobbies,
// registers LobbyProtocolID and opens lobby links to friends as they
// connect, subscribing them to the joined lobbies.
func NewLobbies(cfg LobbyConfig) (*Lobbies, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = LobbyKeepAlive
	}
	if cfg.LinkRetry <= 0 {
		cfg.LinkRetry = LobbyLinkRetry
	}
	if cfg.AnnounceInterval <= 0 {
		cfg.AnnounceInterval = LobbyAnnounceInterval
	}
	if cfg.Identities == nil {
		return nil, errors.New("starting lobbies: no identities")
	}
	st, err := openLobbyStore(cfg.DB)
	if err != nil {
		return nil, err
	}
	s := &Lobbies{
		cfg: cfg, log: cfg.Log, store: st,
		joined: map[LobbyID]*joinedLobby{}, links: map[peer.ID]*lobbyLink{},
		seen: seen.New[MsgID](LobbySeenMax, LobbySeenTTL), authors: map[ChatID]*rate.Limiter{},
		dropped: map[string]uint64{}, announce: make(chan struct{}, 1), gone: map[peer.ID]LinkStats{},
	}
	recs, err := st.lobbies()
	if err != nil {
		return nil, err
	}
	for id, r := range recs {
		as, ok := cfg.Identities.Get(ChatID(r.As))
		if !ok {
			s.log.Warn("lobby joined as an identity that is gone; leaving it", slog.String("lobby", id.String()))
			st.leave(id)
			continue
		}
		s.joined[id] = &joinedLobby{id: id, rec: r, as: as, parts: map[ChatID]Participant{}, missed: true}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.lm, err = friendlink.New(friendlink.Config[outFrame]{
		Host: cfg.Host, Friends: cfg.Friends, Protocol: protocol.ID(LobbyProtocolID), Service: LobbyService, Log: cfg.Log,
		Up: s.linkUp, Encode: encodeOutFrame, Size: outFrameSize,
		PeerFault: func(err error) bool { return errors.Is(err, ErrBadLobbyFrame) },
		MaxFrame:  MaxLobbyFrameSize, Queue: LobbyLinkQueue, QueueBytes: LobbyLinkQueueBytes,
		MaxInbound: LobbyStreamsPerFriend,
		Retry:      cfg.LinkRetry, OpenTimeout: LobbyLinkOpenTimeout,
		WriteTimeout: LobbyWriteTimeout, FrameTimeout: LobbyFrameTimeout,
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("starting lobbies: %w", err)
	}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

// Close removes the stream handler, resets every lobby link and waits for
// the service's goroutines. It is safe to call more than once.
func (s *Lobbies) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wgMu.Lock()
		s.closed = true
		s.wgMu.Unlock()
		s.lm.Close() // the links, and their dropLink
		s.wg.Wait()
	})
	return nil
}

// goFn runs f as one of the service's goroutines unless it is closing.
func (s *Lobbies) goFn(f func()) bool {
	s.wgMu.Lock()
	defer s.wgMu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
	return true
}

func (s *Lobbies) event(typ string, data any) {
	if s.cfg.Events != nil {
		s.cfg.Events(typ, data)
	}
}

// drop counts a dropped message or frame. Called with s.mu held.
func (s *Lobbies) dropLocked(reason string) { s.dropped[reason]++ }

func (s *Lobbies) drop(l *lobbyLink, reason string, m *LobbyMessage) {
	s.mu.Lock()
	s.dropLocked(reason)
	s.mu.Unlock()
	if reason == DropDuplicate {
		return // normal wherever the friend graph has cycles
	}
	attrs := []any{slog.String("reason", reason)}
	if l != nil {
		attrs = append(attrs, slog.String("peer", l.peer.ShortString()))
	}
	if m != nil {
		attrs = append(attrs, slog.String("lobby", m.Lobby.String()), slog.String("id", m.ID.String()),
			slog.String("author", m.Author.Short()))
	}
	s.log.Debug("lobby message dropped", attrs...)
}

// Stats returns the service's counters.
func (s *Lobbies) Stats() LobbyStats {
	lst := s.lm.Stats()
	st := LobbyStats{Dropped: map[string]uint64{}, Links: map[peer.ID]LinkStats{},
		Disconnected: lst.Faults, ParticipantsRefused: s.partsRefused.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.dropped {
		st.Dropped[k] = v
	}
	if n := lst.QueueDrops; n > 0 {
		st.Dropped[DropQueueFull] = n
	}
	for p, ls := range s.gone {
		st.Links[p] = ls
	}
	for p, l := range s.links {
		st.Links[p] = st.Links[p].add(l.stats())
	}
	return st
}

// Links returns the friends with a lobby link up.
func (s *Lobbies) Links() []peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]peer.ID, 0, len(s.links))
	for p := range s.links {
		out = append(out, p)
	}
	return out
}

// Subscribed reports whether friend p's link is subscribed to lobby id.
func (s *Lobbies) Subscribed(p peer.ID, id LobbyID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[p]
	return l != nil && l.subs[id]
}

// ---- the user's side ----

// Create makes a lobby and joins it as identity as (Identities.Resolve:
// "" is the default identity). A public lobby is announced to friends; a
// private one is only known to those invited.
func (s *Lobbies) Create(name, topic string, private bool, as string) (LobbyInfo, error) {
	if err := checkLobbyName(name, topic); err != nil {
		return LobbyInfo{}, err
	}
	ident, err := s.cfg.Identities.Resolve(as)
	if err != nil {
		return LobbyInfo{}, err
	}
	id := NewLobbyID()
	return s.join(id, lobbyRecord{Name: name, Topic: topic, Private: private, As: ident.ID[:]}, ident, "")
}

// Join joins a lobby as identity as: a public lobby a friend announces,
// or one a pending invite names (the only way into a private lobby). It
// asks a friend in the lobby for its recent history.
func (s *Lobbies) Join(id LobbyID, as string) (LobbyInfo, error) {
	ident, err := s.cfg.Identities.Resolve(as)
	if err != nil {
		return LobbyInfo{}, err
	}
	s.mu.Lock()
	_, joined := s.joined[id]
	s.mu.Unlock()
	if joined {
		return LobbyInfo{}, fmt.Errorf("%w: %s", ErrAlreadyJoined, id)
	}
	var from peer.ID
	rec := lobbyRecord{As: ident.ID[:]}
	if inv, ok := s.store.invite(id); ok {
		rec.Name, rec.Topic, rec.Private = inv.Name, inv.Topic, inv.Private
		from, _ = peer.Decode(inv.From)
	} else if a, ok := s.announcedLobby(id); ok {
		rec.Name, rec.Topic = a.Name, a.Topic
	} else {
		return LobbyInfo{}, fmt.Errorf("%w: %s", ErrUnknownLobby, id)
	}
	return s.join(id, rec, ident, from)
}

// announcedLobby finds a lobby in the friends' announcements.
func (s *Lobbies) announcedLobby(id LobbyID) (lobbyAnnounced, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.links {
		for _, a := range l.announced {
			if a.ID == id {
				return a, true
			}
		}
	}
	return lobbyAnnounced{}, false
}

// join enters a lobby: stores it, subscribes every link, asks one
// subscribed friend (preferably from) for history and says JOIN.
func (s *Lobbies) join(id LobbyID, rec lobbyRecord, as Identity, from peer.ID) (LobbyInfo, error) {
	if s.ctx.Err() != nil {
		return LobbyInfo{}, ErrLobbiesClosed
	}
	rec.Joined = time.Now().UTC()
	if rec.Private && from != "" {
		rec.Members = []string{from.String()}
	}
	s.mu.Lock()
	if _, ok := s.joined[id]; ok {
		s.mu.Unlock()
		return LobbyInfo{}, fmt.Errorf("%w: %s", ErrAlreadyJoined, id)
	}
	if len(s.joined) >= MaxLobbies {
		s.mu.Unlock()
		return LobbyInfo{}, ErrTooManyLobbies
	}
	if err := s.store.join(id, rec); err != nil {
		s.mu.Unlock()
		return LobbyInfo{}, err
	}
	jl := &joinedLobby{id: id, rec: rec, as: as, parts: map[ChatID]Participant{}}
	s.joined[id] = jl
	var ask *lobbyLink
	for _, l := range s.links {
		if !jl.allows(l.peer) {
			continue
		}
		l.send(subscribeFrame([]LobbyID{id}))
		if l.subs[id] && (ask == nil || l.peer == from) {
			ask = l
		}
	}
	if ask != nil {
		ask.histWanted[id] = true
		jl.asked = time.Now()
		ask.send(historyRequestFrame(id, LobbyHistoryMax))
	}
	s.mu.Unlock()
	if _, err := s.say(jl, LobbyKindJoin, ""); err != nil {
		s.log.Debug("saying join", slog.Any("err", err))
	}
	if !rec.Private {
		s.announceSoon()
	}
	return s.info(id)
}

// Invite invites friend p into a joined lobby. p must be online.
func (s *Lobbies) Invite(id LobbyID, p peer.ID) error {
	if !s.cfg.Friends.IsFriend(p) {
		return fmt.Errorf("%w: %s", ErrNotFriend, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	jl := s.joined[id]
	if jl == nil {
		return fmt.Errorf("%w: %s", ErrNotJoined, id)
	}
	l := s.links[p]
	if l == nil {
		return fmt.Errorf("%w: %s", ErrLobbyFriendOffline, p)
	}
	if !jl.allows(p) {
		rec := jl.rec
		rec.Members = append(slices.Clone(rec.Members), p.String())
		if err := s.store.join(id, rec); err != nil {
			return err
		}
		jl.rec = rec
		// Subscribed first, so that p, once it joins, asks this node for
		// the history.
		l.send(subscribeFrame([]LobbyID{id}))
	}
	l.send(inviteFrame(jl.announced(0), jl.rec.Private, jl.as.Nick))
	return nil
}

// Send says text in a joined lobby: it is stored and sent to every
// friend in the lobby.
func (s *Lobbies) Send(id LobbyID, text string) (LobbyMessage, error) {
	if err := CheckText(text); err != nil {
		return LobbyMessage{}, err
	}
	s.mu.Lock()
	jl := s.joined[id]
	s.mu.Unlock()
	if jl == nil {
		return LobbyMessage{}, fmt.Errorf("%w: %s", ErrNotJoined, id)
	}
	return s.say(jl, LobbyKindText, text)
}

// say signs, stores (unless a keep-alive) and sends a message of this
// node's in jl.
func (s *Lobbies) say(jl *joinedLobby, kind LobbyKind, text string) (LobbyMessage, error) {
	m := LobbyMessage{Lobby: jl.id, ID: NewMsgID(), Kind: kind, Time: time.Now().UTC(), Text: text}
	signLobbyMessage(jl.as, &m)
	s.mu.Lock()
	// Every message of ours spends the author's tokens, as it will at each
	// friend's; only text is refused (keep-alives, join and leave must go).
	if !s.authorLimiter(m.Author).Allow() && kind == LobbyKindText {
		s.mu.Unlock()
		return LobbyMessage{}, ErrLobbyTooFast
	}
	s.seen.Add(m.ID, time.Now())
	s.mu.Unlock()
	return s.accept(&m, nil)
}

// Log returns a page of a joined lobby's history: messages stored after
// sequence number after, oldest first, at most limit (MaxLogPage if 0)
// and MaxLogPageBytes of text; an empty page means there are no more.
func (s *Lobbies) Log(id LobbyID, after uint64, limit int) ([]LobbyMessage, error) {
	s.mu.Lock()
	_, ok := s.joined[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotJoined, id)
	}
	return s.store.list(id, after, limit)
}

// Leave says LEAVE in a lobby, unsubscribes every link from it and
// forgets it and its history.
func (s *Lobbies) Leave(id LobbyID) error {
	s.mu.Lock()
	jl := s.joined[id]
	s.mu.Unlock()
	if jl == nil {
		return fmt.Errorf("%w: %s", ErrNotJoined, id)
	}
	if _, err := s.say(jl, LobbyKindLeave, ""); err != nil {
		s.log.Debug("saying leave", slog.Any("err", err))
	}
	s.mu.Lock()
	delete(s.joined, id)
	for _, l := range s.links {
		l.send(unsubscribeFrame([]LobbyID{id}))
		delete(l.histWanted, id)
	}
	s.mu.Unlock()
	if err := s.store.leave(id); err != nil {
		return err
	}
	if !jl.rec.Private {
		s.announceSoon()
	}
	return nil
}

// Participants returns the authors heard in a joined lobby within
// LobbyParticipantIntervals keep-alives, this node's identity first.
func (s *Lobbies) Participants(id LobbyID) ([]Participant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	jl := s.joined[id]
	if jl == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotJoined, id)
	}
	return s.participantsLocked(jl, time.Now()), nil
}

func (s *Lobbies) participantsLocked(jl *joinedLobby, now time.Time) []Participant {
	out := []Participant{{ID: jl.as.ID, Nick: jl.as.Nick, LastSeen: now}}
	window := LobbyParticipantIntervals * s.keepAliveIntervalLocked(jl)
	for _, p := range jl.parts {
		if p.ID != jl.as.ID && now.Sub(p.LastSeen) <= window {
			out = append(out, p)
		}
	}
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].Nick < out[1+j].Nick })
	return out
}

// info describes one joined lobby.
func (s *Lobbies) info(id LobbyID) (LobbyInfo, error) {
	for _, li := range s.List() {
		if li.ID == id {
			return li, nil
		}
	}
	return LobbyInfo{}, fmt.Errorf("%w: %s", ErrUnknownLobby, id)
}

// Lobby describes a joined or announced lobby.
func (s *Lobbies) Lobby(id LobbyID) (LobbyInfo, error) { return s.info(id) }

// List returns the joined lobbies, then the public lobbies friends
// announce that the node is not in, each with the friends announcing it;
// by name.
func (s *Lobbies) List() []LobbyInfo {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := map[LobbyID]*LobbyInfo{}
	for id, jl := range s.joined {
		byID[id] = &LobbyInfo{ID: id, Name: jl.rec.Name, Topic: jl.rec.Topic, Private: jl.rec.Private,
			Joined: true, As: jl.as, Participants: len(s.participantsLocked(jl, now))}
	}
	for p, l := range s.links {
		for _, a := range l.announced {
			li := byID[a.ID]
			if li == nil {
				li = &LobbyInfo{ID: a.ID, Name: a.Name, Topic: a.Topic}
				byID[a.ID] = li
			}
			li.Friends = append(li.Friends, p)
			if !li.Joined {
				li.Participants = max(li.Participants, a.Participants)
			}
		}
	}
	out := make([]LobbyInfo, 0, len(byID))
	for _, li := range byID {
		slices.Sort(li.Friends)
		out = append(out, *li)
	}
	slices.SortFunc(out, func(a, b LobbyInfo) int {
		if a.Joined != b.Joined {
			if a.Joined {
				return -1
			}
			return 1
		}
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// Invites returns the pending invites, oldest first.
func (s *Lobbies) Invites() ([]LobbyInvite, error) { return s.store.invites(time.Now()) }

// ---- relay ----

// authorLimiter returns an author's rate limiter. Called with s.mu held.
func (s *Lobbies) authorLimiter(a ChatID) *rate.Limiter {
	l := s.authors[a]
	if l == nil {
		if len(s.authors) >= MaxLobbyAuthors {
			for k, v := range s.authors {
				if v.Tokens() >= LobbyAuthorBurst {
					delete(s.authors, k)
				}
			}
		}
		l = rate.NewLimiter(LobbyAuthorRate, LobbyAuthorBurst)
		s.authors[a] = l
	}
	return l
}

// receive handles a message a friend relayed on l.
func (s *Lobbies) receive(l *lobbyLink, m *LobbyMessage) {
	now := time.Now()
	s.mu.Lock()
	jl := s.joined[m.Lobby]
	dup := s.seen.Has(m.ID)
	member := jl != nil && jl.allows(l.peer)
	friendOK := member && !dup && l.friendLim.Allow()
	s.mu.Unlock()
	switch {
	case jl == nil:
		s.drop(l, DropNotJoined, m)
		return
	case !member:
		// A private lobby's traffic comes only from the friend that
		// invited us and those we invited.
		s.drop(l, DropUnsolicited, m)
		return
	case dup:
		s.drop(l, DropDuplicate, m)
		return
	case !friendOK:
		s.drop(l, DropFriendRate, m)
		return
	}
	if reason := checkLobbyMessage(m, now, false); reason != "" {
		s.drop(l, reason, m)
		return
	}
	if !m.verify() {
		s.drop(l, DropBadSignature, m)
		return
	}
	s.mu.Lock()
	if s.seen.Has(m.ID) {
		s.mu.Unlock()
		s.drop(l, DropDuplicate, m)
		return
	}
	if !s.authorLimiter(m.Author).Allow() {
		s.mu.Unlock()
		s.drop(l, DropAuthorRate, m)
		return
	}
	s.seen.Add(m.ID, now)
	s.mu.Unlock()
	s.accept(m, l)
}

// accept takes a message that passed every check (or this node's own):
// records its author as a participant, stores it unless a keep-alive
// (a duplicate of the stored history stops here), publishes it and sends
// it to every subscribed link but from.
func (s *Lobbies) accept(m *LobbyMessage, from *lobbyLink) (LobbyMessage, error) {
	if m.Kind != LobbyKindKeepAlive {
		stored, dup, err := s.store.append(*m)
		if err != nil {
			return LobbyMessage{}, err
		}
		if dup {
			s.drop(from, DropDuplicate, m)
			return stored, nil
		}
		m = &stored
	}
	f := msgFrame(m)
	s.mu.Lock()
	jl := s.joined[m.Lobby]
	if jl != nil {
		if m.Kind == LobbyKindLeave {
			delete(jl.parts, m.Author)
		} else if p, ok := jl.parts[m.Author]; ok {
			p.Nick, p.LastSeen = m.Nick, time.Now()
			jl.parts[m.Author] = p
		} else if s.newParticipantLocked(jl, from) {
			p := Participant{ID: m.Author, Nick: m.Nick, LastSeen: time.Now()}
			if from != nil {
				p.via = from.peer
			}
			jl.parts[m.Author] = p
		} else {
			s.partsRefused.Add(1)
		}
	}
	for _, l := range s.links {
		if l != from && l.subs[m.Lobby] && (jl == nil || jl.allows(l.peer)) {
			l.sendMsg(f, m.ID)
		}
	}
	s.mu.Unlock()
	if m.Kind != LobbyKindKeepAlive {
		s.event("lobby.message", LobbyEvent{Message: *m})
	}
	return *m, nil
}

// newParticipantLocked reports whether an author not heard before in jl,
// whose message came through from (nil: this node), may be listed: the
// lobby has fewer than MaxLobbyParticipants, from brought fewer than
// LobbyParticipantsPerLink of them, and from's new-participant rate
// allows one more. So sock puppets (a new identity per message) of one
// friend fill at most part of the list, slowly, and cannot stretch the
// keep-alive interval past what MaxLobbyParticipants gives.
func (s *Lobbies) newParticipantLocked(jl *joinedLobby, from *lobbyLink) bool {
	if len(jl.parts) >= MaxLobbyParticipants {
		return false
	}
	if from == nil {
		return true
	}
	n := 0
	for _, p := range jl.parts {
		if p.via == from.peer {
			n++
		}
	}
	return n < LobbyParticipantsPerLink && from.newParts.Allow()
}

// receiveHistory stores the messages of a history reply l was asked for:
// each must be signed by its author (age is not checked); none is
// relayed.
func (s *Lobbies) receiveHistory(l *lobbyLink, id LobbyID, ms []LobbyMessage) {
	s.mu.Lock()
	wanted := l.histWanted[id]
	delete(l.histWanted, id)
	_, joined := s.joined[id]
	s.mu.Unlock()
	if !wanted || !joined {
		s.drop(l, DropUnsolicited, nil)
		return
	}
	defer s.historyDone(id)
	now := time.Now()
	for i := range ms {
		m := &ms[i]
		if m.Kind == LobbyKindKeepAlive {
			s.drop(l, DropBadKind, m)
			continue
		}
		if reason := checkLobbyMessage(m, now, true); reason != "" {
			s.drop(l, reason, m)
			continue
		}
		if !m.verify() {
			s.drop(l, DropBadSignature, m)
			continue
		}
		stored, dup, err := s.store.append(*m)
		if err != nil {
			s.log.Debug("storing history", slog.Any("err", err))
			return
		}
		s.mu.Lock()
		s.seen.Add(m.ID, now)
		s.mu.Unlock()
		if !dup {
			s.event("lobby.message", LobbyEvent{Message: stored, History: true})
		}
	}
}

// needsCatchUpLocked reports whether friend l subscribing to lobby id
// should be asked for the lobby's recent history: the node is in the
// lobby but was cut off from it (no friend link carried it, or it just
// started) and may have missed messages. Whatever the history brings
// that is already stored is dropped as a duplicate.
func (s *Lobbies) needsCatchUpLocked(l *lobbyLink, id LobbyID) bool {
	jl := s.joined[id]
	return jl != nil && jl.missed && jl.allows(l.peer) && jl.asked.IsZero() && !l.histWanted[id]
}

// historyDone answers the friends that asked for a lobby's history
// while this node waited for its own.
func (s *Lobbies) historyDone(id LobbyID) {
	s.mu.Lock()
	var waiters []*lobbyLink
	if jl := s.joined[id]; jl != nil {
		jl.asked, waiters, jl.waiters = time.Time{}, jl.waiters, nil
	}
	s.mu.Unlock()
	for _, w := range waiters {
		s.answerHistory(w, id, LobbyHistoryMax)
	}
}

// answerHistory answers a friend's history request for a joined lobby;
// if this node's own request is pending, once it is answered.
func (s *Lobbies) answerHistory(l *lobbyLink, id LobbyID, n int) {
	s.mu.Lock()
	jl, joined := s.joined[id]
	if joined && !jl.allows(l.peer) {
		joined = false // a private lobby's history only goes to its members
	}
	if joined && !jl.asked.IsZero() && !slices.Contains(jl.waiters, l) && len(jl.waiters) < MaxLobbies {
		jl.waiters = append(jl.waiters, l)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if !joined || n <= 0 {
		l.send(historyReplyFrame(id, nil))
		return
	}
	ms, err := s.store.recent(id, n, LobbyHistoryBytes)
	if err != nil {
		s.log.Debug("reading history for a friend", slog.Any("err", err))
	}
	l.send(historyReplyFrame(id, ms))
}

// receiveInvite stores an invite from friend l.
func (s *Lobbies) receiveInvite(l *lobbyLink, inv *lobbyInviteFrame) {
	s.mu.Lock()
	_, joined := s.joined[inv.lobby.ID]
	s.mu.Unlock()
	if joined {
		return
	}
	li := LobbyInvite{Lobby: inv.lobby.ID, Name: inv.lobby.Name, Topic: inv.lobby.Topic, Private: inv.private,
		From: l.peer.String(), Nick: inv.nick, Received: time.Now().UTC()}
	ok, err := s.store.addInvite(li)
	if err != nil {
		s.log.Debug("storing invite", slog.Any("err", err))
		return
	}
	if !ok {
		s.drop(l, DropInvitesFull, nil)
		return
	}
	s.event("lobby.invite", li)
}

// ---- links ----

// loop says keep-alives, announces and expires caches.
func (s *Lobbies) loop() {
	defer s.wg.Done()
	keep := time.NewTicker(max(s.cfg.KeepAlive/LobbyKeepAliveChecks, time.Millisecond))
	defer keep.Stop()
	announce := time.NewTicker(s.cfg.AnnounceInterval)
	defer announce.Stop()
	janitor := time.NewTicker(10 * time.Second)
	defer janitor.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-keep.C:
			s.keepAlive()
		case <-announce.C:
			s.announceAll()
		case <-s.announce:
			s.announceAll()
		case now := <-janitor.C:
			s.expire(now)
		}
	}
}

// announceSoon has the loop announce to every link.
func (s *Lobbies) announceSoon() {
	select {
	case s.announce <- struct{}{}:
	default:
	}
}

// announcementLocked is this node's public lobbies.
func (s *Lobbies) announcementLocked() []lobbyAnnounced {
	now := time.Now()
	var out []lobbyAnnounced
	for _, jl := range s.joined {
		if !jl.rec.Private {
			out = append(out, jl.announced(len(s.participantsLocked(jl, now))))
		}
	}
	return out
}

func (s *Lobbies) announceAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := announceFrame(s.announcementLocked())
	for _, l := range s.links {
		l.send(f)
	}
}

// keepAliveIntervalLocked is how often a member of jl says it is there:
// KeepAlive, or longer in a large lobby, so that keep-alives, which cross
// every link between members, take at most LobbyKeepAliveShare of a
// link's LobbyFriendRate whatever the number of participants.
func (s *Lobbies) keepAliveIntervalLocked(jl *joinedLobby) time.Duration {
	parts := float64(min(len(jl.parts)+1, MaxLobbyParticipants))
	scaled := time.Duration(parts / (LobbyFriendRate * LobbyKeepAliveShare) * float64(time.Second))
	return max(s.cfg.KeepAlive, scaled)
}

func (s *Lobbies) keepAlive() {
	now := time.Now()
	s.mu.Lock()
	var ls []*joinedLobby
	for _, jl := range s.joined {
		if jl.nextKeepAlive.IsZero() {
			// First round after a start or a join: a random point in the
			// interval, so members that started together spread out.
			jl.nextKeepAlive = now.Add(time.Duration(mrand.Int64N(int64(s.keepAliveIntervalLocked(jl)))))
			continue
		}
		if now.Before(jl.nextKeepAlive) {
			continue
		}
		iv := s.keepAliveIntervalLocked(jl)
		jl.nextKeepAlive = now.Add(iv*3/4 + time.Duration(mrand.Int64N(int64(iv/2)+1)))
		ls = append(ls, jl)
	}
	s.mu.Unlock()
	for _, jl := range ls {
		if _, err := s.say(jl, LobbyKindKeepAlive, ""); err != nil {
			s.log.Debug("saying keep-alive", slog.Any("err", err))
		}
	}
}

func (s *Lobbies) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen.Expire(now)
	var late []LobbyID
	for _, jl := range s.joined {
		if !jl.asked.IsZero() && now.Sub(jl.asked) > LobbyHistoryWait {
			late = append(late, jl.id)
		}
		window := LobbyParticipantIntervals * s.keepAliveIntervalLocked(jl)
		for a, p := range jl.parts {
			if now.Sub(p.LastSeen) > window {
				delete(jl.parts, a)
			}
		}
	}
	for a, l := range s.authors {
		if l.Tokens() >= LobbyAuthorBurst {
			delete(s.authors, a)
		}
	}
	if len(late) > 0 {
		s.goFn(func() {
			for _, id := range late {
				s.historyDone(id)
			}
		})
	}
}

// linkUp takes a friend's new lobby link (friendlink.Config.Up) and sends
// it the subscriptions and the announcement; a link it replaces is
// dropped when its read loop ends.
func (s *Lobbies) linkUp(fl *friendlink.Link[outFrame]) friendlink.Handler[outFrame] {
	l := newLobbyLink(s, fl)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.links[l.peer] = l
	var ids []LobbyID
	for id, jl := range s.joined {
		if jl.allows(l.peer) {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		l.send(subscribeFrame(ids))
	}
	l.send(announceFrame(s.announcementLocked()))
	return l
}

// carriedLocked reports whether some friend link is subscribed to lobby
// id.
func (s *Lobbies) carriedLocked(id LobbyID) bool {
	for _, l := range s.links {
		if l.subs[id] {
			return true
		}
	}
	return false
}

// dropLink forgets l once its read loop and writer ended, keeping its
// counters.
func (s *Lobbies) dropLink(l *lobbyLink) {
	s.mu.Lock()
	if s.links[l.peer] == l {
		delete(s.links, l.peer)
	}
	s.gone[l.peer] = s.gone[l.peer].add(l.stats())
	for id := range l.subs {
		if jl := s.joined[id]; jl != nil && !s.carriedLocked(id) {
			jl.missed = true
		}
	}
	var pending []LobbyID
	for id := range l.histWanted {
		pending = append(pending, id)
	}
	s.mu.Unlock()
	for _, id := range pending {
		s.historyDone(id) // no answer will come from l
	}
}

// lobbyLink is the lobby stream to one friend, a friendlink.Link, with
// the lobby's per-friend state. Fields after mu's comment are guarded by
// Lobbies.mu.
type lobbyLink struct {
	*friendlink.Link[outFrame]
	s    *Lobbies
	peer peer.ID

	friendLim *rate.Limiter // lobby messages from the friend
	ctrlLim   *rate.Limiter // invites and history requests from the friend
	newParts  *rate.Limiter // participants first heard through the friend

	in, outN atomic.Uint64 // lobby messages read, written

	// guarded by Lobbies.mu
	subs       map[LobbyID]bool
	announced  []lobbyAnnounced
	histWanted map[LobbyID]bool
}

// outFrame is a frame queued for a link; msg is set for a lobby message
// (for the counters).
type outFrame struct {
	f   *pb.LobbyFrame
	msg *MsgID
}

// encodeOutFrame appends o's frame with its length prefix to dst
// (friendlink.Config.Encode).
func encodeOutFrame(dst []byte, o outFrame) ([]byte, error) { return appendLobbyFrame(dst, o.f) }

// outFrameSize is what o takes on the wire, its length prefix included:
// what a link's queue charges for it (friendlink.Config.Size).
func outFrameSize(o outFrame) int {
	n := proto.Size(o.f)
	return protowire.SizeVarint(uint64(n)) + n
}

func newLobbyLink(s *Lobbies, fl *friendlink.Link[outFrame]) *lobbyLink {
	return &lobbyLink{
		Link: fl, s: s, peer: fl.Peer(),
		friendLim:  rate.NewLimiter(LobbyFriendRate, LobbyFriendBurst),
		ctrlLim:    rate.NewLimiter(LobbyControlRate, LobbyControlBurst),
		newParts:   rate.NewLimiter(LobbyNewParticipantRate, LobbyNewParticipantBurst),
		subs:       map[LobbyID]bool{},
		histWanted: map[LobbyID]bool{},
	}
}

// stats returns the link's counters.
func (l *lobbyLink) stats() LinkStats {
	return LinkStats{In: l.in.Load(), Out: l.outN.Load(), QueueDrops: l.QueueDrops()}
}

// add returns the sum of a and b.
func (a LinkStats) add(b LinkStats) LinkStats {
	return LinkStats{In: a.In + b.In, Out: a.Out + b.Out, QueueDrops: a.QueueDrops + b.QueueDrops}
}

// send queues f without blocking; a full queue drops it (counted). It
// may be called with or without Lobbies.mu held.
func (l *lobbyLink) send(f *pb.LobbyFrame) { l.Send(outFrame{f: f}) }

// sendMsg is send for the frame of lobby message id.
func (l *lobbyLink) sendMsg(f *pb.LobbyFrame, id MsgID) { l.Send(outFrame{f: f, msg: &id}) }

// Written counts a lobby message written to the friend
// (friendlink.Handler).
func (l *lobbyLink) Written(o outFrame) {
	if o.msg != nil {
		l.outN.Add(1)
		if l.s.cfg.OnRelay != nil {
			l.s.cfg.OnRelay(l.peer, true, *o.msg)
		}
	}
}

// Serve reads the friend's frames and acts on them (friendlink.Handler);
// a frame that breaks the protocol ends it with an error wrapping
// ErrBadLobbyFrame, which friendlink takes for a fault.
func (l *lobbyLink) Serve(fr *kframe.Reader) error {
	r := &lobbyFrameReader{r: fr}
	for {
		f, err := r.read()
		if err != nil {
			return err
		}
		if err := l.handle(f); err != nil {
			return err
		}
	}
}

// Down forgets the link (friendlink.Handler).
func (l *lobbyLink) Down() { l.s.dropLink(l) }

// handle acts on one frame from the friend. An error breaks the link.
func (l *lobbyLink) handle(f lobbyFrame) error {
	s := l.s
	switch f.typ {
	case lobbyFrameMessage:
		l.in.Add(1)
		if s.cfg.OnRelay != nil {
			s.cfg.OnRelay(l.peer, false, f.msg.ID)
		}
		s.receive(l, f.msg)
	case lobbyFrameSubscribe:
		s.mu.Lock()
		var catchUp []LobbyID
		for _, id := range f.lobbies {
			if !l.subs[id] && len(l.subs) < MaxLobbies && s.needsCatchUpLocked(l, id) {
				catchUp = append(catchUp, id)
			}
			l.subs[id] = true
		}
		n := len(l.subs)
		for _, id := range catchUp {
			// Unlike a join, a catch-up does not hold the friends' own
			// history requests: two nodes catching up from each other
			// would wait for each other.
			s.joined[id].missed = false
			l.histWanted[id] = true
			l.send(historyRequestFrame(id, LobbyHistoryMax))
		}
		s.mu.Unlock()
		if n > MaxLobbies {
			return fmt.Errorf("%w: subscribed to %d lobbies", ErrBadLobbyFrame, n)
		}
	case lobbyFrameUnsubscribe:
		s.mu.Lock()
		for _, id := range f.lobbies {
			delete(l.subs, id)
		}
		s.mu.Unlock()
	case lobbyFrameAnnounce:
		s.mu.Lock()
		l.announced = f.announce
		s.mu.Unlock()
	case lobbyFrameInvite:
		if !l.ctrlLim.Allow() {
			s.drop(l, DropControlRate, nil)
			return nil
		}
		s.receiveInvite(l, f.invite)
	case lobbyFrameHistoryRequest:
		if !l.ctrlLim.Allow() {
			s.drop(l, DropControlRate, nil)
			return nil
		}
		s.answerHistory(l, f.lobby, f.max)
	case lobbyFrameHistoryReply:
		s.receiveHistory(l, f.lobby, f.history)
	}
	return nil
}
