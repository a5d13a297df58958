package chat

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// FuzzReadFrame feeds arbitrary bytes to the chat frame reader: it never
// panics, never returns a frame that breaks the limits, and what it
// accepts re-encodes to a frame that decodes the same.
func FuzzReadFrame(f *testing.F) {
	var seed bytes.Buffer
	fw := newFrameWriter(&seed)
	fw.message(Message{ID: MsgID{1}, Time: time.UnixMilli(1700000000000), Text: "hello"})
	fw.ack([]MsgID{{1}, {2}})
	fw.typing()
	fw.hello(ChatID{0x01}) // not a valid point: refused
	fw.flush()
	f.Add(seed.Bytes())
	f.Add([]byte{})
	f.Add([]byte{5, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2, 0x1a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b), nil)
		for range 64 {
			fm, err := fr.read()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrBadFrame) {
					t.Fatalf("error not wrapping ErrBadFrame: %v", err)
				}
				return
			}
			set := 0
			if fm.msg != nil {
				set++
				if CheckText(fm.msg.Text) != nil {
					t.Fatalf("accepted bad text")
				}
			}
			if fm.ack != nil {
				set++
				if len(fm.ack) == 0 || len(fm.ack) > MaxAckIDs {
					t.Fatalf("ack of %d ids", len(fm.ack))
				}
			}
			if fm.typing {
				set++
			}
			if fm.hello != nil {
				set++
				if _, err := fm.hello.X25519(); err != nil {
					t.Fatal("accepted a hello with a bad key")
				}
			}
			if set != 1 {
				t.Fatalf("frame with %d bodies", set)
			}
			if fm.msg != nil {
				var out bytes.Buffer
				w := newFrameWriter(&out)
				w.message(*fm.msg)
				w.flush()
				again, err := newFrameReader(&out, nil).read()
				if err != nil || again.msg == nil || again.msg.ID != fm.msg.ID || again.msg.Text != fm.msg.Text || !again.msg.Time.Equal(fm.msg.Time) {
					t.Fatalf("re-encoded message differs: %v", err)
				}
			}
		}
	})
}
