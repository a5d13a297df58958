package chat

// The lobby service's timers: keep-alives, announcements and expiry.

import (
	"log/slog"
	mrand "math/rand/v2"
	"time"
)

// loop says keep-alives, announces and expires caches.
func (s *Lobbies) loop() {
	defer s.wg.Done()
	keep := time.NewTicker(max(s.cfg.KeepAlive/LobbyKeepAliveChecks, time.Millisecond))
	defer keep.Stop()
	announce := time.NewTicker(s.cfg.AnnounceInterval)
	defer announce.Stop()
	janitor := time.NewTicker(10 * time.Second)
	defer janitor.Stop()
	syncs := time.NewTicker(min(s.syncInterval()/4, 10*time.Second))
	defer syncs.Stop()
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
		case now := <-syncs.C:
			s.syncTick(now)
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
	f := announceFrame(s.announcementLocked(), s.clock())
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
