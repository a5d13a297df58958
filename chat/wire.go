package chat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"kith/chat/pb"
	kframe "kith/internal/frame"
)

// ProtocolID is the libp2p protocol of private chat between friends.
const ProtocolID = "/kith/chat/1"

// ErrBadFrame means a peer sent a frame that breaks the protocol: too
// large, not a Frame, or with a field out of bounds. The stream it came
// on is then closed.
var ErrBadFrame = errors.New("bad chat frame")

// frame is one decoded and checked chat frame: exactly one field is set.
type frame struct {
	msg    *Message // ID, Time and Text set
	ack    []MsgID
	typing bool
	hello  *ChatID
}

// frameReader reads chat frames: uvarint-delimited pb.Frame messages of at
// most MaxFrameSize bytes (kith/internal/frame), each checked before it is
// returned. Frame buffers grow as bytes arrive and are charged to mem.
type frameReader struct {
	r *kframe.Reader
}

// newFrameReader reads frames from r, charging their buffers to mem (a
// stream's resource scope; nil charges nothing). A frame must arrive
// within FrameTimeout of its first byte, and a stream with nothing for
// StreamIdleTimeout ends, if r has read deadlines.
func newFrameReader(r io.Reader, mem kframe.MemoryScope) *frameReader {
	return &frameReader{r: kframe.NewReader(r, MaxFrameSize, kframe.Options{
		FrameTimeout: FrameTimeout, IdleTimeout: StreamIdleTimeout, Memory: mem})}
}

// read returns the next frame. It returns io.EOF when the stream ends
// cleanly between frames, an error wrapping ErrBadFrame for a frame that
// breaks the protocol, and the stream's own error otherwise.
func (fr *frameReader) read() (frame, error) {
	var w pb.Frame
	if err := fr.r.ReadMsg(&w); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return frame{}, io.EOF
		case kframe.IsPeerFault(err):
			return frame{}, fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		return frame{}, fmt.Errorf("reading chat frame: %w", err)
	}
	return decodeFrame(&w)
}

// close releases what the reader charged to its memory scope.
func (fr *frameReader) close() { fr.r.Close() }

// decodeFrame checks w and turns it into a frame.
func decodeFrame(w *pb.Frame) (frame, error) {
	switch b := w.Body.(type) {
	case *pb.Frame_Message:
		m := b.Message
		if len(m.Id) != len(MsgID{}) {
			return frame{}, fmt.Errorf("%w: message id of %d bytes", ErrBadFrame, len(m.Id))
		}
		if err := CheckText(m.Text); err != nil {
			return frame{}, fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		return frame{msg: &Message{ID: MsgID(m.Id), Time: time.UnixMilli(m.TimeMs).UTC(), Text: m.Text}}, nil
	case *pb.Frame_Ack:
		if len(b.Ack.Ids) == 0 || len(b.Ack.Ids) > MaxAckIDs {
			return frame{}, fmt.Errorf("%w: ack of %d ids", ErrBadFrame, len(b.Ack.Ids))
		}
		ids := make([]MsgID, len(b.Ack.Ids))
		for i, id := range b.Ack.Ids {
			if len(id) != len(MsgID{}) {
				return frame{}, fmt.Errorf("%w: acked id of %d bytes", ErrBadFrame, len(id))
			}
			ids[i] = MsgID(id)
		}
		return frame{ack: ids}, nil
	case *pb.Frame_Typing:
		return frame{typing: true}, nil
	case *pb.Frame_Hello:
		id, err := chatIDFromBytes(b.Hello.ChatId)
		if err != nil {
			return frame{}, fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		return frame{hello: &id}, nil
	default:
		return frame{}, fmt.Errorf("%w: unknown frame", ErrBadFrame)
	}
}

// chatIDFromBytes checks that b is a valid chat identity key.
func chatIDFromBytes(b []byte) (ChatID, error) {
	if len(b) != len(ChatID{}) {
		return ChatID{}, fmt.Errorf("%w: %d bytes", ErrBadChatID, len(b))
	}
	id := ChatID(b)
	if _, err := id.X25519(); err != nil {
		return ChatID{}, fmt.Errorf("%w: %w", ErrBadChatID, err)
	}
	return id, nil
}

// frameWriter writes chat frames through a buffer; flush sends them.
type frameWriter struct {
	bw *bufio.Writer
	pw *kframe.Writer
}

func newFrameWriter(w io.Writer) *frameWriter {
	bw := bufio.NewWriterSize(w, 16<<10)
	return &frameWriter{bw: bw, pw: kframe.NewWriter(bw, MaxFrameSize)}
}

func (fw *frameWriter) message(m Message) error {
	return fw.pw.WriteMsg(&pb.Frame{Body: &pb.Frame_Message{Message: &pb.Message{
		Id: m.ID[:], TimeMs: m.Time.UnixMilli(), Text: m.Text}}})
}

func (fw *frameWriter) ack(ids []MsgID) error {
	w := &pb.Ack{Ids: make([][]byte, len(ids))}
	for i := range ids {
		w.Ids[i] = ids[i][:]
	}
	return fw.pw.WriteMsg(&pb.Frame{Body: &pb.Frame_Ack{Ack: w}})
}

func (fw *frameWriter) typing() error {
	return fw.pw.WriteMsg(&pb.Frame{Body: &pb.Frame_Typing{Typing: &pb.Typing{}}})
}

func (fw *frameWriter) hello(id ChatID) error {
	return fw.pw.WriteMsg(&pb.Frame{Body: &pb.Frame_Hello{Hello: &pb.Hello{ChatId: id[:]}}})
}

func (fw *frameWriter) flush() error { return fw.bw.Flush() }
