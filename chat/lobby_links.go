package chat

// The lobby links: the per-friend streams are kith/internal/friendlink's
// (opening, the bounded send queue and its writer, the framed reader, and
// the misbehaviour policy); a frame that breaks the protocol
// (ErrBadLobbyFrame) is a fault under that policy: the link is reset and
// the friend refused a lobby link for friendlink.FaultPause, its
// connection left alone.

import (
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"kith/chat/pb"
	kframe "kith/internal/frame"
	"kith/internal/friendlink"
)

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
	l.send(announceFrame(s.announcementLocked(), s.clock()))
	return l
}

// dropLink forgets l once its read loop and writer ended, keeping its
// counters.
func (s *Lobbies) dropLink(l *lobbyLink) {
	s.mu.Lock()
	if s.links[l.peer] == l {
		delete(s.links, l.peer)
	}
	delete(s.presWaiting, l)
	s.gone[l.peer] = s.gone[l.peer].add(l.stats())
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
	haveLim   *rate.Limiter // "have" frames from the friend
	wantLim   *rate.Limiter // "want" frames from the friend
	presLim   *rate.Limiter // presence written to the friend (guarded by Lobbies.mu)

	in, outN atomic.Uint64 // lobby messages read, written

	// guarded by Lobbies.mu
	subs       map[LobbyID]bool
	announced  []lobbyAnnounced
	histWanted map[LobbyID]bool
	// wantQ holds, per lobby, the ids to ask the friend for; inflight
	// the request the friend has not answered yet (lobby_sync.go).
	wantQ    map[LobbyID][]MsgID
	inflight map[LobbyID]*wantReq
	// presQ holds presence waiting for presLim (lobby_presence.go).
	presQ []presenceFrame
	// nextSync is when the link's lobbies are next synced.
	nextSync time.Time
	// clockOffset is the friend's clock minus ours, estimated at clockAt
	// (zero: not known); clockSaid that it was logged as off;
	// timeDropLogged when a drop for a message's time was last logged.
	clockOffset    time.Duration
	clockAt        time.Time
	clockSaid      bool
	timeDropLogged time.Time
}

// outFrame is a frame queued for a link; msg is set for a lobby message
// (for the counters).
type outFrame struct {
	f    *pb.LobbyFrame
	msg  *MsgID
	kind LobbyKind
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
		haveLim:    rate.NewLimiter(LobbyHaveRate, LobbyHaveBurst),
		wantLim:    rate.NewLimiter(LobbyWantRate, LobbyWantBurst),
		presLim:    rate.NewLimiter(rate.Limit(s.cfg.PresenceRate), LobbyPresenceBurst),
		subs:       map[LobbyID]bool{},
		histWanted: map[LobbyID]bool{},
		wantQ:      map[LobbyID][]MsgID{},
		inflight:   map[LobbyID]*wantReq{},
		nextSync:   time.Now().Add(s.syncInterval()),
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

// sendMsg is send for the frame of lobby message id, of kind k.
func (l *lobbyLink) sendMsg(f *pb.LobbyFrame, id MsgID, k LobbyKind) {
	l.Send(outFrame{f: f, msg: &id, kind: k})
}

// Written counts a lobby message written to the friend
// (friendlink.Handler).
func (l *lobbyLink) Written(o outFrame) {
	if o.msg != nil {
		l.outN.Add(1)
		if l.s.cfg.OnRelay != nil {
			l.s.cfg.OnRelay(l.peer, true, *o.msg, o.kind)
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
