package tunnels

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/flynn/noise"
)

func FuzzReadRouterMessage(f *testing.F) {
	var valid bytes.Buffer
	w := NewMessageWriter(&valid)
	for _, m := range validMessages(f) {
		var one bytes.Buffer
		NewMessageWriter(&one).Write(m)
		f.Add(one.Bytes())
		w.Write(m)
	}
	f.Add(valid.Bytes())
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2, 0xfa, 0x06}) // an unknown field 99
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewMessageReader(bytes.NewReader(data))
		for range 1000 {
			m, err := r.Read()
			if errors.Is(err, ErrUnknownMessage) {
				continue
			}
			if err != nil {
				break
			}
			roundTrip(t, m)
		}
		if m, err := DecodeMessage(data); err == nil {
			roundTrip(t, m)
		}
	})
}

// roundTrip checks that a message accepted by the reader is accepted by the
// writer and reads back the same.
func roundTrip(t *testing.T, m Message) {
	var buf bytes.Buffer
	if err := NewMessageWriter(&buf).Write(m); err != nil {
		t.Fatalf("accepted %#v but cannot write it: %v", m, err)
	}
	back, err := NewMessageReader(&buf).Read()
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip of %#v: %#v, %v", m, back, err)
	}
}

// fixedKey is a deterministic X25519 key pair for fuzzing.
func fixedKey(t testing.TB) noise.DHKey {
	k, err := suite.GenerateKeypair(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func FuzzOpenSealedResults(f *testing.F) {
	key := fixedKey(f)
	for _, n := range []int{0, 1, 5, MaxFilesPerResult} {
		sealed, err := Seal([32]byte(key.Public), testResults(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
		f.Add(sealed[:len(sealed)-1])
	}
	f.Add(make([]byte, sealHandshakeBytes+SealPad))
	f.Fuzz(func(t *testing.T, sealed []byte) {
		rs, err := Open(key, sealed)
		if err != nil {
			if !errors.Is(err, ErrSealedInvalid) {
				t.Fatalf("error not ErrSealedInvalid: %v", err)
			}
			return
		}
		if len(rs) > MaxFilesPerResult {
			t.Fatalf("%d results", len(rs))
		}
		for _, r := range rs {
			if !validName(r.Name) || r.Size < 0 {
				t.Fatalf("bad result %+v", r)
			}
		}
	})
}

// handshakeKey runs a real NNpsk0 handshake in memory and returns the key
// of the initiator-to-responder direction.
func handshakeKey(t testing.TB) [32]byte {
	psk := filePSK(testRoot)
	cfg := func(init bool) noise.Config {
		return noise.Config{CipherSuite: suite, Pattern: noise.HandshakeNN, Initiator: init,
			Prologue: []byte(filePrologue), PresharedKey: psk[:]}
	}
	i, err := noise.NewHandshakeState(cfg(true))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := noise.NewHandshakeState(cfg(false))
	m1, _, _, _ := i.WriteMessage(nil, nil)
	if _, _, _, err := r.ReadMessage(nil, m1); err != nil {
		t.Fatal(err)
	}
	m2, _, _, _ := r.WriteMessage(nil, nil)
	_, cs1, _, err := i.ReadMessage(nil, m2)
	if err != nil {
		t.Fatal(err)
	}
	return cs1.UnsafeKey()
}

// frames encodes plaintexts as a session would send them.
func frames(key [32]byte, plains ...[]byte) []byte {
	s := &Session{send: newFrameCipherKey(key, 0)}
	var out []byte
	for _, p := range plains {
		out, _ = s.seal(out, p)
	}
	return out
}

type readOnly struct{ io.Reader }

func (readOnly) Write(p []byte) (int, error) { return len(p), nil }
func (readOnly) Close() error                { return nil }

func FuzzSessionRead(f *testing.F) {
	key := handshakeKey(f)
	f.Add(byte(0), frames(key, []byte("hello"), nil))
	f.Add(byte(3), frames(key, []byte("a"), bytes.Repeat([]byte("b"), MaxFramePayload), []byte("c")))
	f.Add(byte(200), frames(key, bytes.Repeat([]byte("x"), 5000), nil, []byte("after the end")))
	f.Add(byte(1), []byte{0, 16})
	f.Add(byte(1), []byte{0xff, 0xff, 1, 2, 3})
	f.Add(byte(9), append(frames(key, []byte("ok")), 0, 5, 1))
	f.Fuzz(func(t *testing.T, bufSize byte, stream []byte) {
		s := &Session{rw: readOnly{bytes.NewReader(stream)}, recv: newFrameCipherKey(key, 0)}
		buf := make([]byte, int(bufSize)*300+1)
		total := 0
		for range len(stream) + 2 {
			n, err := s.Read(buf)
			total += n
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
		}
		if total > len(stream) {
			t.Fatalf("read %d bytes from a %d-byte stream", total, len(stream))
		}
		if cap(s.rbuf) > noise.MaxMsgLen+2 {
			t.Fatalf("read buffer grew to %d", cap(s.rbuf))
		}
	})
}
