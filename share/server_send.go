package share

import (
	"io"
	"sync"
)

// sendQueue writes a served stream's replies, in order, from a goroutine
// of its own, so that the answering loop reads the next chunk of a file
// while the last one is being written, and the stream is handed its next
// chunk the moment it has taken the one before.
//
// Why: a QUIC stream's Write returns once its data is packed, not
// buffered as a TCP socket buffers it; a writer that then reads the next
// chunk from the file leaves the connection with nothing to send, and
// quic-go's congestion controller, seeing the connection
// application-limited, stops growing its window. Over a long path the
// download then runs at a fraction of the link (8-12 MiB/s against 35-40
// for a raw QUIC stream, 50 ms round trip, 500 Mbit/s).
//
// Memory: at most ServeChunks data chunks (each charged to the stream's
// scope while it is queued or written) and sendSmallBudget bytes of
// copied frames (headers, proofs, listings), which ServerWriteBuffer
// accounts for.
type sendQueue struct {
	w       io.Writer
	release func(*[]byte) // gives a written chunk back

	mu     sync.Mutex
	cond   *sync.Cond
	items  []sendItem
	chunks int       // chunks reserved: taken, queued or free
	free   []*[]byte // written chunks kept for the range being sent
	keep   bool      // a range is being sent: keep written chunks in free
	small  int       // bytes of copied frames queued
	closed bool      // no more items will come
	err    error     // the first write error; later items are dropped
	done   chan struct{}
}

// sendItem is one write of a sendQueue: a copied frame, or n bytes of a
// data chunk.
type sendItem struct {
	b     []byte
	chunk *[]byte
}

// sendSmallBudget bounds the bytes of copied frames a sendQueue holds; a
// frame larger than that waits until the queue holds none.
const sendSmallBudget = ServerWriteBuffer

func newSendQueue(w io.Writer, release func(*[]byte)) *sendQueue {
	q := &sendQueue{w: w, release: release, done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.loop()
	return q
}

// Write queues a copy of p (a flush of the stream's frame buffer).
func (q *sendQueue) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.err == nil && q.small > 0 && q.small+len(p) > sendSmallBudget {
		q.cond.Wait()
	}
	if q.err != nil {
		return 0, q.err
	}
	q.items = append(q.items, sendItem{b: append([]byte(nil), p...)})
	q.small += len(p)
	q.cond.Broadcast()
	return len(p), nil
}

// takeChunk returns a chunk for range data: a free one, or one reserved
// with reserve while fewer than ServeChunks are. Until endRange, written
// chunks are kept for the range, so that a range, once its first chunk
// is taken, never runs short of memory half-way through. busy reports
// that reserve refused while the queue held no chunk (waiting would not
// help); err, that a write failed.
func (q *sendQueue) takeChunk(reserve func() bool) (cp *[]byte, busy bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.err != nil {
			return nil, false, q.err
		}
		if n := len(q.free); n > 0 {
			cp = q.free[n-1]
			q.free = q.free[:n-1]
			q.keep = true
			return cp, false, nil
		}
		if q.chunks < ServeChunks {
			if reserve() {
				q.chunks++
				q.keep = true
				return chunkPool.Get().(*[]byte), false, nil
			}
			if q.chunks == 0 {
				return nil, true, nil
			}
		}
		q.cond.Wait() // for a chunk to come back
	}
}

// endRange gives back the free chunks, and those still queued once they
// are written: the range is sent, or given up.
func (q *sendQueue) endRange() {
	q.mu.Lock()
	free := q.free
	q.free, q.keep = nil, false
	q.chunks -= len(free)
	q.cond.Broadcast()
	q.mu.Unlock()
	for _, cp := range free {
		q.release(cp)
	}
}

// putChunk gives back a chunk that takeChunk returned and that was not
// queued.
func (q *sendQueue) putChunk(cp *[]byte) {
	q.mu.Lock()
	q.free = append(q.free, cp)
	q.mu.Unlock()
}

// sendChunk queues the first n bytes of cp, which takeChunk returned.
func (q *sendQueue) sendChunk(cp *[]byte, n int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		q.free = append(q.free, cp)
		return q.err
	}
	q.items = append(q.items, sendItem{b: (*cp)[:n], chunk: cp})
	q.cond.Broadcast()
	return nil
}

// close waits until every queued item is written (or dropped after a
// failed write) and returns the first write error.
func (q *sendQueue) close() error {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	<-q.done
	return q.err
}

// loop writes the queued items in order until close.
func (q *sendQueue) loop() {
	defer close(q.done)
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.items) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.items) == 0 {
			return
		}
		it := q.items[0]
		q.items[0] = sendItem{}
		q.items = q.items[1:]
		failed := q.err != nil
		q.mu.Unlock()
		var err error
		if !failed {
			_, err = q.w.Write(it.b)
		}
		q.mu.Lock()
		if err != nil && q.err == nil {
			q.err = err
		}
		switch {
		case it.chunk != nil && q.keep:
			q.free = append(q.free, it.chunk)
		case it.chunk != nil:
			q.chunks--
			q.mu.Unlock()
			q.release(it.chunk)
			q.mu.Lock()
		default:
			q.small -= len(it.b)
		}
		q.cond.Broadcast()
	}
}
