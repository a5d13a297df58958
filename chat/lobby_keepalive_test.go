package chat

import (
	"testing"
	"time"
)

// TestLobbyKeepAliveScales: keep-alives, which cross every link between
// a lobby's members, stay within LobbyKeepAliveShare of a link's rate up
// to MaxLobbyParticipants members; small lobbies keep LobbyKeepAlive; and
// more participants (sock puppets) never stretch the interval past what
// MaxLobbyParticipants gives.
func TestLobbyKeepAliveScales(t *testing.T) {
	s := &Lobbies{cfg: LobbyConfig{KeepAlive: LobbyKeepAlive}}
	for _, n := range []int{1, 10, 100, 300, 1000, 10000} {
		jl := &joinedLobby{parts: map[ChatID]Participant{}}
		for i := range n - 1 {
			var id ChatID
			id[0], id[1] = byte(i), byte(i>>8)
			jl.parts[id] = Participant{}
		}
		iv := s.keepAliveIntervalLocked(jl)
		if most := time.Duration(MaxLobbyParticipants / (LobbyFriendRate * LobbyKeepAliveShare) * float64(time.Second)); iv > most {
			t.Fatalf("%d members: interval %v, over the %v that MaxLobbyParticipants gives", n, iv, most)
		}
		if n > MaxLobbyParticipants {
			continue
		}
		if iv < LobbyKeepAlive {
			t.Fatalf("%d members: interval %v below LobbyKeepAlive", n, iv)
		}
		perLink := float64(n) / iv.Seconds()
		if limit := LobbyFriendRate * LobbyKeepAliveShare; perLink > limit*1.0001 {
			t.Fatalf("%d members: %.1f keep-alives/s on each link, above %.1f", n, perLink, limit)
		}
		if n <= 100 && iv != LobbyKeepAlive {
			t.Fatalf("%d members: interval %v, want %v", n, iv, LobbyKeepAlive)
		}
		t.Logf("%5d members: keep-alive every %v", n, iv.Round(time.Second))
	}
}
