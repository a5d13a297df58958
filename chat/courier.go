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

	"golang.org/x/time/rate"
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
		fr := newFrameReader(rw)
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
	written := map[MsgID]bool{} // on this stream, not yet acked
	var sentUpTo uint64
	idle := time.NewTimer(CourierIdle)
	defer idle.Stop()
	ackTimer := time.NewTimer(StreamTimeout)
	defer ackTimer.Stop()
	lastTyping := time.Time{}
	for {
		wrote := false
		if len(written) < SendWindow {
			ms, err := c.e.hist.outbox(c.conv, sentUpTo, SendWindow-len(written))
			if err != nil {
				return err
			}
			for _, m := range ms {
				if err := fw.message(m); err != nil {
					return fmt.Errorf("writing message: %w", err)
				}
				written[m.ID] = true
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
				delete(written, id)
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
	typing  func()
	noHello bool // a Hello frame breaks the protocol here
}

// serve reads frames from rw, stores each new message before it acks it
// (acking duplicates again) and reports typing notices. It returns nil
// when the peer ends the stream, and an error wrapping ErrBadFrame when
// the peer breaks the protocol; on an error rw is closed.
func (e *engine) serve(ctx context.Context, rw io.ReadWriteCloser, rc receiver) error {
	return e.serveFrames(ctx, newFrameReader(rw), rw, rc)
}

// serveFrames is serve with the stream's frame reader already made. A
// reader goroutine decodes frames while the messages that arrived
// meanwhile are stored in one transaction and acked in one Ack.
func (e *engine) serveFrames(ctx context.Context, fr *frameReader, rw io.ReadWriteCloser, rc receiver) (err error) {
	frames := make(chan frame, MaxAckIDs)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		for {
			f, err := fr.read()
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			select {
			case frames <- f:
			case <-done:
				return
			}
		}
	}()
	defer func() {
		close(done)
		if err != nil {
			abort(rw) // unblocks the reader
		}
		reader.Wait()
	}()

	fw := newFrameWriter(rw)
	for {
		f, ok := <-frames
		if !ok {
			if err := <-readErr; !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		}
		batch := []frame{f}
	drain:
		for len(batch) < MaxAckIDs {
			select {
			case f, ok := <-frames:
				if !ok {
					break drain // the error comes on the next round
				}
				batch = append(batch, f)
			default:
				break drain
			}
		}
		var msgs []Message
		var ids []MsgID
		for _, f := range batch {
			switch {
			case f.msg != nil:
				msgs = append(msgs, *f.msg)
				ids = append(ids, f.msg.ID)
			case f.typing:
				if rc.typing != nil {
					rc.typing()
				}
			case f.hello != nil && rc.noHello:
				return fmt.Errorf("%w: unexpected hello", ErrBadFrame)
			}
		}
		if len(msgs) == 0 {
			continue
		}
		if err := rc.limit.WaitN(ctx, len(msgs)); err != nil {
			return fmt.Errorf("waiting for the peer's rate: %w", err)
		}
		stored, err := e.hist.appendIncoming(rc.conv, msgs)
		if err != nil {
			return err
		}
		if rc.stored != nil {
			for _, m := range stored {
				rc.stored(m)
			}
		}
		if err := fw.ack(ids); err != nil {
			return fmt.Errorf("writing ack: %w", err)
		}
		if err := fw.flush(); err != nil {
			return fmt.Errorf("writing ack: %w", err)
		}
	}
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

// peerLimiter returns the rate at which one peer's messages are taken,
// kept in m. Past MaxRatedPeers peers, m starts afresh, so that many
// callers cost bounded memory. The caller holds the lock guarding m.
func peerLimiter[K comparable](m map[K]*rate.Limiter, peer K) *rate.Limiter {
	l := m[peer]
	if l == nil {
		if len(m) >= MaxRatedPeers {
			clear(m)
		}
		l = rate.NewLimiter(MessagesPerSecond, MessageBurst)
		m[peer] = l
	}
	return l
}
