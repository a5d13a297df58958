package friendlink

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/internal/frame"
)

// Link is the stream to one friend: a bounded send queue, one writer and
// one reader. Its methods are safe for concurrent use and never block on
// the network.
type Link[M any] struct {
	m       *Manager[M]
	peer    peer.ID
	s       network.Stream
	h       Handler[M] // set by addLink before the goroutines start
	counted bool       // holds one of the friend's inbound slots

	done       chan struct{} // closed by Stop
	stopOnce   sync.Once
	wake       chan struct{} // a message was queued; capacity 1
	writerDone chan struct{}

	mu     sync.Mutex
	closed bool      // set by Stop: Send refuses
	queue  []item[M] // waiting for the writer
	count  int       // messages queued or being written
	bytes  int64     // what they are charged, also to s's scope
	drops  atomic.Uint64
}

// item is a queued message, or bytes already encoded (raw != nil).
type item[M any] struct {
	m    M
	raw  []byte
	size int // charged
}

func newLink[M any](m *Manager[M], p peer.ID, s network.Stream, counted bool) *Link[M] {
	return &Link[M]{
		m: m, peer: p, s: s, counted: counted,
		done:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
}

// Peer returns the friend at the other end.
func (l *Link[M]) Peer() peer.ID { return l.peer }

// Done returns a channel closed once the link is stopped.
func (l *Link[M]) Done() <-chan struct{} { return l.done }

// Stop ends the link: Send refuses, its goroutines end and the stream is
// reset. It does not wait; it is safe to call more than once and from
// any goroutine, the Handler's included.
func (l *Link[M]) Stop() {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.done)
		l.s.Reset()
	})
}

// Send queues m for the friend and reports whether it did. It never
// blocks: m is dropped (false) when the link is stopped, or, counted in
// QueueDrops, when the queue holds Config.Queue messages already, when
// Config.Size(m) more would pass Config.QueueBytes, or when the stream's
// resource scope refuses that memory. The writer encodes m later, so m
// must not change once queued.
func (l *Link[M]) Send(m M) bool {
	return l.enqueue(item[M]{m: m, size: l.m.cfg.Size(m)})
}

// SendEncoded is Send for a message already encoded with its length
// prefix (what Config.Encode would append): the writer writes b as it
// is, so one encoding can go to many links. b must not change once
// queued. An empty b sends nothing.
func (l *Link[M]) SendEncoded(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	return l.enqueue(item[M]{raw: b, size: len(b)})
}

func (l *Link[M]) enqueue(it item[M]) bool {
	cfg := &l.m.cfg
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.count >= cfg.Queue || l.bytes+int64(it.size) > int64(cfg.QueueBytes) ||
		l.s.Scope().ReserveMemory(it.size, network.ReservationPriorityMedium) != nil {
		l.drops.Add(1)
		l.m.drops.Add(1)
		return false
	}
	l.queue = append(l.queue, it)
	l.count++
	l.bytes += int64(it.size)
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// QueuedBytes returns what the link's queued and unwritten messages are
// charged.
func (l *Link[M]) QueuedBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// QueueDrops returns how many messages Send dropped on this link for a
// full queue or refused memory.
func (l *Link[M]) QueueDrops() uint64 { return l.drops.Load() }

// release gives back what n messages of size bytes in all were charged.
func (l *Link[M]) release(n, size int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	l.count -= n
	l.bytes -= int64(size)
	l.mu.Unlock()
	l.s.Scope().ReleaseMemory(size)
}

// take returns what is queued, leaving spare (emptied) as the new queue.
func (l *Link[M]) take(spare []item[M]) []item[M] {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queue
	l.queue = spare[:0]
	return q
}

// drain closes the queue and gives back what it and held were charged:
// what the writer had not written when it ended.
func (l *Link[M]) drain(held ...[]item[M]) {
	l.mu.Lock()
	l.closed = true
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	n, size := 0, 0
	for _, its := range append(held, q) {
		for _, it := range its {
			n++
			size += it.size
		}
	}
	l.release(n, size)
}

// writeLoop encodes what is queued into one buffer and writes it when it
// holds writeBatch bytes and when the queue is empty.
func (l *Link[M]) writeLoop() {
	defer l.m.wg.Done()
	defer close(l.writerDone)
	cfg := &l.m.cfg
	var w io.Writer = l.s
	if cfg.Tap != nil {
		w = tapWriter{w, func(b []byte) { cfg.Tap(l.peer, false, b) }}
	}
	var (
		buf []byte
		got []item[M] // taken from the queue, not encoded yet: got[next:]
		out []item[M] // encoded into buf, not written yet
	)
	next := 0
	defer func() { l.drain(got[next:], out) }()
	write := func() bool {
		l.s.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if _, err := w.Write(buf); err != nil {
			l.m.log.Debug("link write failed", l.m.attrs(l.peer, slog.Any("err", err))...)
			l.Stop()
			return false
		}
		size := 0
		for _, it := range out {
			size += it.size
			if it.raw == nil {
				l.h.Written(it.m)
			}
		}
		l.release(len(out), size)
		clear(out)
		out, buf = out[:0], buf[:0]
		return true
	}
	for {
		select {
		case <-l.done:
			return
		case <-l.wake:
		}
		for {
			clear(got)
			got, next = l.take(got), 0
			if len(got) == 0 {
				break
			}
			for next < len(got) {
				it := got[next]
				next++
				start := len(buf)
				if it.raw != nil {
					buf = append(buf, it.raw...)
				} else {
					var err error
					if buf, err = cfg.Encode(buf, it.m); err != nil {
						buf = buf[:start]
						l.m.log.Debug("not sending a message that does not encode", l.m.attrs(l.peer, slog.Any("err", err))...)
						l.release(1, it.size)
						continue
					}
				}
				out = append(out, it)
				if len(buf) >= writeBatch && !write() {
					return
				}
			}
		}
		if len(buf) > 0 && !write() {
			return
		}
		// Idle: keep little.
		if cap(buf) > keepBuffer {
			buf = nil
		}
		if cap(got) > keepItems {
			got = nil
		}
		if cap(out) > keepItems {
			out = nil
		}
		l.mu.Lock()
		if len(l.queue) == 0 && cap(l.queue) > keepItems {
			l.queue = nil
		}
		l.mu.Unlock()
	}
}

// readLoop hands the stream to the Handler and, once it returns, applies
// the misbehaviour policy, stops the link and tells the Handler.
func (l *Link[M]) readLoop() {
	defer l.m.wg.Done()
	cfg := &l.m.cfg
	var rd io.Reader = l.s
	if cfg.Tap != nil {
		rd = tapReader{rd, func(b []byte) { cfg.Tap(l.peer, true, b) }}
	}
	fr := frame.NewReader(rd, cfg.MaxFrame, frame.Options{FrameTimeout: cfg.FrameTimeout, Deadliner: l.s, Memory: l.s.Scope()})
	err := l.h.Serve(fr)
	fr.Close()
	switch {
	case err != nil && (frame.IsPeerFault(err) || cfg.PeerFault != nil && cfg.PeerFault(err)):
		l.m.fault(l, err)
	case err != nil && !errors.Is(err, io.EOF):
		l.m.log.Debug("link ended", l.m.attrs(l.peer, slog.Any("err", err))...)
	}
	l.Stop()
	<-l.writerDone
	l.m.remove(l)
	l.h.Down()
	l.m.log.Debug("link down", l.m.attrs(l.peer)...)
}

type tapReader struct {
	r   io.Reader
	tap func([]byte)
}

func (t tapReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.tap(p[:n])
	}
	return n, err
}

type tapWriter struct {
	w   io.Writer
	tap func([]byte)
}

func (t tapWriter) Write(p []byte) (int, error) {
	t.tap(p)
	return t.w.Write(p)
}
