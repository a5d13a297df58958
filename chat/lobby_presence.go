package chat

// Presence at scale: keep-alives, joins and leaves cross every link
// between a lobby's members, so what they cost grows with the lobby. Two
// things bound it, whatever the lobby's size:
//
//   - The keep-alive interval grows with the lobby's estimated size
//     (lobbySize): each member says one every size / LobbyKeepAliveRate
//     seconds (at least LobbyKeepAlive, at most LobbyKeepAliveMax), so
//     one lobby's keep-alives come to about LobbyKeepAliveRate a second
//     on every link. The size is not the participant list (capped at
//     MaxLobbyParticipants) but an estimate from the keep-alives heard:
//     each one says its author's interval, and counts for that interval
//     divided by LobbySizeWindow, decaying by e every window; an author
//     that says one every T seconds then adds up to one, whatever T. A
//     joiner starts from the largest size its friends announce.
//   - Every link has a presence budget (LobbyPresenceRate, a quarter of
//     the friend rate, for all lobbies): the keep-alives, joins and
//     leaves this node writes to a friend, its own and those it relays,
//     wait in a short queue for it (LobbyPresenceQueue) and are dropped
//     beyond, keep-alives first. So a burst of joins (a thousand members
//     joining in a minute) is slowed down and thinned hop by hop instead
//     of taking every link's rate, and text is never crowded out. While
//     a link drops presence of a lobby, this node's own keep-alives in
//     it back off (up to LobbyKeepAliveBackoff times the interval), so
//     members that started together, before they know the lobby's
//     size, quiet down within a few intervals.
//
// Text is not touched: it is relayed at once, to every member, and sync
// brings what a full queue dropped. A join or leave a presence queue
// dropped is still in the author's history and its neighbours'; sync
// may bring it to others later, and the author shows up in their
// participant lists with its keep-alives.

import (
	"math"
	mrand "math/rand/v2"
	"time"

	"kith/chat/pb"
)

// lobbySize estimates how many members a lobby has from the keep-alives
// heard. Guarded by Lobbies.mu.
type lobbySize struct {
	v  float64   // the estimate at at
	at time.Time // zero: nothing heard
}

// value is the estimate at now.
func (z *lobbySize) value(now time.Time) float64 {
	if z.at.IsZero() {
		return 0
	}
	return z.v * math.Exp(-max(0, now.Sub(z.at).Seconds())/LobbySizeWindow.Seconds())
}

// add counts a keep-alive of an author that says one every every.
func (z *lobbySize) add(now time.Time, every time.Duration) {
	z.v = z.value(now) + every.Seconds()/LobbySizeWindow.Seconds()
	z.at = now
}

// heard counts a message of the lobby from another member: a keep-alive
// for its author's interval, at most longest; a JOIN for one member,
// which the joiner's keep-alives then take over from as it decays (in
// expectation the two add up to one); a LEAVE takes one off.
func (z *lobbySize) heard(now time.Time, m *LobbyMessage, longest time.Duration) {
	switch m.Kind {
	case LobbyKindKeepAlive:
		z.add(now, keepAliveEvery(m.every, longest))
	case LobbyKindJoin:
		z.v, z.at = z.value(now)+1, now
	case LobbyKindLeave:
		z.v, z.at = max(0, z.value(now)-1), now
	}
}

// seed raises the estimate to n (a size friends announce) if it is lower.
func (z *lobbySize) seed(now time.Time, n int) {
	if v := z.value(now); float64(n) > v {
		z.v, z.at = float64(n), now
	}
}

// keepAliveEvery is how long a member that said every (0: an older
// version, which says nothing) is taken to wait between keep-alives: at
// most longest, this node's own longest interval.
func keepAliveEvery(every, longest time.Duration) time.Duration {
	if every <= 0 {
		return LobbyKeepAlive
	}
	return min(every, longest)
}

// presenceStretch is how much slower than chat's own this node's
// presence runs: LobbyPresenceRate over the configured budget, at least
// 1. The simulator lowers the budget to run a lobby larger than its
// cores carry in real time; the keep-alive intervals, their longest
// included, stretch with it, so such a lobby behaves as chat's does,
// slowed down.
func (s *Lobbies) presenceStretch() float64 {
	if s.cfg.PresenceRate <= 0 || s.cfg.PresenceRate >= LobbyPresenceRate {
		return 1
	}
	return LobbyPresenceRate / s.cfg.PresenceRate
}

// longestKeepAlive is the longest keep-alive interval this node says or
// takes from a friend: LobbyKeepAliveMax, stretched (presenceStretch),
// at least the configured KeepAlive.
func (s *Lobbies) longestKeepAlive() time.Duration {
	return max(time.Duration(float64(LobbyKeepAliveMax)*s.presenceStretch()), s.cfg.KeepAlive)
}

// sizeLocked is jl's estimated number of members, this node included:
// the participants listed, or the estimate from keep-alives when higher;
// at most MaxLobbySize.
func (s *Lobbies) sizeLocked(jl *joinedLobby, now time.Time) int {
	est := int(math.Round(jl.size.value(now))) + 1
	return min(max(len(jl.parts)+1, est), MaxLobbySize)
}

// keepAliveIntervalLocked is how often a member of jl says it is there,
// on average: KeepAlive, or longer in a large lobby, so that the
// keep-alives of all members come to about LobbyKeepAliveRate a second on
// every link whatever the lobby's size; times the backoff while links
// drop presence; at most longestKeepAlive.
func (s *Lobbies) keepAliveIntervalLocked(jl *joinedLobby) time.Duration {
	n := s.sizeLocked(jl, time.Now())
	aim := LobbyKeepAliveRate * s.cfg.PresenceRate / LobbyPresenceRate
	if s.cfg.PresenceRate <= 0 {
		aim = LobbyKeepAliveRate // a bare Lobbies in a test
	}
	scaled := time.Duration(float64(n) / aim * float64(time.Second))
	iv := max(s.cfg.KeepAlive, scaled) * time.Duration(max(1, jl.backoff))
	return min(iv, s.longestKeepAlive())
}

// isPresence reports whether a lobby message of kind k is presence, sent
// within each link's LobbyPresenceRate.
func isPresence(k LobbyKind) bool {
	return k == LobbyKindKeepAlive || k == LobbyKindJoin || k == LobbyKindLeave
}

// presenceFrame is a presence message waiting for its link's budget.
type presenceFrame struct {
	f     *pb.LobbyFrame
	id    MsgID
	lobby LobbyID
	kind  LobbyKind
}

// sendPresenceLocked sends presence message m (frame f) to l now if l's
// presence budget allows and nothing waits before it; else it waits in
// l's presence queue, which drops a waiting keep-alive, or m, when full.
// Called with s.mu held.
func (s *Lobbies) sendPresenceLocked(l *lobbyLink, f *pb.LobbyFrame, m *LobbyMessage) {
	if len(l.presQ) == 0 && l.presLim.Allow() {
		l.sendMsg(f, m.ID, m.Kind)
		return
	}
	if len(l.presQ) >= LobbyPresenceQueue {
		drop := -1
		for i, w := range l.presQ {
			if w.kind == LobbyKindKeepAlive {
				drop = i
				break
			}
		}
		if drop < 0 {
			s.presenceDroppedLocked(m.Lobby)
			return
		}
		s.presenceDroppedLocked(l.presQ[drop].lobby)
		l.presQ = append(l.presQ[:drop], l.presQ[drop+1:]...)
	}
	l.presQ = append(l.presQ, presenceFrame{f: f, id: m.ID, lobby: m.Lobby, kind: m.Kind})
	s.presWaiting[l] = struct{}{}
	select {
	case s.presWake <- struct{}{}:
	default:
	}
}

// presenceDroppedLocked counts a presence message of lobby id dropped
// over a link's budget, and has this node's keep-alives in it back off.
func (s *Lobbies) presenceDroppedLocked(id LobbyID) {
	s.dropLocked(DropPresenceRate)
	if jl := s.joined[id]; jl != nil {
		jl.congested = time.Now()
	}
}

// flushPresence sends what waits in the links' presence queues as their
// budgets allow, and reports whether some still waits. It visits only
// the links with something waiting (presWaiting), not every link.
func (s *Lobbies) flushPresence() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.presWaiting {
		if s.links[l.peer] != l {
			delete(s.presWaiting, l) // gone: its queue goes with it
			continue
		}
		n := 0
		for n < len(l.presQ) && l.presLim.Allow() {
			w := l.presQ[n]
			if l.subs[w.lobby] {
				l.sendMsg(w.f, w.id, w.kind)
			}
			n++
		}
		if n > 0 {
			l.presQ = append(l.presQ[:0], l.presQ[n:]...)
		}
		if len(l.presQ) == 0 {
			delete(s.presWaiting, l)
		}
	}
	return len(s.presWaiting) > 0
}

// scheduleKeepAliveLocked sets when this node next says a keep-alive in
// jl: at a random point of [3/4, 5/4] of the interval from now, after
// the backoff moved (doubled if a link dropped presence of jl within the
// last interval, halved if not).
func (s *Lobbies) scheduleKeepAliveLocked(jl *joinedLobby, now time.Time) time.Duration {
	last := s.keepAliveIntervalLocked(jl)
	if !jl.congested.IsZero() && now.Sub(jl.congested) < last {
		jl.backoff = min(max(1, jl.backoff)*2, LobbyKeepAliveBackoff)
	} else if jl.backoff > 1 {
		jl.backoff /= 2
	}
	iv := s.keepAliveIntervalLocked(jl)
	jl.nextKeepAlive = now.Add(iv*3/4 + jitter(iv/2))
	return iv
}

// jitter is a random duration in [0, d].
func jitter(d time.Duration) time.Duration { return time.Duration(mrand.Int64N(int64(max(d, 0)) + 1)) }
