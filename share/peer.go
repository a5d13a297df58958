package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// Peer is the requesting side of a share stream: it sends Have, GetRange
// and Browse requests and matches the replies to them. Many goroutines may
// use one Peer at once; their requests are pipelined on the stream, and the
// peer answers them in the order they were sent.
//
// A Peer checks the shape of every reply against its request, and the
// lengths of a range reply before it reads its payload, so a lying peer
// cannot make it read or allocate more than was asked for. It does not
// check proofs: that is VerifyRange's job, in the caller. A peer that
// breaks the protocol breaks the stream: every pending and later request
// then fails with an error wrapping ErrPeerClosed or ErrBadReply.
type Peer struct {
	rwc io.ReadWriteCloser
	r   *Reader

	// wsem is held while a request gets its ID, joins the queue and is
	// written, so that queue order is stream order.
	wsem   chan struct{}
	w      *Writer
	nextID uint64

	mu     sync.Mutex
	queue  []*call       // sent, not yet answered, in order
	err    error         // why the stream is unusable, once it is
	broken chan struct{} // closed when err is set

	closeOnce  sync.Once
	closedOnce sync.Once // the first of Close and the reader closes rwc
	done       chan struct{}
}

// NewPeer returns a Peer that sends requests on rwc. It starts a goroutine
// that reads the replies until Close or until the stream breaks; call
// Close to stop it and close rwc.
func NewPeer(rwc io.ReadWriteCloser) *Peer {
	p := &Peer{
		rwc:    rwc,
		r:      NewReader(rwc),
		w:      NewWriter(rwc),
		wsem:   make(chan struct{}, 1),
		broken: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go p.readLoop()
	return p
}

// Close fails every pending request with ErrPeerClosed, closes the stream
// and waits for the reader goroutine to stop. It is safe to call more than
// once and from any goroutine; later calls return nil.
func (p *Peer) Close() error {
	err := ErrPeerClosed
	p.closeOnce.Do(func() {
		// Close first: the reader may be blocked in the middle of a
		// payload, holding its request.
		err = p.closeStream(false)
		p.fail(ErrPeerClosed)
		<-p.done
	})
	if err == ErrPeerClosed {
		return nil
	}
	return err
}

// Abort is Close with a reset of the stream instead of a clean close, for
// a source that is dropped or no longer needed while replies may still be
// on their way (requests in flight, the end game's duplicates). A clean
// close tells the source nothing of the replies it still owes: libp2p's
// CloseRead sends nothing, so the source, and over a tunnel each relay,
// goes on carrying them into a stream nobody reads until the source's
// idle timeout (wan-bench saw 26 such tunnels held at each relay of a
// stalled download). A reset ends them at once, hop by hop. A stream
// without Reset is closed.
func (p *Peer) Abort() error {
	err := ErrPeerClosed
	p.closeOnce.Do(func() {
		err = p.closeStream(true)
		p.fail(ErrPeerClosed)
		<-p.done
	})
	if err == ErrPeerClosed {
		return nil
	}
	return err
}

// Err returns why the stream can no longer be used, or nil while it can.
func (p *Peer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Have asks which groups of the file with root the peer holds. It blocks
// until the reply comes, the stream breaks, or ctx ends. An ErrorReply from
// the peer, such as CodeNotFound, is returned as the error.
func (p *Peer) Have(ctx context.Context, root [32]byte) (HaveReply, error) {
	c := &call{kind: kindHave}
	if err := p.do(ctx, c, Have{Root: root}); err != nil {
		return HaveReply{}, err
	}
	return c.msg.(HaveReply), nil
}

// Browse lists the folder path of the peer's browsable shares, from offset.
// It blocks like Have. A path that CheckPath refuses is not sent.
func (p *Peer) Browse(ctx context.Context, path string, offset int) (BrowseReply, error) {
	if err := CheckPath(path); err != nil {
		return BrowseReply{}, fmt.Errorf("browsing: %w", err)
	}
	if offset < 0 || offset > math.MaxUint32 {
		return BrowseReply{}, fmt.Errorf("browsing: offset %d out of range", offset)
	}
	c := &call{kind: kindBrowse}
	if err := p.do(ctx, c, Browse{Path: path, Offset: offset}); err != nil {
		return BrowseReply{}, err
	}
	return c.msg.(BrowseReply), nil
}

// GetRange fetches count groups from first of the file with root, which is
// size bytes long, and returns their data and proof, unverified: check them
// with VerifyRange. It blocks like Have. The reply's lengths are checked
// against RangeDataSize and RangeProofSize before its payload is read.
//
// If cap(buf) is at least RangeDataSize plus RangeProofSize, data and proof
// are read into buf, data first, and nothing is allocated; otherwise
// GetRange allocates them. buf belongs to the Peer until GetRange returns.
// When ctx ends GetRange returns ctx.Err() at once, unless the payload is
// being read into buf at that moment: it then first waits for the reader to
// finish the group it is reading, or closes the stream if that takes longer
// than abandonGrace (250 ms). Otherwise the rest of the reply is read and
// dropped when it comes, and the stream stays usable.
func (p *Peer) GetRange(ctx context.Context, root [32]byte, size, first, count int64, buf []byte) (data, proof []byte, err error) {
	if err := CheckRange(size, first, count); err != nil {
		return nil, nil, fmt.Errorf("getting range: %w", err)
	}
	c := &call{kind: kindRange, size: size, first: first, count: count, buf: buf}
	if err := p.do(ctx, c, GetRange{Root: root, First: first, Count: count}); err != nil {
		return nil, nil, err
	}
	return c.data, c.proof, nil
}

type callKind uint8

const (
	kindHave callKind = iota + 1
	kindRange
	kindBrowse
)

// abandonGrace is how long a GetRange whose ctx ended waits for the reader
// to finish the group it is reading into the caller's buffer. A stream that
// cannot move one group in that time is stalled: it is closed, so that the
// caller can have its buffer back.
const abandonGrace = 250 * time.Millisecond

// call is one request waiting for its reply. lock, a mutex that can be
// waited for with a timeout, guards the fields below it, and buf while the
// reader fills it.
type call struct {
	id                 uint64
	kind               callKind
	size, first, count int64
	buf                []byte
	done               chan struct{} // closed once finished

	lock        chan struct{}
	abandoned   bool // the requester has gone: drop the reply
	finished    bool
	msg         Message
	data, proof []byte
	err         error
}

// finish records the outcome of c and wakes its requester, once.
func (c *call) finish(msg Message, err error) {
	c.lock <- struct{}{}
	defer func() { <-c.lock }()
	if c.finished {
		return
	}
	c.finished, c.msg, c.err = true, msg, err
	close(c.done)
}

// do sends req for c and waits for c to finish.
func (p *Peer) do(ctx context.Context, c *call, req Message) error {
	if err := p.send(ctx, c, req); err != nil {
		return err
	}
	return p.wait(ctx, c)
}

// send queues c and writes req for it; it returns once req is written
// (or failed: c is then failed too).
func (p *Peer) send(ctx context.Context, c *call, req Message) error {
	return p.sendAll(ctx, []*call{c}, []Message{req})
}

// sendAll is send for several requests, written in order in one write to
// the stream (one packet, or one tunnel handshake message:
// tunnels.StartFileSession).
func (p *Peer) sendAll(ctx context.Context, cs []*call, reqs []Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, c := range cs {
		c.done, c.lock = make(chan struct{}), make(chan struct{}, 1)
	}
	select {
	case p.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.broken:
		return p.Err()
	}
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		<-p.wsem
		return p.err
	}
	for _, c := range cs {
		p.nextID++
		c.id = p.nextID
		p.queue = append(p.queue, c)
	}
	p.mu.Unlock()
	var err error
	for i, c := range cs {
		if err = p.w.writeNoFlush(Frame{ID: c.id, Msg: reqs[i]}); err != nil {
			break
		}
	}
	if err == nil {
		err = p.w.flush()
	}
	<-p.wsem
	if err != nil {
		// Part of a frame may have gone out: the stream is lost.
		p.closeStream(true)
		p.fail(fmt.Errorf("%w: %w", ErrPeerClosed, err))
	}
	return nil
}

// wait waits for c, sent, to finish, or abandons it when ctx ends.
func (p *Peer) wait(ctx context.Context, c *call) error {
	select {
	case <-c.done:
	case <-ctx.Done():
		t := time.NewTimer(abandonGrace)
		gaveUp := false
		select {
		case c.lock <- struct{}{}:
		case <-t.C:
			p.closeStream(true)
			gaveUp = true
			c.lock <- struct{}{}
		}
		t.Stop()
		finished := c.finished
		c.abandoned = true
		<-c.lock
		// If we closed the stream, the reader may have failed the call
		// with that close before we took the lock: the cause is still ctx.
		if !finished || gaveUp {
			return ctx.Err()
		}
	}
	return c.err
}

// fail makes the stream unusable for err and fails every pending request
// with it. Only the first error counts.
func (p *Peer) fail(err error) {
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	p.err = err
	close(p.broken)
	queue := p.queue
	p.queue = nil
	p.mu.Unlock()
	for _, c := range queue {
		c.finish(nil, err)
	}
}

// closeStream closes rwc once, with Reset when it has one and reset is set.
func (p *Peer) closeStream(reset bool) error {
	err := ErrPeerClosed
	p.closedOnce.Do(func() {
		if r, ok := p.rwc.(interface{ Reset() error }); ok && reset {
			err = r.Reset()
			return
		}
		err = p.rwc.Close()
	})
	return err
}

// head returns the oldest pending request, or nil.
func (p *Peer) head() *call {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	return p.queue[0]
}

// take removes c from the head of the queue; it reports false if c is not
// there any more because the stream failed.
func (p *Peer) take(c *call) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 || p.queue[0] != c {
		return false
	}
	p.queue[0] = nil
	p.queue = p.queue[1:]
	return true
}

// readLoop reads replies and hands them to their requests until the stream
// ends or breaks.
func (p *Peer) readLoop() {
	defer close(p.done)
	for {
		err := p.readReply()
		if err == nil {
			continue
		}
		p.closeStream(errors.Is(err, ErrBadReply))
		p.fail(err)
		return
	}
}

// readReply reads one reply and finishes its request. An error breaks the
// stream.
func (p *Peer) readReply() error {
	f, err := p.r.ReadFrame()
	// A bad or unknown frame that is not a RangeReply was consumed whole
	// and fails only its request; anything else loses the stream.
	_, isRange := f.Msg.(RangeReply)
	perCall := errors.Is(err, ErrUnknownMessage) || (errors.Is(err, ErrBadMessage) && f.Msg != nil && !isRange)
	if err != nil && !perCall {
		return fmt.Errorf("%w: %w", ErrPeerClosed, err)
	}
	c := p.head()
	switch {
	case c == nil:
		return fmt.Errorf("%w: reply %d to no request", ErrBadReply, f.ID)
	case c.id != f.ID:
		return fmt.Errorf("%w: reply %d to request %d", ErrBadReply, f.ID, c.id)
	case err != nil:
		if p.take(c) {
			c.finish(nil, fmt.Errorf("%w: %w", ErrBadReply, err))
		}
		return nil
	}
	switch m := f.Msg.(type) {
	case ErrorReply:
		if p.take(c) {
			c.finish(nil, m)
		}
		return nil
	case HaveReply:
		if c.kind == kindHave {
			if p.take(c) {
				c.finish(m, nil)
			}
			return nil
		}
	case BrowseReply:
		if c.kind == kindBrowse {
			if p.take(c) {
				c.finish(m, nil)
			}
			return nil
		}
	case RangeReply:
		if c.kind == kindRange {
			return p.readRange(c, m)
		}
	}
	return fmt.Errorf("%w: %T to request %d", ErrBadReply, f.Msg, c.id)
}

// readRange reads the payload of m, the reply to c, into c's buffer, group
// by group, unless c was abandoned: the Reader then skips what is left.
func (p *Peer) readRange(c *call, m RangeReply) error {
	want := RangeReply{
		First: c.first, Count: c.count,
		ProofLen: RangeProofSize(c.size, c.first, c.count),
		DataLen:  RangeDataSize(c.size, c.first, c.count),
	}
	if m != want {
		return fmt.Errorf("%w: range reply %d: %d groups from %d with %d proof and %d data bytes; want %d from %d with %d and %d",
			ErrBadReply, c.id, m.Count, m.First, m.ProofLen, m.DataLen, want.Count, want.First, want.ProofLen, want.DataLen)
	}
	need := int64(m.ProofLen) + m.DataLen
	b := c.buf
	if int64(cap(b)) < need {
		b = make([]byte, need)
	}
	data, proof := b[:m.DataLen:m.DataLen], b[m.DataLen:need:need]
	// Hold c.lock around each piece: a requester whose ctx ends waits for
	// the piece in progress, then the reader leaves buf alone.
	for rest, first := data, true; first || len(rest) > 0; first = false {
		c.lock <- struct{}{}
		if c.abandoned || c.finished {
			// The requester is gone, or Close failed it: buf is not ours.
			<-c.lock
			p.take(c)
			return nil
		}
		var err error
		if first {
			err = p.r.ReadPayload(proof)
		} else {
			n := min(len(rest), GroupSize)
			err = p.r.ReadPayload(rest[:n])
			rest = rest[n:]
		}
		<-c.lock
		if err != nil {
			return fmt.Errorf("%w: %w", ErrPeerClosed, err)
		}
	}
	if p.take(c) {
		c.lock <- struct{}{}
		c.data, c.proof = data, proof
		<-c.lock
		c.finish(m, nil)
	}
	return nil
}
