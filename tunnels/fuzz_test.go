package tunnels

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

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
	for _, name := range []string{"a.bin", strings.Repeat("é", MaxNameLen/2)} {
		sealed, err := SealForRoot([32]byte(key.Public), Result{Name: name, Size: 1 << 40, Root: [32]byte{3}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed)
	}
	f.Add(make([]byte, sealHandshakeBytes+SealPad))
	f.Add(make([]byte, sealHandshakeBytes+SealRootPad))
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

func FuzzTunnelHeader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, slow := range []bool{false, true} {
			br := bytes.NewReader(data)
			var r io.Reader = br
			if slow {
				r = iotest.OneByteReader(br) // a stream that delivers the header in pieces
			}
			id, err := readTunnelHeader(r)
			if len(data) < TunnelHeaderSize {
				if err == nil {
					t.Fatalf("read id %d from %d bytes", id, len(data))
				}
				continue
			}
			want := TunnelID(binary.BigEndian.Uint64(data))
			if want == 0 {
				if err == nil {
					t.Fatal("accepted a zero tunnel id")
				}
				continue
			}
			if err != nil || id != want {
				t.Fatalf("read %d, %v; want %d", id, err, want)
			}
			if left := br.Len(); left != len(data)-TunnelHeaderSize {
				t.Fatalf("read %d bytes past the header", len(data)-TunnelHeaderSize-left)
			}
			var buf bytes.Buffer
			if err := writeTunnelHeader(&buf, id); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), data[:TunnelHeaderSize]) {
				t.Fatalf("wrote %x for the header %x", buf.Bytes(), data[:TunnelHeaderSize])
			}
		}
	})
}

// Roles of FuzzHandshake: whose side of which handshake reads the fuzzed
// bytes as what the other side sent.
const (
	fuzzAcceptFile = iota // a holder reading a downloader
	fuzzOpenFile          // a downloader reading a holder
	fuzzAcceptChat        // a chat responder reading an initiator
	fuzzOpenChat          // a chat initiator reading a responder
	fuzzStartFile         // a downloader that sent early data reading a holder
	fuzzRoles
)

// peerConn is the far end of a handshake under fuzzing: reads come from
// the fuzzed bytes, writes are counted and dropped.
type peerConn struct {
	r       *bytes.Reader
	written int
}

func (c *peerConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *peerConn) Write(p []byte) (int, error) { c.written += len(p); return len(p), nil }
func (c *peerConn) Close() error                { return nil }

// handshakeFrame frames a handshake message as handshake sends it.
func handshakeFrame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// peerMessages returns what an honest peer sends first to the side of
// role: a message that authenticates where the pattern allows it, and
// for the chat responder a stand-in for the third message.
func peerMessages(t testing.TB, role int, initiatorStatic, responderStatic noise.DHKey) []byte {
	psk := filePSK(testRoot)
	file := func(init bool) noise.Config {
		return noise.Config{CipherSuite: suite, Pattern: noise.HandshakeNN, Initiator: init,
			Prologue: []byte(filePrologue), PresharedKey: psk[:]}
	}
	chat := func(init bool) noise.Config {
		c := noise.Config{CipherSuite: suite, Pattern: noise.HandshakeXK, Initiator: init,
			Prologue: []byte(chatPrologue), StaticKeypair: responderStatic}
		if init {
			c.StaticKeypair, c.PeerStatic = initiatorStatic, responderStatic.Public
		}
		return c
	}
	var cfgI, cfgR noise.Config
	switch role {
	case fuzzAcceptFile, fuzzOpenFile, fuzzStartFile:
		cfgI, cfgR = file(true), file(false)
	default:
		cfgI, cfgR = chat(true), chat(false)
	}
	i, err := noise.NewHandshakeState(cfgI)
	if err != nil {
		t.Fatal(err)
	}
	r, err := noise.NewHandshakeState(cfgR)
	if err != nil {
		t.Fatal(err)
	}
	m1, _, _, err := i.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.ReadMessage(nil, m1); err != nil {
		t.Fatal(err)
	}
	m2, _, _, err := r.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch role {
	case fuzzAcceptFile:
		return handshakeFrame(m1)
	case fuzzAcceptChat:
		// The real third message answers another responder ephemeral
		// key, so it fails; it still has the right shape.
		if _, _, _, err := i.ReadMessage(nil, m2); err != nil {
			t.Fatal(err)
		}
		m3, _, _, err := i.WriteMessage(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return append(handshakeFrame(m1), handshakeFrame(m3)...)
	default:
		return handshakeFrame(m2)
	}
}

// FuzzHandshake feeds arbitrary bytes to each side of the file and chat
// handshakes as what the other side sent: they must fail with
// ErrHandshake, never panic, and a holder must send nothing to a
// downloader that failed.
func FuzzHandshake(f *testing.F) {
	local := fixedKey(f)
	remote, err := suite.GenerateKeypair(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	for role := range fuzzRoles {
		f.Add(byte(role), []byte{})
		f.Add(byte(role), []byte{0})
		f.Add(byte(role), []byte{0, 0})
		f.Add(byte(role), []byte{0, 32, 1, 2, 3})
		f.Add(byte(role), []byte{0xff, 0xff, 0})
		f.Add(byte(role), append([]byte{1, 0}, make([]byte, 256)...))
		valid := peerMessages(f, role, remote, local)
		f.Add(byte(role), valid)
		f.Add(byte(role), valid[:len(valid)-1])
		f.Add(byte(role), append(bytes.Clone(valid), 0, 16, 1))
	}
	// A downloader's first message with early data, of a few bytes and
	// of the most a message holds.
	for _, n := range []int{3, MaxEarlyData, MaxHandshakeMsg - 48} {
		hs, err := noise.NewHandshakeState(fileConfig(testRoot, true))
		if err != nil {
			f.Fatal(err)
		}
		m1, _, _, err := hs.WriteMessage(nil, bytes.Repeat([]byte{7}, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(fuzzAcceptFile), handshakeFrame(m1))
		// A holder's reply that took it.
		r, err := noise.NewHandshakeState(fileConfig(testRoot, false))
		if err != nil {
			f.Fatal(err)
		}
		if _, _, _, err := r.ReadMessage(nil, m1); err != nil {
			f.Fatal(err)
		}
		m2, _, _, err := r.WriteMessage(nil, earlyTaken)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(fuzzStartFile), handshakeFrame(m2))
	}
	f.Fuzz(func(t *testing.T, role byte, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c := &peerConn{r: bytes.NewReader(data)}
		var s *Session
		var err error
		switch role % fuzzRoles {
		case fuzzAcceptFile:
			s, err = AcceptFileSession(ctx, c, testRoot)
			if err != nil && c.written != 0 {
				t.Fatalf("a failed holder sent %d bytes", c.written)
			}
		case fuzzOpenFile:
			s, err = OpenFileSession(ctx, c, testRoot)
		case fuzzAcceptChat:
			s, err = AcceptChatSession(ctx, c, local)
		case fuzzOpenChat:
			s, err = OpenChatSession(ctx, c, remote, [32]byte(local.Public))
		case fuzzStartFile:
			s, err = StartFileSession(c, testRoot)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write([]byte("have")); err != nil {
				t.Fatal(err)
			}
			// Whatever came back, the Read ends (the fuzzed bytes run
			// out) without a panic, and wrote nothing beyond message 1.
			s.Read(make([]byte, 64))
			if c.written > 2+MaxHandshakeMsg {
				t.Fatalf("a downloader wrote %d bytes", c.written)
			}
			return
		}
		if err == nil && role%fuzzRoles == fuzzAcceptFile && len(s.plain) > MaxHandshakeMsg {
			t.Fatalf("a holder kept %d bytes of early data", len(s.plain))
		}
		if err != nil {
			if s != nil || !errors.Is(err, ErrHandshake) {
				t.Fatalf("failed with a session %v or an error not ErrHandshake: %v", s != nil, err)
			}
			return
		}
		if s == nil {
			t.Fatal("no session and no error")
		}
		if c.written > 2*(2+MaxHandshakeMsg) {
			t.Fatalf("handshake wrote %d bytes", c.written)
		}
	})
}
