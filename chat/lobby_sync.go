package chat

// Sync: what a member missed while it, or a relay between it and the
// others, was away. Live relay (lobby_relay.go) takes only fresh news;
// sync takes the rest, by id, whatever its age:
//
//   - When a friend's link starts carrying a lobby (the friend subscribes
//     to one this node is in), and every LobbySyncInterval after, this
//     node lists the ids of its newest messages of the lobby ("have":
//     LobbySyncIDs at a link's start, LobbySyncPeriodicIDs after). Both
//     sides do, so each learns what the other holds.
//   - The receiver looks the ids up in its history and asks for those it
//     lacks ("want", LobbyWantMax at a time, one request per lobby and
//     link in flight, re-asked after LobbyWantTimeout); the answer holds
//     at most LobbyHistoryBytes of them and says whether it left some out.
//   - Messages in an answer are taken only if asked for on that link, well
//     formed and signed by their authors (not checked for age), and the
//     store's dedup keeps each once. Those newly stored are listed
//     ("have") to every other link carrying the lobby, so they cross a
//     healed partition hop by hop.
//
// A friend's sync costs bounded work: its "have" frames are rate-limited
// (LobbyHaveRate) and each looks up at most LobbySyncIDs ids; its
// "want" frames are answered at LobbyWantRate (its reading waits
// beyond), each answer at most LobbyHistoryBytes; what one link keeps to
// ask for is at most LobbyWantPending ids.

import (
	"log/slog"
	"slices"
	"time"
)

// wantReq is a "want" in flight on a link.
type wantReq struct {
	ids map[MsgID]bool
	at  time.Time
}

// sendHave lists the newest n messages of lobby id to l.
func (s *Lobbies) sendHave(l *lobbyLink, id LobbyID, n int) {
	ids, err := s.store.newestIDs(id, n)
	if err != nil {
		s.log.Debug("listing lobby messages for a friend", slog.Any("err", err))
		return
	}
	if len(ids) > 0 {
		l.send(haveFrame(id, ids))
	}
}

// receiveHave takes a friend's list of messages it holds and asks for
// those this node lacks.
func (s *Lobbies) receiveHave(l *lobbyLink, id LobbyID, ids []MsgID) {
	if !l.haveLim.Allow() {
		s.drop(l, DropControlRate, nil)
		return
	}
	s.mu.Lock()
	jl := s.joined[id]
	ok := jl != nil && jl.allows(l.peer)
	s.mu.Unlock()
	if !ok {
		return // a lobby this node left meanwhile, or not the friend's to sync
	}
	missing, err := s.store.missing(id, ids)
	if err != nil || len(missing) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := 0
	for _, q := range l.wantQ {
		pending += len(q)
	}
	for _, r := range l.inflight {
		pending += len(r.ids)
	}
	inflight := l.inflight[id]
	q := l.wantQ[id]
	queued := make(map[MsgID]bool, len(q))
	for _, m := range q {
		queued[m] = true
	}
	for _, m := range missing {
		if pending >= LobbyWantPending {
			break
		}
		if (inflight != nil && inflight.ids[m]) || queued[m] {
			continue
		}
		queued[m] = true
		q = append(q, m)
		pending++
	}
	l.wantQ[id] = q
	s.pumpWantLocked(l, id, time.Now())
}

// pumpWantLocked asks l for the next ids of lobby id it is to ask for,
// unless a request is in flight. Called with s.mu held.
func (s *Lobbies) pumpWantLocked(l *lobbyLink, id LobbyID, now time.Time) {
	if l.inflight[id] != nil {
		return
	}
	q := l.wantQ[id]
	if len(q) == 0 {
		delete(l.wantQ, id)
		return
	}
	n := min(len(q), LobbyWantMax)
	batch := slices.Clone(q[:n])
	if n == len(q) {
		delete(l.wantQ, id)
	} else {
		l.wantQ[id] = q[n:]
	}
	r := &wantReq{ids: make(map[MsgID]bool, n), at: now}
	for _, m := range batch {
		r.ids[m] = true
	}
	l.inflight[id] = r
	l.send(wantFrame(id, batch))
}

// answerWant sends a friend the messages it asked for that this node
// holds, at LobbyWantRate: a faster friend waits.
func (s *Lobbies) answerWant(l *lobbyLink, id LobbyID, ids []MsgID) {
	if d := l.wantLim.Reserve().Delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-l.Done():
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	jl := s.joined[id]
	ok := jl != nil && jl.allows(l.peer)
	s.mu.Unlock()
	var ms []LobbyMessage
	truncated := false
	if ok {
		var err error
		if ms, truncated, err = s.store.byIDs(id, ids, LobbyHistoryBytes); err != nil {
			s.log.Debug("reading lobby messages for a friend", slog.Any("err", err))
		}
	}
	l.send(syncReplyFrame(id, ms, truncated))
}

// receiveSyncReply takes the answer to this node's "want" on l: stores
// the messages asked for that check out, lists those newly stored to
// the other links carrying the lobby, and asks for the next ones.
func (s *Lobbies) receiveSyncReply(l *lobbyLink, id LobbyID, ms []LobbyMessage, truncated bool) {
	s.mu.Lock()
	req := l.inflight[id]
	delete(l.inflight, id)
	jl := s.joined[id]
	ok := jl != nil && jl.allows(l.peer)
	s.mu.Unlock()
	if req == nil || !ok {
		s.drop(l, DropUnsolicited, nil)
		return
	}
	now, wall := time.Now(), s.clock()
	got := map[MsgID]bool{}
	var fresh []MsgID
	for i := range ms {
		m := &ms[i]
		if !req.ids[m.ID] || got[m.ID] {
			s.drop(l, DropUnsolicited, m)
			continue
		}
		got[m.ID] = true
		isNew, err := s.takeReplied(l, m, now, wall)
		if err != nil {
			s.log.Debug("storing synced lobby message", slog.Any("err", err))
			break
		}
		if isNew {
			s.mu.Lock()
			s.synced++
			s.mu.Unlock()
			fresh = append(fresh, m.ID)
		}
	}
	s.mu.Lock()
	// An answer left some out only if it holds something: a friend that
	// says "truncated" with nothing in it is not asked the same again.
	if truncated && len(ms) > 0 && l.inflight[id] == nil {
		var again []MsgID
		for m := range req.ids {
			if !got[m] {
				again = append(again, m)
			}
		}
		l.wantQ[id] = append(again, l.wantQ[id]...)
	}
	s.pumpWantLocked(l, id, now)
	s.spreadLocked(l, id, fresh)
	s.mu.Unlock()
}

// spreadLocked lists messages of lobby id this node newly stored from a
// sync or history reply to every link carrying the lobby but from.
// Called with s.mu held.
func (s *Lobbies) spreadLocked(from *lobbyLink, id LobbyID, ids []MsgID) {
	jl := s.joined[id]
	if len(ids) == 0 || jl == nil {
		return
	}
	for len(ids) > 0 {
		n := min(len(ids), LobbySyncIDs)
		f := haveFrame(id, ids[:n])
		for _, l := range s.links {
			if l != from && l.subs[id] && jl.allows(l.peer) {
				l.send(f)
			}
		}
		ids = ids[n:]
	}
}

// syncTick re-asks "want"s unanswered for LobbyWantTimeout and, on the
// links due, lists each shared lobby's newest messages again.
func (s *Lobbies) syncTick(now time.Time) {
	type due struct {
		l  *lobbyLink
		id LobbyID
	}
	var haves []due
	s.mu.Lock()
	for _, l := range s.links {
		for id, r := range l.inflight {
			if now.Sub(r.at) > LobbyWantTimeout {
				delete(l.inflight, id)
				var again []MsgID
				for m := range r.ids {
					again = append(again, m)
				}
				l.wantQ[id] = append(again, l.wantQ[id]...)
				s.pumpWantLocked(l, id, now)
			}
		}
		if now.Before(l.nextSync) {
			continue
		}
		l.nextSync = now.Add(s.syncInterval())
		for id := range l.subs {
			if jl := s.joined[id]; jl != nil && jl.allows(l.peer) {
				haves = append(haves, due{l, id})
			}
		}
	}
	s.mu.Unlock()
	for _, d := range haves {
		s.sendHave(d.l, d.id, LobbySyncPeriodicIDs)
	}
}

// syncInterval is LobbyConfig.SyncInterval or LobbySyncInterval.
func (s *Lobbies) syncInterval() time.Duration {
	if s.cfg.SyncInterval > 0 {
		return s.cfg.SyncInterval
	}
	return LobbySyncInterval
}
