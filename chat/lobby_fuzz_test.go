package chat

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// FuzzLobbyFrame feeds a stream of frames to the lobby frame reader and
// every message it yields to the checks and the signature verification a
// relay runs: nothing may panic, and a decoded message must encode back
// to one that decodes the same.
func FuzzLobbyFrame(f *testing.F) {
	for _, b := range lobbySeedFrames(f) {
		f.Add(b)
	}
	seeds := lobbySeedFrames(f)
	f.Add(bytes.Join(seeds, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newLobbyFrameReader(bytes.NewReader(data), nil)
		for range 64 {
			fr, err := r.read()
			if err != nil {
				return
			}
			var ms []LobbyMessage
			if fr.msg != nil {
				ms = append(ms, *fr.msg)
			}
			ms = append(ms, fr.history...)
			for _, a := range fr.announce {
				if a.Participants < 0 || a.Participants > MaxLobbySize {
					t.Fatalf("announced size %d out of bounds", a.Participants)
				}
			}
			for i := range ms {
				m := &ms[i]
				checkLobbyMessage(m, time.Now(), false)
				m.verify()
				back, err := decodeLobbyFrame(mustMarshal(t, msgFrame(m)))
				if err != nil || back.msg == nil || back.msg.ID != m.ID || back.msg.Text != m.Text || back.msg.Time.UnixMilli() != m.Time.UnixMilli() {
					t.Fatalf("message does not survive a round trip: %v", err)
				}
				if m.every < 0 || m.every > LobbyKeepAliveWireMax || back.msg.every != m.every || m.Kind != LobbyKindKeepAlive && m.every != 0 {
					t.Fatalf("keep-alive interval %v out of bounds or lost (%v after a round trip)", m.every, back.msg.every)
				}
			}
		}
	})
}

// FuzzLobbyStored feeds the decoder of stored lobby messages.
func FuzzLobbyStored(f *testing.F) {
	m := signed(testIdentity(f, "stored"), NewLobbyID(), LobbyKindText, time.Now(), "stored")
	b, err := encodeStored(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{1, 2, 3})
	for _, k := range []LobbyKind{LobbyKindJoin, LobbyKindLeave} {
		b, err := encodeStored(signed(testIdentity(f, "stored"), NewLobbyID(), k, time.Now(), ""))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeStored(1, data)
		if err == nil {
			m.verify()
		}
		// storedHead, which skips joins without decoding them, agrees
		// with the full decoder wherever both read the record.
		if id, kind, ok := storedHead(data); ok && err == nil && (id != m.ID || kind != m.Kind) {
			t.Fatalf("storedHead reads %s %v, decodeStored %s %v", id, kind, m.ID, m.Kind)
		}
	})
}

func mustMarshal(t *testing.T, f interface{ ProtoReflect() protoreflect.Message }) []byte {
	b, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
