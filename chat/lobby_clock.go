package chat

// Clocks: lobby messages carry their author's clock, and a relay takes
// live only those within LobbyMaxSkew (and LobbyMaxAge) of its own. So a
// wrong clock, this node's or a friend's, silently splits a lobby unless
// someone says so. Each announcement carries its sender's clock; the
// receiver keeps the difference to its own (the friend's clock offset,
// latency included: well under LobbyClockWarn) and says when it is
// large: at Warn once when most friends' clocks differ from this node's
// the same way (this node's clock is wrong: the user can set it), at
// Info for one friend's. Drops for a message's time are logged at Info,
// at most every LobbyClockLogEvery per link, with the friend's offset.

import (
	"log/slog"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ClockOffset is a friend's clock as estimated from its lobby link.
type ClockOffset struct {
	// Offset is the friend's clock minus this node's: positive when the
	// friend's clock is ahead.
	Offset time.Duration
	// At is when it was estimated (this node's clock).
	At time.Time
}

// Clocks returns the estimated clock offsets of the friends with a
// lobby link up that sent their clock.
func (s *Lobbies) Clocks() map[peer.ID]ClockOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[peer.ID]ClockOffset{}
	for p, l := range s.links {
		if !l.clockAt.IsZero() {
			out[p] = ClockOffset{Offset: l.clockOffset, At: l.clockAt}
		}
	}
	return out
}

// ClockSkewed reports whether this node's clock seems wrong: the
// estimated offsets of more than half the friends with a lobby link are
// beyond LobbyClockWarn, and their median is too. It returns the median
// (how far this node's clock is behind: negative when it is ahead).
func (s *Lobbies) ClockSkewed() (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	skewed, med, _, _ := s.clockSkewedLocked()
	return skewed, med
}

func (s *Lobbies) clockSkewedLocked() (skewed bool, median time.Duration, far, n int) {
	var offs []time.Duration
	for _, l := range s.links {
		if !l.clockAt.IsZero() {
			offs = append(offs, l.clockOffset)
			if l.clockOffset.Abs() > LobbyClockWarn {
				far++
			}
		}
	}
	n = len(offs)
	if n == 0 {
		return false, 0, 0, 0
	}
	slices.Sort(offs)
	median = offs[n/2]
	if n%2 == 0 {
		median = (offs[n/2-1] + offs[n/2]) / 2
	}
	// One friend's clock cannot outvote this node's: receiveClock says
	// that one of the two is wrong.
	return n >= 2 && 2*far > n && median.Abs() > LobbyClockWarn, median, far, n
}

// receiveClock takes the clock of a friend's announcement.
func (s *Lobbies) receiveClock(l *lobbyLink, theirs time.Time) {
	off := theirs.Sub(s.clock()).Round(time.Millisecond)
	s.mu.Lock()
	l.clockOffset, l.clockAt = off, time.Now()
	skewed, med, far, n := s.clockSkewedLocked()
	level := 0 // what to say: 1 one of two clocks is wrong, 2 ours is
	switch {
	case skewed:
		level = 2
	case n == 1 && far == 1:
		level = 1
	}
	warn := level > s.clockWarned
	if warn {
		s.clockWarned = level
	} else if med.Abs() < LobbyClockWarn/2 {
		s.clockWarned = 0 // right again: warn anew if it goes wrong
	}
	friendInfo := !skewed && off.Abs() > LobbyClockWarn && !l.clockSaid
	if friendInfo {
		l.clockSaid = true
	} else if off.Abs() < LobbyClockWarn/2 {
		l.clockSaid = false
	}
	s.mu.Unlock()
	if warn {
		how := "behind"
		if med < 0 {
			how = "ahead"
		}
		if level == 1 {
			s.log.Warn("this computer's clock and the only connected friend's differ: one of them is wrong; "+
				"lobby messages more than an hour off are dropped (check the clock, turn on network time)",
				slog.String("friend", l.peer.ShortString()), slog.Duration("friend_offset", med))
		} else {
			s.log.Warn("this computer's clock seems wrong: it is "+how+" of most friends' clocks; "+
				"lobby messages more than an hour off are dropped (set the clock, turn on network time)",
				slog.Duration("by", med.Abs()), slog.Int("friends", far), slog.Int("of", n))
		}
	}
	if friendInfo {
		s.log.Info("a friend's clock differs from this computer's", slog.String("friend", l.peer.ShortString()),
			slog.Duration("offset", off))
	}
}

// logTimeDrop logs a message of l dropped for its time, at Info at most
// every LobbyClockLogEvery per link.
func (s *Lobbies) logTimeDrop(l *lobbyLink, reason string, m *LobbyMessage) {
	now := time.Now()
	s.mu.Lock()
	due := now.Sub(l.timeDropLogged) >= LobbyClockLogEvery
	if due {
		l.timeDropLogged = now
	}
	off, known := l.clockOffset, !l.clockAt.IsZero()
	s.mu.Unlock()
	if !due {
		return
	}
	attrs := []any{slog.String("reason", reason), slog.String("peer", l.peer.ShortString()),
		slog.Duration("message_age", s.clock().Sub(m.Time).Round(time.Second))}
	if known {
		attrs = append(attrs, slog.Duration("friend_clock_offset", off))
	}
	s.log.Info("lobby message dropped for its time: a clock is wrong (this computer's, the friend's or the author's)", attrs...)
}
