package chat

// The lobby service's timers: keep-alives, announcements and expiry.

import (
	"log/slog"
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
	// presence ticks only while some presence frame waits for a link's
	// budget.
	var presence *time.Ticker
	var presenceC <-chan time.Time
	defer func() {
		if presence != nil {
			presence.Stop()
		}
	}()
	// store runs only while friends' joins and leaves wait to be stored.
	var store *time.Timer
	var storeC <-chan time.Time
	defer func() {
		if store != nil {
			store.Stop()
		}
	}()
	for {
		select {
		case <-s.ctx.Done():
			s.storePresence(nil)
			return
		case <-s.storeWake:
			if store == nil {
				store = time.NewTimer(LobbyStoreDelay)
				storeC = store.C
			}
		case <-storeC:
			store, storeC = nil, nil
			s.storePresence(nil)
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
		case <-s.presWake:
			if presence == nil {
				presence = time.NewTicker(LobbyPresenceTick)
				presenceC = presence.C
			}
		case <-presenceC:
			if !s.flushPresence() {
				presence.Stop()
				presence, presenceC = nil, nil
			}
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
			out = append(out, jl.announced(s.sizeLocked(jl, now)))
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

// keepAlive says the keep-alives that are due.
func (s *Lobbies) keepAlive() {
	now := time.Now()
	s.mu.Lock()
	type due struct {
		jl    *joinedLobby
		every time.Duration
	}
	var ls []due
	for _, jl := range s.joined {
		if jl.nextKeepAlive.IsZero() {
			// First round after a start: a random point in the interval,
			// so members that started together spread out.
			jl.nextKeepAlive = now.Add(jitter(s.keepAliveIntervalLocked(jl)))
			continue
		}
		if now.Before(jl.nextKeepAlive) {
			continue
		}
		// The lobby may have grown since this keep-alive was set: it
		// is due only once three quarters of today's interval passed.
		if iv := s.keepAliveIntervalLocked(jl); !jl.lastKeepAlive.IsZero() && now.Sub(jl.lastKeepAlive) < iv*3/4 {
			jl.nextKeepAlive = jl.lastKeepAlive.Add(iv*3/4 + jitter(iv/2))
			continue
		}
		jl.lastKeepAlive = now
		ls = append(ls, due{jl, s.scheduleKeepAliveLocked(jl, now)})
	}
	s.mu.Unlock()
	for _, d := range ls {
		if _, err := s.sayEvery(d.jl, LobbyKindKeepAlive, "", d.every); err != nil {
			s.log.Debug("saying keep-alive", slog.Any("err", err))
		}
	}
}

func (s *Lobbies) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen.Expire(now)
	var late []LobbyID
	var sizes map[LobbyID]int // drifted from what is stored
	for _, jl := range s.joined {
		if !jl.asked.IsZero() && now.Sub(jl.asked) > LobbyHistoryWait {
			late = append(late, jl.id)
		}
		window := LobbyParticipantIntervals * s.keepAliveIntervalLocked(jl)
		for a, p := range jl.parts {
			if now.Sub(p.LastSeen) > window {
				jl.delPart(a)
			}
		}
		if n := s.sizeLocked(jl, now); sizeDrifted(jl.storedSize, n) {
			if sizes == nil {
				sizes = map[LobbyID]int{}
			}
			sizes[jl.id], jl.storedSize = n, n
		}
	}
	if sizes != nil {
		s.goFn(func() { s.keepSizes(sizes) })
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
