package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"golang.org/x/time/rate"

	kframe "kith/internal/frame"
)

// errAckTimeout means a peer left messages unacked for StreamTimeout.
var errAckTimeout = errors.New("no ack from the peer")

// engine runs the couriers of every conversation and serves incoming
// streams; private and distant chat are two ways of reaching a peer over
// the same engine.
type engine struct {
	hist   *history
	log    *slog.Logger
	events func(typ string, data any)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	couriers map[convKey]*courier
}

func newEngine(hist *history, log *slog.Logger, events func(string, any)) *engine {
	ctx, cancel := context.WithCancel(context.Background())
	if events == nil {
		events = func(string, any) {}
	}
	return &engine{hist: hist, log: log, events: events, ctx: ctx, cancel: cancel, couriers: map[convKey]*courier{}}
}

// close stops every courier and waits for them.
func (e *engine) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// track adds one goroutine (a stream handler, a distant session) to the
// engine's, unless it is closing; the caller then calls e.wg.Done.
func (e *engine) track() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	return true
}

// route is how a courier reaches its peer.
type route struct {
	// ready reports whether trying now makes sense (the friend is
	// connected); nil means always.
	ready func() bool
	// dial opens a stream or session to the peer.
	dial func(ctx context.Context) (io.ReadWriteCloser, error)
	// acked is told of messages the peer acked.
	acked func([]Message)
}

// courier delivers one conversation's outbox, and its typing notices.
// It runs while there is something to deliver and retires when there is
// not; kick starts or wakes it.
type courier struct {
	e      *engine
	conv   convKey
	route  route
	wake   chan struct{}
	typing atomic.Bool
}

// kick makes sure conv's courier runs and looks at its outbox now; with
// typing it also sends a Typing notice.
func (e *engine) kick(conv convKey, r route, typing bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	c := e.couriers[conv]
	if c == nil {
		c = &courier{e: e, conv: conv, route: r, wake: make(chan struct{}, 1)}
		e.couriers[conv] = c
		e.wg.Add(1)
		go c.run()
	}
	if typing {
		c.typing.Store(true) // under e.mu, so the courier cannot retire first
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// typing asks conv's courier, if its peer is reachable now, to send a
// Typing notice.
func (e *engine) typing(conv convKey, r route) {
	if r.ready != nil && !r.ready() {
		return
	}
	e.kick(conv, r, true)
}

// retire removes the courier if nothing woke it since it last looked.
func (c *courier) retire() bool {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if len(c.wake) > 0 || c.typing.Load() {
		return false
	}
	delete(c.e.couriers, c.conv)
	return true
}

func (c *courier) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.e.ctx.Done():
	case <-c.wake:
	case <-t.C:
	}
}

func (c *courier) run() {
	defer c.e.wg.Done()
	backoff := RetryMin
	for {
		select {
		case <-c.wake:
		default:
		}
		if c.e.ctx.Err() != nil {
			return
		}
		if c.e.hist.pending(c.conv) == 0 && !c.typing.Load() {
			if c.retire() {
				return
			}
			continue
		}
		if c.route.ready != nil && !c.route.ready() {
			c.typing.Store(false) // typing news goes stale
			c.sleep(RetryMax)
			continue
		}
		err := c.session()
		if err == nil {
			backoff = RetryMin
			continue
		}
		if c.e.ctx.Err() != nil {
			return
		}
		c.e.log.Debug("chat delivery failed; will retry", slog.Any("err", err), slog.Duration("in", backoff))
		c.typing.Store(false)
		c.sleep(backoff)
		backoff = min(2*backoff, RetryMax)
	}
}

// session opens one stream to the peer and delivers over it until the
// outbox has been empty for CourierIdle, or the stream fails.
func (c *courier) session() error {
	ctx, cancel := context.WithTimeout(c.e.ctx, StreamTimeout)
	rw, err := c.route.dial(ctx)
	cancel()
	if err != nil {
		return err
	}
	var readers sync.WaitGroup
	defer readers.Wait()
	defer rw.Close()

	acks := make(chan []MsgID)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	readers.Add(1)
	go func() {
		defer readers.Done()
		fr := newFrameReader(rw, memoryOf(rw))
		defer fr.close()
		for {
			f, err := fr.read()
			if err != nil {
				readErr <- err
				return
			}
			if f.ack == nil {
				continue // nothing else is expected from the receiver; ignored
			}
			select {
			case acks <- f.ack:
			case <-done:
				return
			}
		}
	}()

	fw := newFrameWriter(rw)
	wd, _ := rw.(interface{ SetWriteDeadline(time.Time) error })
	written := map[MsgID]int{} // on this stream, not yet acked: text bytes
	writtenBytes := 0
	var sentUpTo uint64
	idle := time.NewTimer(CourierIdle)
	defer idle.Stop()
	ackTimer := time.NewTimer(StreamTimeout)
	defer ackTimer.Stop()
	lastTyping := time.Time{}
	for {
		wrote := false
		if wd != nil { // a peer that reads nothing stalls this courier at most so long
			wd.SetWriteDeadline(time.Now().Add(StreamTimeout))
		}
		if len(written) < SendWindow {
			ms, err := c.e.hist.outbox(c.conv, sentUpTo, SendWindow-len(written))
			if err != nil {
				return err
			}
			for _, m := range ms {
				if len(written) > 0 && writtenBytes+len(m.Text) > SendWindowBytes {
					break // the rest when acks come
				}
				if err := fw.message(m); err != nil {
					return fmt.Errorf("writing message: %w", err)
				}
				written[m.ID] = len(m.Text)
				writtenBytes += len(m.Text)
				sentUpTo = m.Seq
				wrote = true
			}
		}
		if c.typing.Swap(false) && time.Since(lastTyping) >= TypingInterval {
			if err := fw.typing(); err != nil {
				return fmt.Errorf("writing typing notice: %w", err)
			}
			lastTyping = time.Now()
			wrote = true
		}
		if wrote {
			if err := fw.flush(); err != nil {
				return fmt.Errorf("writing messages: %w", err)
			}
			idle.Reset(CourierIdle) // since Go 1.23 a Reset timer sends no stale value
		}
		var ackTimeout <-chan time.Time
		if len(written) > 0 {
			ackTimer.Reset(StreamTimeout)
			ackTimeout = ackTimer.C
		}
		select {
		case ids := <-acks:
		more: // take every ack already there, for one transaction
			for len(ids) < SendWindow {
				select {
				case more := <-acks:
					ids = append(ids, more...)
				default:
					break more
				}
			}
			for _, id := range ids {
				if n, ok := written[id]; ok {
					writtenBytes -= n
					delete(written, id)
				}
			}
			got, err := c.e.hist.acked(c.conv, ids)
			if err != nil {
				return err
			}
			if len(got) > 0 && c.route.acked != nil {
				c.route.acked(got)
			}
		case <-c.wake:
		case <-idle.C:
			if len(written) == 0 {
				return nil
			}
			idle.Reset(CourierIdle)
		case <-ackTimeout:
			return errAckTimeout
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading acks: %w", err)
		case <-c.e.ctx.Done():
			return c.e.ctx.Err()
		}
	}
}

// receiver is what serve tells of what arrives on a stream.
type receiver struct {
	conv    convKey
	limit   *rate.Limiter
	stored  func(Message) // a new message entered the history
	typing  func()        // a typing notice came (the callee rate-limits)
	noHello bool          // a Hello frame breaks the protocol here
	// refused is told why a message was refused (not stored, not acked);
	// serve then ends the stream cleanly, so the sender keeps it.
	refused func(error)
}

// errStopped ends a stream after a message was refused: the acks written
// before go out (the stream is closed, not reset).
var errStopped = errors.New("stream stopped: a message was refused")

// errOverWindow means a peer wrote more unacked messages than the send
// window allows on one stream.
var errOverWindow = fmt.Errorf("%w: more unacked than the send window (%d messages, %d KiB)", ErrBadFrame, SendWindow, SendWindowBytes>>10)

// inbox holds what a stream's reader took in and the store has not acked
// yet: at most one sender's window (SendWindow messages, SendWindowBytes
// of text or one message), charged to the stream's memory scope.
type inbox struct {
	mem  kframe.MemoryScope
	wake chan struct{} // capacity 1

	mu      sync.Mutex
	msgs    []Message // read, not taken yet
	n       int       // read and not acked: queued and being stored
	bytes   int       // text of those
	charged int       // bytes reserved in mem
	eof     bool      // the sender ended the stream cleanly
}

// put queues m; it fails when m would take the stream past the window.
func (in *inbox) put(m Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.n >= SendWindow || (in.n > 0 && in.bytes+len(m.Text) > StreamBufferBytes) {
		return errOverWindow
	}
	if in.mem != nil {
		if err := in.mem.ReserveMemory(len(m.Text), memoryPriority); err != nil {
			return fmt.Errorf("buffering a chat message: %w", err)
		}
		in.charged += len(m.Text)
	}
	in.msgs = append(in.msgs, m)
	in.n++
	in.bytes += len(m.Text)
	in.signal()
	return nil
}

func (in *inbox) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// take returns the queued messages, and whether the sender has ended.
func (in *inbox) take() ([]Message, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ms := in.msgs
	in.msgs = nil
	return ms, in.eof && len(ms) == 0
}

// done releases ms, stored and acked (or given up).
func (in *inbox) done(ms []Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := 0
	for _, m := range ms {
		b += len(m.Text)
	}
	in.n -= len(ms)
	in.bytes -= b
	if in.mem != nil {
		r := min(b, in.charged)
		in.mem.ReleaseMemory(r)
		in.charged -= r
	}
}

// release gives back everything still charged.
func (in *inbox) release() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.mem != nil && in.charged > 0 {
		in.mem.ReleaseMemory(in.charged)
	}
	in.charged, in.msgs = 0, nil
}

// memoryPriority is the reservation priority of a stream's queued
// messages: like frame buffers, up to 80% of the scope.
const memoryPriority = 204

// serve reads frames from rw, stores each new message before it acks it
// (acking duplicates again) and reports typing notices. It returns nil
// when the peer ends the stream, errStopped when a message was refused,
// and another error (wrapping ErrBadFrame when the peer broke the
// protocol) when the stream failed; the caller then resets rw.
func (e *engine) serve(ctx context.Context, rw io.ReadWriteCloser, mem kframe.MemoryScope, rc receiver) error {
	fr := newFrameReader(rw, mem)
	defer fr.close()
	return e.serveFrames(ctx, fr, rw, mem, rc)
}

// serveFrames is serve with the stream's frame reader already made. A
// reader goroutine reads frames as they come (so a reset stream is seen
// at once and ends everything done for it) into the stream's inbox,
// which the sender's window bounds; meanwhile the loop here waits for the
// peer's rate, stores what arrived in one transaction and acks it in one
// Ack.
func (e *engine) serveFrames(ctx context.Context, fr *frameReader, rw io.ReadWriteCloser, mem kframe.MemoryScope, rc receiver) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	in := &inbox{mem: mem, wake: make(chan struct{}, 1)}
	defer in.release()
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		for {
			f, err := fr.read()
			if errors.Is(err, io.EOF) {
				in.mu.Lock()
				in.eof = true
				in.mu.Unlock()
				in.signal()
				return
			}
			if err == nil {
				switch {
				case f.msg != nil:
					err = in.put(*f.msg)
				case f.typing:
					if rc.typing != nil {
						rc.typing()
					}
				case f.hello != nil && rc.noHello:
					err = fmt.Errorf("%w: unexpected hello", ErrBadFrame)
				}
			}
			if err != nil {
				cancel(err) // wakes the loop, even from a rate wait
				return
			}
		}
	}()
	defer func() {
		if err != nil && !errors.Is(err, errStopped) {
			abort(rw) // unblocks the reader
		} else {
			rw.Close()
		}
		reader.Wait()
	}()

	fw := newFrameWriter(rw)
	wd, _ := rw.(interface{ SetWriteDeadline(time.Time) error })
	for {
		select {
		case <-in.wake:
		case <-ctx.Done():
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return ctx.Err()
		}
		msgs, ended := in.take()
		if ended {
			return nil
		}
		if len(msgs) == 0 {
			continue
		}
		if err := rc.limit.WaitN(ctx, len(msgs)); err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			return fmt.Errorf("waiting for the peer's rate: %w", err)
		}
		stored, ack, refused, err := e.hist.appendIncoming(rc.conv, msgs)
		if err != nil {
			return err
		}
		if rc.stored != nil {
			for _, m := range stored {
				rc.stored(m)
			}
		}
		if len(ack) > 0 {
			if wd != nil {
				wd.SetWriteDeadline(time.Now().Add(StreamTimeout))
			}
			if err := fw.ack(ack); err != nil {
				return fmt.Errorf("writing ack: %w", err)
			}
			if err := fw.flush(); err != nil {
				return fmt.Errorf("writing ack: %w", err)
			}
		}
		in.done(msgs)
		if refused != nil {
			if rc.refused != nil {
				rc.refused(refused)
			}
			return fmt.Errorf("%w: %w", errStopped, refused)
		}
		in.signal() // more may have come meanwhile
	}
}

// memoryOf returns the libp2p resource scope of rw, if it is a stream,
// for its buffers to be charged to.
func memoryOf(rw any) kframe.MemoryScope {
	if st, ok := rw.(interface{ Scope() network.StreamScope }); ok {
		return st.Scope()
	}
	return nil
}

// abort ends rw at once: a reset where the stream has one (so the peer
// sees a failure, not a clean end), else a close.
func abort(rw io.Closer) {
	if r, ok := rw.(interface{ Reset() error }); ok {
		r.Reset()
		return
	}
	rw.Close()
}

// peerLimiter returns one peer's rate limiter (r a second, burst b), kept
// in m. Past MaxRatedPeers peers, m starts afresh, so that many callers
// cost bounded memory. The caller holds the lock guarding m.
func peerLimiter[K comparable](m map[K]*rate.Limiter, peer K, r rate.Limit, b int) *rate.Limiter {
	l := m[peer]
	if l == nil {
		if len(m) >= MaxRatedPeers {
			clear(m)
		}
		l = rate.NewLimiter(r, b)
		m[peer] = l
	}
	return l
}
