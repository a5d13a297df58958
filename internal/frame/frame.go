// Package frame reads and writes the messages of kith's peer protocols: a
// uvarint length, then that many bytes (a protobuf message), with a hard
// cap on the length. It is the one copy of this framing; the share, router,
// chat and lobby protocols all use it.
//
// A Reader never trusts the announced length: it grows its buffer as the
// bytes arrive, so a peer that announces a large frame and sends it slowly
// holds no more of our memory than it has actually sent (and, with a
// frame timeout, not for long). Errors keep the peer's fault apart from the
// connection's: ErrTooLarge, ErrMalformed and ErrSlow mean the peer broke
// the protocol (IsPeerFault); anything else is the stream's own error.
package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/proto"
)

// Errors that mean the peer broke the protocol.
var (
	// ErrTooLarge means a frame announced a length over the reader's cap
	// (or a writer was asked to write one).
	ErrTooLarge = errors.New("frame over the size limit")
	// ErrMalformed means a frame's length prefix or body could not be
	// decoded.
	ErrMalformed = errors.New("malformed frame")
	// ErrSlow means a frame's bytes did not all arrive within the frame
	// timeout after its first byte.
	ErrSlow = errors.New("frame arrived too slowly")
)

// ErrNoMemory means the resource manager refused memory for a frame's
// buffer: the node (or the peer's share of it) is at its memory limit.
var ErrNoMemory = errors.New("no memory for frame")

// IsPeerFault reports whether err means the peer sent bytes that break the
// protocol, as opposed to a connection that failed or ended.
func IsPeerFault(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrSlow)
}

// MemoryScope is the part of a libp2p resource scope (network.StreamScope)
// a Reader charges its buffer to.
type MemoryScope interface {
	ReserveMemory(size int, prio uint8) error
	ReleaseMemory(size int)
}

// Deadliner is a stream whose reads can time out (network.Stream, net.Conn).
type Deadliner interface {
	SetReadDeadline(time.Time) error
}

const (
	// minGrow is the first buffer a frame gets; it doubles from there as
	// bytes arrive, never beyond the frame's length.
	minGrow = 4 << 10
	// keepBuffer is the largest buffer a Reader keeps between frames.
	keepBuffer = 16 << 10
	// readerBuffer is the bufio buffer NewReader puts around a plain
	// io.Reader.
	readerBuffer = 4 << 10
	// memoryPriority is the reservation priority: frames may use the
	// scope's memory until it is 80% full (libp2p's ReservationPriorityHigh).
	memoryPriority = 204
)

// Options tune a Reader. The zero value has no timeouts and no accounting.
type Options struct {
	// FrameTimeout, if set, bounds the time from a frame's first byte to
	// its last; a slower frame fails with ErrSlow. It needs a Deadliner
	// below the reader.
	FrameTimeout time.Duration
	// IdleTimeout, if set, bounds the wait for a frame's first byte; it
	// then fails with an error for which os.IsTimeout holds.
	IdleTimeout time.Duration
	// Deadliner sets the read deadlines; if nil, the io.Reader given to
	// NewReader is used when it is one.
	Deadliner Deadliner
	// Memory, if set, is charged for every frame buffer larger than
	// keepBuffer before it is allocated.
	Memory MemoryScope
}

// Reader reads frames of at most a fixed size. It is not safe for
// concurrent use, but one goroutine may read while another writes.
type Reader struct {
	br       *bufio.Reader
	max      int
	opts     Options
	buf      []byte
	reserved int
	deadline bool // a read deadline is set on the stream
}

// NewReader returns a Reader of frames of at most max bytes from r. If r is
// a *bufio.Reader it is used as it is (so a caller may read raw payloads
// between frames from the same buffer), else it is wrapped in a small one.
func NewReader(r io.Reader, max int, opts Options) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readerBuffer)
	}
	if opts.Deadliner == nil {
		if d, ok := r.(Deadliner); ok {
			opts.Deadliner = d
		}
	}
	return &Reader{br: br, max: max, opts: opts}
}

// Buffered returns the buffered reader below, for raw payloads that follow
// a frame.
func (r *Reader) Buffered() *bufio.Reader { return r.br }

// Next reads the next frame and returns its bytes, valid until the next
// call. It returns io.EOF at a clean end of the stream between frames and
// io.ErrUnexpectedEOF for an end inside one.
func (r *Reader) Next() ([]byte, error) {
	r.release() // the last frame's large buffer, if it had one
	r.setDeadline(r.opts.IdleTimeout)
	first, err := r.br.ReadByte()
	if err != nil {
		return nil, err
	}
	r.setDeadline(r.opts.FrameTimeout)
	n, err := r.readLength(first)
	if err != nil {
		return nil, r.slow(err)
	}
	b, err := r.readBody(n)
	if err != nil {
		return nil, r.slow(err)
	}
	r.clearDeadline()
	return b, nil
}

// ReadMsg reads the next frame into m. A body that is not a valid m fails
// with ErrMalformed.
func (r *Reader) ReadMsg(m proto.Message) error {
	b, err := r.Next()
	if err != nil {
		return err
	}
	return Unmarshal(b, m)
}

// Unmarshal decodes b into m; any failure, even a panic of the decoder,
// is ErrMalformed.
func Unmarshal(b []byte, m proto.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decoder panic: %v", ErrMalformed, p)
		}
	}()
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// Close releases what the Reader charged to its memory scope. It does not
// close the stream.
func (r *Reader) Close() {
	r.buf = nil
	r.release()
}

func (r *Reader) readLength(first byte) (int, error) {
	var x uint64
	var s uint
	c := first
	for i := 0; ; i++ {
		if i == binary.MaxVarintLen64 || (i == binary.MaxVarintLen64-1 && c > 1) {
			return 0, fmt.Errorf("%w: length prefix overflows", ErrMalformed)
		}
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, fmt.Errorf("%w: length prefix not minimal", ErrMalformed)
			}
			x |= uint64(c) << s
			break
		}
		x |= uint64(c&0x7f) << s
		s += 7
		var err error
		if c, err = r.br.ReadByte(); err != nil {
			return 0, noEOF(err)
		}
	}
	if x > uint64(r.max) {
		return 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, x, r.max)
	}
	return int(x), nil
}

// readBody reads n bytes, growing the buffer only as they arrive.
func (r *Reader) readBody(n int) ([]byte, error) {
	b := r.buf[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			size := max(2*cap(b), minGrow)
			size = min(size, n)
			nb, err := r.alloc(size)
			if err != nil {
				return nil, err
			}
			copy(nb, b)
			b = nb[:len(b)]
		}
		m, err := io.ReadFull(r.br, b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil {
			return nil, noEOF(err)
		}
	}
	if cap(b) <= keepBuffer {
		r.buf = b
	} else {
		r.buf = nil // its reservation is released by the next call
	}
	return b, nil
}

// alloc returns a buffer of size bytes, charging what is over keepBuffer.
func (r *Reader) alloc(size int) ([]byte, error) {
	if r.opts.Memory != nil && size > keepBuffer {
		if need := size - r.reserved; need > 0 {
			if err := r.opts.Memory.ReserveMemory(need, memoryPriority); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrNoMemory, err)
			}
			r.reserved += need
		}
	}
	return make([]byte, size), nil
}

func (r *Reader) release() {
	if r.reserved > 0 && r.opts.Memory != nil {
		r.opts.Memory.ReleaseMemory(r.reserved)
	}
	r.reserved = 0
}

func (r *Reader) setDeadline(d time.Duration) {
	if r.opts.Deadliner == nil {
		return
	}
	if d <= 0 {
		r.clearDeadline()
		return
	}
	r.opts.Deadliner.SetReadDeadline(time.Now().Add(d))
	r.deadline = true
}

func (r *Reader) clearDeadline() {
	if r.deadline {
		r.opts.Deadliner.SetReadDeadline(time.Time{})
		r.deadline = false
	}
}

// slow turns a timeout inside a frame into ErrSlow. Streams report a
// deadline in their own types (yamux's has only a Timeout method), so a
// timeout is anything os.IsTimeout holds for, wrapped or not.
func (r *Reader) slow(err error) error {
	var te interface{ Timeout() bool }
	if r.opts.FrameTimeout > 0 && (errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &te) && te.Timeout()) {
		return fmt.Errorf("%w: %w", ErrSlow, err)
	}
	return err
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Append appends m with its length prefix to dst. A message over max
// bytes is refused with ErrTooLarge and dst is returned as it was.
func Append(dst []byte, m proto.Message, max int) ([]byte, error) {
	size := proto.Size(m)
	if size > max {
		return dst, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, size, max)
	}
	start := len(dst)
	dst = binary.AppendUvarint(dst, uint64(size))
	out, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], fmt.Errorf("encoding frame: %w", err)
	}
	return out, nil
}

// Writer writes frames of at most a fixed size, each with one Write to the
// writer below (put a bufio.Writer below it to batch frames). It is not
// safe for concurrent use.
type Writer struct {
	w   io.Writer
	max int
	buf []byte
}

// NewWriter returns a Writer of frames of at most max bytes to w.
func NewWriter(w io.Writer, max int) *Writer {
	return &Writer{w: w, max: max}
}

// WriteMsg writes m as one frame.
func (w *Writer) WriteMsg(m proto.Message) error {
	b, err := Append(w.buf[:0], m, w.max)
	if err != nil {
		return err
	}
	if cap(b) <= keepBuffer {
		w.buf = b
	} else {
		w.buf = nil
	}
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}
