package share

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"kith/internal/frame"
	"kith/share/pb"
)

// streamBufferSize is the read buffer of a requesting Reader (a Peer's).
// Payloads larger than this bypass it, so range data is copied once, from
// the stream into the caller's buffer.
const streamBufferSize = 64 << 10

// Reader reads frames from a share stream: uvarint-length-delimited pb.Frame
// messages (see package frame), each RangeReply followed by its raw
// payload. It works over any io.Reader. A frame's buffer grows as its bytes
// arrive, so a peer that announces a large frame and sends it slowly holds
// only what it sent. A Reader is not safe for concurrent use, but one
// goroutine may read a stream with a Reader while another writes it with a
// Writer.
type Reader struct {
	br      *bufio.Reader
	fr      *frame.Reader
	pending int64 // payload bytes of the last RangeReply not yet read
}

// NewReader returns a Reader of frames of at most MaxMessageSize bytes from
// r, with no timeouts: the reader of a requester, whose calls have their
// own deadlines.
func NewReader(r io.Reader) *Reader {
	return newReader(r, streamBufferSize, MaxMessageSize, frame.Options{})
}

// newReader returns a Reader with a read buffer of bufSize bytes, of frames
// of at most max bytes, read with opts. Frames and payloads are read from
// the same buffer, so no payload byte is read ahead and lost.
func newReader(r io.Reader, bufSize, max int, opts frame.Options) *Reader {
	br := bufio.NewReaderSize(r, bufSize)
	return &Reader{br: br, fr: frame.NewReader(br, max, opts)}
}

// ReadFrame reads the next frame, first skipping what is left of the
// previous range payload. It returns io.EOF if the stream ends cleanly
// between frames.
//
// On an error wrapping ErrUnknownMessage the frame was consumed and the
// returned Frame has its ID, so a request can be answered with
// CodeUnknownRequest and the stream used on. On an error wrapping
// ErrBadMessage the ID is also set, for a CodeBadRequest answer, but the
// peer is broken and the stream should then be closed; likewise after any
// other error. Errors for which frame.IsPeerFault holds (a frame too large,
// malformed or too slow) mean the peer broke the protocol.
func (r *Reader) ReadFrame() (Frame, error) {
	if r.pending > 0 {
		n, err := r.br.Discard(int(r.pending))
		r.pending -= int64(n)
		if err != nil {
			return Frame{}, fmt.Errorf("skipping range payload: %w", noEOF(err))
		}
	}
	b, err := r.fr.Next()
	if err != nil {
		switch {
		case err == io.EOF:
			return Frame{}, io.EOF
		case errors.Is(err, frame.ErrTooLarge):
			return Frame{}, fmt.Errorf("reading share message: %w: %w", ErrMessageTooLarge, err)
		case errors.Is(err, frame.ErrMalformed):
			return Frame{}, fmt.Errorf("reading share message: %w: %w", ErrBadMessage, err)
		}
		return Frame{}, fmt.Errorf("reading share message: %w", err)
	}
	var w pb.Frame
	if err := frame.Unmarshal(b, &w); err != nil {
		return Frame{}, fmt.Errorf("reading share message: %w: %w", ErrBadMessage, err)
	}
	f, err := fromWire(&w)
	if err != nil {
		return f, err
	}
	if rr, ok := f.Msg.(RangeReply); ok {
		r.pending = int64(rr.ProofLen) + rr.DataLen
	}
	return f, nil
}

// ReadPayload fills p from the payload of the last RangeReply: first its
// ProofLen bytes of proof, then its DataLen bytes of data. It may be called
// several times to read the payload piece by piece, such as one group at a
// time into place. Reading past the payload gives ErrNoPayload.
func (r *Reader) ReadPayload(p []byte) error {
	if int64(len(p)) > r.pending {
		return fmt.Errorf("reading range payload: %w", ErrNoPayload)
	}
	n, err := io.ReadFull(r.br, p)
	r.pending -= int64(n)
	if err != nil {
		return fmt.Errorf("reading range payload: %w", noEOF(err))
	}
	return nil
}

// Pending returns how many payload bytes of the last RangeReply are unread.
func (r *Reader) Pending() int64 {
	return r.pending
}

// close releases what the Reader charged to its memory scope.
func (r *Reader) close() { r.fr.Close() }

// Writer writes frames to a share stream. Every method writes whole frames
// and flushes them, blocking until the underlying writer has taken them. Its
// buffer is allocated at the first write, so a stream that is never
// answered costs none. A Writer is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	size    int
	bw      *bufio.Writer // nil until the first write
	scratch []byte        // the encoded frame
}

// NewWriter returns a Writer that writes to w through a buffer of
// streamBufferSize bytes.
func NewWriter(w io.Writer) *Writer {
	return newWriter(w, streamBufferSize)
}

func newWriter(w io.Writer, size int) *Writer {
	return &Writer{w: w, size: size}
}

// buf returns the write buffer, allocating it on first use.
func (w *Writer) buf() *bufio.Writer {
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(w.w, w.size)
	}
	return w.bw
}

// WriteFrame writes f, which must not be a RangeReply (see WriteRange). An
// ErrorReply message longer than MaxErrorMessageLen is cut short; a frame
// larger than MaxMessageSize is refused with ErrMessageTooLarge.
func (w *Writer) WriteFrame(f Frame) error {
	if _, ok := f.Msg.(RangeReply); ok {
		return fmt.Errorf("writing share message: %w: RangeReply needs WriteRange", ErrBadMessage)
	}
	return w.write(f)
}

// WriteRange writes a RangeReply for count groups from first, followed by
// proof and data as its payload. data is written straight to the stream,
// without copying, when it is larger than the write buffer.
func (w *Writer) WriteRange(id uint64, first, count int64, proof, data []byte) error {
	if count < 1 || count > MaxRangeGroups || len(proof) > MaxRangeProof || len(data) > MaxRangeData {
		return fmt.Errorf("writing range reply: %w", ErrBadRange)
	}
	m := RangeReply{First: first, Count: count, ProofLen: len(proof), DataLen: int64(len(data))}
	if err := w.writeNoFlush(Frame{ID: id, Msg: m}); err != nil {
		return err
	}
	if _, err := w.bw.Write(proof); err != nil {
		return fmt.Errorf("writing range proof: %w", err)
	}
	if _, err := w.bw.Write(data); err != nil {
		return fmt.Errorf("writing range data: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing range data: %w", err)
	}
	return nil
}

func (w *Writer) write(f Frame) error {
	if err := w.writeNoFlush(f); err != nil {
		return err
	}
	return w.flush()
}

// flush writes out what the buffer holds.
func (w *Writer) flush() error {
	if err := w.buf().Flush(); err != nil {
		return fmt.Errorf("writing share message: %w", err)
	}
	return nil
}

// writeNoFlush encodes f into the buffer (which it allocates if need be),
// without flushing it.
func (w *Writer) writeNoFlush(f Frame) error {
	m, err := f.toWire()
	if err != nil {
		return fmt.Errorf("writing share message: %w", err)
	}
	if proto.Size(m) > MaxMessageSize {
		return fmt.Errorf("writing share message: %w", ErrMessageTooLarge)
	}
	b, err := frame.Append(w.scratch[:0], m, MaxMessageSize)
	if err != nil {
		return fmt.Errorf("writing share message: %w", err)
	}
	if cap(b) <= maxKeptScratch {
		w.scratch = b
	}
	if _, err := w.buf().Write(b); err != nil {
		return fmt.Errorf("writing share message: %w", err)
	}
	return nil
}

// maxKeptScratch is the largest encoding buffer a Writer keeps between
// frames; a larger frame (a long BrowseReply) gets a buffer of its own.
const maxKeptScratch = 4 << 10

// noEOF turns io.EOF into io.ErrUnexpectedEOF: in the middle of a payload
// the end of the stream is always unexpected.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
