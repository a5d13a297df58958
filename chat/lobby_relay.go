package chat

// Relay: a node in lobby L takes a message of L that it has not seen
// (by id: a bounded seen cache kept longer than the age window, and the
// stored history), that is fresh (LobbyMaxAge, LobbyMaxSkew), well
// formed, signed by its author and within the friend's and the author's
// rates; it stores it (keep-alives are not stored) and sends it on to
// every friend link subscribed to L but the one it came from (keep-alives,
// joins and leaves within each link's presence budget: lobby_presence.go).
// So each message crosses each link at most once in each direction. Whatever is
// dropped is counted by reason (LobbyStats) and logged at debug level
// (at Info, now and then, when dropped for its time: lobby_clock.go).
// What live relay drops or never sees, sync brings later (lobby_sync.go).
//
// Only members subscribe, so only members relay: a lobby's traffic stays
// on the friend links between its members.

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

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
	wall := s.clock()
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
	if reason := checkLobbyMessage(m, wall, false); reason != "" {
		s.drop(l, reason, m)
		return
	}
	if !m.verifyWith(s.cfg.Verify) {
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
// it to every subscribed link but from. A friend's join or leave is
// stored and published a little later, with others (storePresence): a
// join is taken by every member, and one transaction each made the
// bbolt stores of a burst of joins the largest cost after signature
// checks; its duplicates are the seen cache's to stop, since neither
// history nor sync replies carry joins and leaves.
func (s *Lobbies) accept(m *LobbyMessage, from *lobbyLink) (LobbyMessage, error) {
	batched := from != nil && (m.Kind == LobbyKindJoin || m.Kind == LobbyKindLeave)
	if m.Kind != LobbyKindKeepAlive && !batched {
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
	var flush []LobbyMessage
	s.mu.Lock()
	if batched {
		s.toStore = append(s.toStore, *m)
		if len(s.toStore) >= LobbyStoreBatch {
			flush, s.toStore = s.toStore, nil
		} else {
			select {
			case s.storeWake <- struct{}{}:
			default:
			}
		}
	}
	jl := s.joined[m.Lobby]
	if jl != nil {
		if m.Kind == LobbyKindLeave {
			jl.delPart(m.Author)
		} else if p, ok := jl.parts[m.Author]; ok {
			p.Nick, p.LastSeen = m.Nick, time.Now()
			jl.parts[m.Author] = p
		} else if s.newParticipantLocked(jl, from) {
			p := Participant{ID: m.Author, Nick: m.Nick, LastSeen: time.Now()}
			if from != nil {
				p.via = from.peer
			}
			jl.addPart(p)
		} else {
			s.partsRefused.Add(1)
		}
	}
	if jl != nil && from != nil {
		jl.size.heard(time.Now(), m, s.longestKeepAlive())
	}
	for _, l := range s.links {
		if l != from && l.subs[m.Lobby] && (jl == nil || jl.allows(l.peer)) {
			if isPresence(m.Kind) {
				s.sendPresenceLocked(l, f, m)
			} else {
				l.sendMsg(f, m.ID, m.Kind)
			}
		}
	}
	s.mu.Unlock()
	switch {
	case flush != nil:
		s.storePresence(flush)
	case m.Kind != LobbyKindKeepAlive && !batched:
		s.event("lobby.message", LobbyEvent{Message: *m})
	}
	return *m, nil
}

// storePresence stores the joins and leaves of friends waiting in
// toStore (flush nil) or flush, in one transaction, and publishes those
// stored.
func (s *Lobbies) storePresence(flush []LobbyMessage) {
	if flush == nil {
		s.mu.Lock()
		flush, s.toStore = s.toStore, nil
		s.mu.Unlock()
	}
	if len(flush) == 0 {
		return
	}
	stored, err := s.store.appendBatch(flush)
	if err != nil {
		s.log.Debug("storing joins and leaves", slog.Any("err", err))
		return
	}
	for _, m := range stored {
		s.event("lobby.message", LobbyEvent{Message: m})
	}
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
	return jl.partsVia[from.peer] < LobbyParticipantsPerLink && from.newParts.Allow()
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
	now, wall := time.Now(), s.clock()
	var fresh []MsgID
	defer func() {
		s.mu.Lock()
		s.spreadLocked(l, id, fresh)
		s.mu.Unlock()
	}()
	for i := range ms {
		isNew, err := s.takeReplied(l, &ms[i], now, wall)
		if err != nil {
			s.log.Debug("storing history", slog.Any("err", err))
			return
		}
		if isNew {
			fresh = append(fresh, ms[i].ID)
		}
	}
}

// takeReplied checks and stores m, a message of a history or sync reply
// from l (asked for: its age is not checked): a keep-alive, a message
// that does not check out or is not signed is dropped and counted. It
// reports whether m was new; err is the store's.
func (s *Lobbies) takeReplied(l *lobbyLink, m *LobbyMessage, now, wall time.Time) (isNew bool, err error) {
	if m.Kind == LobbyKindKeepAlive {
		s.drop(l, DropBadKind, m)
		return false, nil
	}
	if reason := checkLobbyMessage(m, wall, true); reason != "" {
		s.drop(l, reason, m)
		return false, nil
	}
	if !m.verifyWith(s.cfg.Verify) {
		s.drop(l, DropBadSignature, m)
		return false, nil
	}
	stored, dup, err := s.store.append(*m)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.seen.Add(m.ID, now)
	if !dup {
		s.heardEarlierLocked(m, l, now)
	}
	s.mu.Unlock()
	if !dup {
		s.event("lobby.message", LobbyEvent{Message: stored, History: true})
	}
	return !dup, nil
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

// answerHistory answers a friend's history request for a joined lobby
// with its newest text (recentText: not joins and leaves); if this
// node's own request is pending, once it is answered.
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
	ms, err := s.store.recentText(id, n, LobbyHistoryBytes)
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

// handle acts on one frame from the friend. An error breaks the link.
func (l *lobbyLink) handle(f lobbyFrame) error {
	s := l.s
	switch f.typ {
	case lobbyFrameMessage:
		l.in.Add(1)
		if s.cfg.OnRelay != nil {
			s.cfg.OnRelay(l.peer, false, f.msg.ID, f.msg.Kind)
		}
		s.receive(l, f.msg)
	case lobbyFrameSubscribe:
		s.mu.Lock()
		var sync []LobbyID
		for _, id := range f.lobbies {
			if jl := s.joined[id]; !l.subs[id] && len(l.subs) < MaxLobbies && jl != nil && jl.allows(l.peer) {
				sync = append(sync, id)
			}
			l.subs[id] = true
		}
		n := len(l.subs)
		s.mu.Unlock()
		if n > MaxLobbies {
			return fmt.Errorf("%w: subscribed to %d lobbies", ErrBadLobbyFrame, n)
		}
		// The link starts carrying these lobbies: each side lists what it
		// holds, so each gets what it missed (lobby_sync.go). Listed after
		// subscribing, so a message stored meanwhile is listed or relayed.
		for _, id := range sync {
			s.sendHave(l, id, LobbySyncIDs)
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
		s.seedSizesLocked(l)
		s.mu.Unlock()
		if !f.clock.IsZero() {
			s.receiveClock(l, f.clock)
		}
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
	case lobbyFrameHave:
		s.receiveHave(l, f.lobby, f.ids)
	case lobbyFrameWant:
		s.answerWant(l, f.lobby, f.ids)
	case lobbyFrameSyncReply:
		s.receiveSyncReply(l, f.lobby, f.history, f.truncated)
	}
	return nil
}

// heardEarlierLocked lists the author of m, a message that came in a
// history or sync reply through from, as a participant when m was said
// within the participant window: a joiner then counts the members who
// spoke lately, not only those it has heard live since. LastSeen is the
// message's time (never later than now), so the author drops off the
// list when it would have live; a leave removes it. The same limits as
// for live authors hold (newParticipantLocked).
func (s *Lobbies) heardEarlierLocked(m *LobbyMessage, from *lobbyLink, now time.Time) {
	jl := s.joined[m.Lobby]
	if jl == nil || m.Author == jl.as.ID {
		return
	}
	if m.Kind == LobbyKindLeave {
		if p, ok := jl.parts[m.Author]; ok && !p.LastSeen.After(m.Time) {
			jl.delPart(m.Author)
		}
		return
	}
	at := m.Time
	if at.After(now) {
		at = now
	}
	if now.Sub(at) > LobbyParticipantIntervals*s.keepAliveIntervalLocked(jl) {
		return
	}
	if p, ok := jl.parts[m.Author]; ok {
		if at.After(p.LastSeen) {
			p.LastSeen = at
			jl.parts[m.Author] = p
		}
		return
	}
	if s.newParticipantLocked(jl, from) {
		jl.addPart(Participant{ID: m.Author, Nick: m.Nick, LastSeen: at, via: from.peer})
	} else {
		s.partsRefused.Add(1)
	}
}

// seedSizesLocked raises the size estimates of the joined lobbies l
// announces whose count is not yet this node's own to give
// (ownCountStandsLocked): a member that joined or restarted lately has
// heard few keep-alives, and the size its friends know sets its
// keep-alive interval meanwhile (lobby_presence.go). A friend that
// inflates it stretches this node's interval, at most to
// longestKeepAlive, and only for that window.
func (s *Lobbies) seedSizesLocked(l *lobbyLink) {
	now := time.Now()
	for _, a := range l.announced {
		if jl := s.joined[a.ID]; jl != nil && jl.allows(l.peer) && !s.ownCountStandsLocked(jl, now) {
			jl.size.seed(now, a.Participants-1)
		}
	}
}
