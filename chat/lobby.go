package chat

// Chat lobbies (RetroShare's chat lobbies) on /kith/lobby/1.
//
// Each pair of connected friends keeps one lobby stream (opened by the
// lower peer ID) that carries, both ways: signed lobby messages; which
// lobbies each side wants the traffic of (subscribe, unsubscribe); the
// public lobbies each side is in (announce, replacing the previous list);
// invites; and history requests and replies.
//
// The service is in these files: this one (types, the service and the
// user's side), lobby_relay.go (taking, storing and passing on what
// friends send), lobby_sync.go (getting what live relay missed),
// lobby_clock.go (friends' clocks), lobby_presence.go (the size
// estimate, keep-alive intervals, each link's presence budget),
// lobby_timers.go (keep-alives,
// announcements, expiry, sync rounds), lobby_links.go (the friend links,
// on kith/internal/friendlink), lobby_store.go and lobby_wire.go.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// KeepAlive is how often members of a small lobby say they are
	// there, the shortest keep-alive interval; 0 means LobbyKeepAlive.
	KeepAlive time.Duration
	// LinkRetry is how often links to connected friends are (re)opened;
	// 0 means LobbyLinkRetry.
	LinkRetry time.Duration
	// AnnounceInterval is how often public lobbies are announced anyway;
	// 0 means LobbyAnnounceInterval.
	AnnounceInterval time.Duration
	// OnRelay, if set, sees every lobby message frame that crosses a
	// friend link: received from p (out false, before any check) or
	// written to p (out true), with the message's kind as it says.
	// History replies are not included. It is called from many
	// goroutines and must not block.
	OnRelay func(p peer.ID, out bool, id MsgID, kind LobbyKind)
	// Clock is the wall clock that dates this node's messages and
	// announcements and that friends' messages are checked against; nil
	// means time.Now. Tests set a skewed one.
	Clock func() time.Time
	// SyncInterval is how often each link's lobbies are synced again
	// while it stays up; 0 means LobbySyncInterval.
	SyncInterval time.Duration
	// PresenceRate is each link's presence budget, in messages a second
	// (0 means LobbyPresenceRate); the keep-alive interval aims at
	// LobbyKeepAliveRate/LobbyPresenceRate of it, and a budget below
	// LobbyPresenceRate stretches the longest interval by as much
	// (longestKeepAlive). The simulator lowers it to run a lobby larger
	// than its cores can carry in real time: chat's presence, slowed
	// down.
	PresenceRate float64
	// Verify checks the signature of every lobby message taken from a
	// friend (live, history and sync); nil means ed25519.Verify. It must
	// give ed25519.Verify's answer for the same arguments and be safe for
	// concurrent use. The simulator, which runs every member of a lobby
	// in one process (N members checking N JOINs: N^2 checks on its
	// cores, which separate machines share), gives all its nodes one
	// verifier that remembers recent answers; each node still asks for
	// every check.
	Verify Verifier
}

// LobbyEvent is the data of a "lobby.message" event.
type LobbyEvent struct {
	Message LobbyMessage
	// History is set for a message that came in a history or sync
	// reply, not live.
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
	// Participants counts the authors heard lately (for a joined lobby;
	// in one of more than MaxLobbyParticipants, its estimated size), or
	// the most any friend announced.
	Participants int
	// Friends are the friends that announce the lobby.
	Friends []peer.ID
	// Size is a joined lobby's estimated number of members (the
	// participants listed, or more from the keep-alives heard), and
	// KeepAlive how often this node says it is there, on average
	// (lobby_presence.go).
	Size      int
	KeepAlive time.Duration
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
	// Synced counts messages taken from sync replies: what live relay
	// did not bring.
	Synced uint64
	// Clocks are the estimated clock offsets of the friends with a link
	// up (Lobbies.Clocks).
	Clocks map[peer.ID]ClockOffset
	// ClockSkewed is set when this node's clock seems wrong
	// (Lobbies.ClockSkewed); ClockBehind is by how much it is behind
	// most friends' (negative: ahead).
	ClockSkewed bool
	ClockBehind time.Duration
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
	// listening is when this node began to hear the lobby live (joined
	// it, or started); founded is set when it made the lobby in this run,
	// so it heard every member join (ownCountStandsLocked).
	listening time.Time
	founded   bool
	// partsVia counts the participants listed per friend link they were
	// first heard through (addPart, delPart).
	partsVia map[peer.ID]int
	// lastKeepAlive is when this node last said it is there (a JOIN or
	// a keep-alive); size estimates the lobby's members from the
	// keep-alives, joins and leaves heard; backoff multiplies the keep-alive interval while links drop
	// presence (congested: when one last did) (lobby_presence.go).
	lastKeepAlive time.Time
	size          lobbySize
	// storedSize is the size last stored in the lobby's record
	// (lobbyRecord.Size; sizeDrifted).
	storedSize int
	backoff    int
	congested  time.Time
}

// addPart lists p as a participant.
func (j *joinedLobby) addPart(p Participant) {
	if _, ok := j.parts[p.ID]; !ok && p.via != "" {
		if j.partsVia == nil {
			j.partsVia = map[peer.ID]int{}
		}
		j.partsVia[p.via]++
	}
	j.parts[p.ID] = p
}

// delPart takes a off the participants.
func (j *joinedLobby) delPart(a ChatID) {
	p, ok := j.parts[a]
	if !ok {
		return
	}
	delete(j.parts, a)
	if p.via != "" {
		if j.partsVia[p.via]--; j.partsVia[p.via] <= 0 {
			delete(j.partsVia, p.via)
		}
	}
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
	presWake chan struct{} // wakes the loop to let waiting presence through
	// presWaiting holds the links whose presence queue is not empty.
	presWaiting map[*lobbyLink]struct{}
	// toStore holds the joins and leaves taken from friends that wait to
	// be stored together (storePresence); storeWake wakes the loop to
	// store them within LobbyStoreDelay.
	toStore   []LobbyMessage
	storeWake chan struct{}
	// gone adds up the counters of the links that went down, per friend,
	// so Stats never decrease: one entry per friend that had a link.
	gone map[peer.ID]LinkStats

	partsRefused atomic.Uint64
	// synced counts messages taken from sync replies (stored or already
	// there).
	synced uint64
	// clockWarned is what the log said of this node's clock until it is
	// right again: 0 nothing, 1 that it or the only friend's is wrong, 2
	// that it is wrong (lobby_clock.go).
	clockWarned int
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
	if cfg.PresenceRate <= 0 {
		cfg.PresenceRate = LobbyPresenceRate
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
		dropped: map[string]uint64{}, announce: make(chan struct{}, 1), presWake: make(chan struct{}, 1), gone: map[peer.ID]LinkStats{},
		presWaiting: map[*lobbyLink]struct{}{}, storeWake: make(chan struct{}, 1),
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
		jl := &joinedLobby{id: id, rec: r, as: as, parts: map[ChatID]Participant{}, listening: time.Now()}
		// Before it hears the lobby again, a restarted member takes the
		// size it knew (lobby_presence.go).
		jl.size.seed(jl.listening, min(r.Size, MaxLobbySize)-1)
		jl.storedSize = r.Size
		s.joined[id] = jl
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.lm, err = friendlink.New(friendlink.Config[outFrame]{
		Host: cfg.Host, Friends: cfg.Friends, Protocol: protocol.ID(LobbyProtocolID), Log: cfg.Log,
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
		s.storeSizes()
	})
	return nil
}

// sizeDrifted reports whether a lobby's size has moved far enough from
// the one stored to be stored again: by more than a tenth, so that a
// node that is killed rather than stopped still finds about the right
// size when it starts, at a write now and then.
func sizeDrifted(stored, size int) bool {
	d := size - stored
	return d*10 > stored || -d*10 > stored
}

// storeSizes keeps the estimated size of every joined lobby for the next
// start, where it differs from the one stored.
func (s *Lobbies) storeSizes() {
	now := time.Now()
	s.mu.Lock()
	sizes := map[LobbyID]int{}
	for id, jl := range s.joined {
		if n := s.sizeLocked(jl, now); n != jl.storedSize {
			sizes[id], jl.storedSize = n, n
		}
	}
	s.mu.Unlock()
	s.keepSizes(sizes)
}

// keepSizes stores sizes in the lobbies' records, if there are any.
func (s *Lobbies) keepSizes(sizes map[LobbyID]int) {
	if len(sizes) == 0 {
		return
	}
	if err := s.store.setSizes(sizes); err != nil {
		s.log.Warn("keeping lobby sizes", slog.Any("err", err))
	}
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

// clock is the wall clock of LobbyConfig.Clock.
func (s *Lobbies) clock() time.Time {
	if s.cfg.Clock != nil {
		return s.cfg.Clock()
	}
	return time.Now()
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
	if (reason == DropStale || reason == DropFuture) && l != nil && m != nil {
		s.logTimeDrop(l, reason, m)
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
	st.Clocks = map[peer.ID]ClockOffset{}
	for p, l := range s.links {
		st.Links[p] = st.Links[p].add(l.stats())
		if !l.clockAt.IsZero() {
			st.Clocks[p] = ClockOffset{Offset: l.clockOffset, At: l.clockAt}
		}
	}
	st.Synced = s.synced
	st.ClockSkewed, st.ClockBehind, _, _ = s.clockSkewedLocked()
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
	li, err := s.join(id, lobbyRecord{Name: name, Topic: topic, Private: private, As: ident.ID[:]}, ident, "")
	if err == nil {
		s.mu.Lock()
		if jl := s.joined[id]; jl != nil {
			jl.founded = true
		}
		s.mu.Unlock()
	}
	return li, err
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
	jl := &joinedLobby{id: id, rec: rec, as: as, parts: map[ChatID]Participant{}, listening: time.Now()}
	s.joined[id] = jl
	now := time.Now()
	var ask *lobbyLink
	for _, l := range s.links {
		if !jl.allows(l.peer) {
			continue
		}
		// The joiner has heard no keep-alive yet: it starts from the
		// size its friends announce (lobby_presence.go).
		for _, a := range l.announced {
			if a.ID == id {
				jl.size.seed(now, a.Participants-1)
			}
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
	// The JOIN says this node is there: the first keep-alive comes an
	// interval later.
	iv := s.keepAliveIntervalLocked(jl)
	jl.nextKeepAlive = now.Add(iv*3/4 + jitter(iv/2))
	jl.lastKeepAlive = now
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
	return s.sayEvery(jl, kind, text, 0)
}

// sayEvery is say for a keep-alive that says this node's keep-alive
// interval, every.
func (s *Lobbies) sayEvery(jl *joinedLobby, kind LobbyKind, text string, every time.Duration) (LobbyMessage, error) {
	m := LobbyMessage{Lobby: jl.id, ID: NewMsgID(), Kind: kind, Time: s.clock().UTC(), Text: text, every: every}
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
		delete(l.wantQ, id)
		delete(l.inflight, id)
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

// ownCountStandsLocked reports whether this node's count of jl's members
// (countLocked) is its own to give: it made the lobby in this run and
// heard every member join, or it has listened for a whole participant
// window, in which every member says it is there. Before, friends'
// announced estimates may know of more.
func (s *Lobbies) ownCountStandsLocked(jl *joinedLobby, now time.Time) bool {
	return jl.founded || now.Sub(jl.listening) >= LobbyParticipantIntervals*s.keepAliveIntervalLocked(jl)
}

// countLocked is how many members jl has: those listed, or, when the
// list is full (MaxLobbyParticipants), the estimated size if higher.
func (s *Lobbies) countLocked(jl *joinedLobby, now time.Time) int {
	n := len(s.participantsLocked(jl, now))
	if len(jl.parts) >= MaxLobbyParticipants {
		n = max(n, s.sizeLocked(jl, now))
	}
	return n
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
			Joined: true, As: jl.as, Participants: s.countLocked(jl, now),
			Size: s.sizeLocked(jl, now), KeepAlive: s.keepAliveIntervalLocked(jl)}
	}
	for p, l := range s.links {
		for _, a := range l.announced {
			li := byID[a.ID]
			if li == nil {
				li = &LobbyInfo{ID: a.ID, Name: a.Name, Topic: a.Topic}
				byID[a.ID] = li
			}
			li.Friends = append(li.Friends, p)
			// A joiner has heard few members live yet: the count its
			// friends announce (their size estimates) is the better one
			// until it has.
			if jl := s.joined[a.ID]; jl == nil || !s.ownCountStandsLocked(jl, now) {
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
