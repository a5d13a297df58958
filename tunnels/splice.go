package tunnels

import (
	"fmt"
	"io"
	"sync"
)

// Directions of a Splice, as passed to an Observer.
const (
	// DirAToB is data read from a and written to b.
	DirAToB = 0
	// DirBToA is data read from b and written to a.
	DirBToA = 1
)

// Observer sees every chunk a Splice forwards, before it is written on.
// It is called from the two copying goroutines, possibly at the same
// time, and must not keep p or block for long.
type Observer func(dir int, p []byte)

// SpliceOption configures a Splice.
type SpliceOption func(*spliceConfig)

type spliceConfig struct {
	observe Observer
}

// WithObserver has obs called with every chunk forwarded, for byte
// counters and for tests that check what a relay saw.
func WithObserver(obs Observer) SpliceOption {
	return func(c *spliceConfig) { c.observe = obs }
}

// Splice relays a and b to each other until both directions end, then
// closes both and returns. It is how a relay joins the two hops of a
// tunnel.
//
// Each direction is copied by its own goroutine through a buffer of
// bufSize bytes (RelayBufSize if bufSize <= 0) taken from a pool while
// data flows; an idle direction holds only RelayIdleBufSize bytes. When a
// direction's source ends cleanly, the destination is half-closed with
// CloseWrite if it has one (else both streams are closed, which ends the
// other direction too), and the other direction goes on. When either
// direction fails, both streams are reset (Reset if they have it, else
// Close), so the ends of the tunnel see it broken, and Splice returns that
// first error. A clean end in both directions returns nil.
//
// Back-pressure comes from the streams: a slow reader at one end blocks
// the copy towards it, and the stream's flow control then stops the
// sender. Splice blocks; it owns a and b from the start.
func Splice(a, b io.ReadWriteCloser, bufSize int, opts ...SpliceOption) error {
	var cfg spliceConfig
	for _, o := range opts {
		o(&cfg)
	}
	if bufSize <= 0 {
		bufSize = RelayBufSize
	}
	sp := &splice{a: a, b: b, bufSize: bufSize, observe: cfg.observe}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sp.pipe(b, a, DirAToB) }()
	go func() { defer wg.Done(); sp.pipe(a, b, DirBToA) }()
	wg.Wait()
	if sp.err != nil {
		return sp.err
	}
	// Both directions ended cleanly; closing can only release resources.
	a.Close()
	b.Close()
	return nil
}

type splice struct {
	a, b    io.ReadWriteCloser
	bufSize int
	observe Observer

	mu          sync.Mutex
	err         error // first failure; set once both streams are reset
	closedEarly bool  // a direction ended on a stream without CloseWrite
}

// pipe copies src to dst until src ends or either fails.
func (sp *splice) pipe(dst io.Writer, src io.Reader, dir int) {
	small := getBuf(RelayIdleBufSize)
	buf, big := small, (*[]byte)(nil)
	defer func() {
		putBuf(small)
		if big != nil {
			putBuf(big)
		}
	}()
	for {
		n, rerr := src.Read(*buf)
		if n > 0 {
			if sp.observe != nil {
				sp.observe(dir, (*buf)[:n])
			}
			if _, werr := dst.Write((*buf)[:n]); werr != nil {
				sp.fail(dir, fmt.Errorf("writing %s: %w", dirName(dir, true), werr))
				return
			}
			// Grow to the large buffer while data flows in full reads;
			// give it back when reads turn small, so an idle tunnel
			// blocks in Read holding only the small one.
			switch {
			case buf == small && n == len(*small) && sp.bufSize > RelayIdleBufSize:
				if big == nil {
					big = getBuf(sp.bufSize)
				}
				buf = big
			case buf == big && n < RelayIdleBufSize:
				buf = small
				if sp.bufSize == RelayBufSize { // pooled: lend it back
					putBuf(big)
					big = nil
				}
			}
		}
		if rerr == io.EOF {
			sp.endDirection(dst)
			return
		}
		if rerr != nil {
			sp.fail(dir, fmt.Errorf("reading %s: %w", dirName(dir, false), rerr))
			return
		}
	}
}

// endDirection passes a clean end of one direction on to dst.
func (sp *splice) endDirection(dst io.Writer) {
	if cw, ok := dst.(closeWriter); ok {
		if err := cw.CloseWrite(); err == nil {
			return
		}
	}
	// No half-close: the whole splice has to end.
	sp.mu.Lock()
	first := sp.err == nil && !sp.closedEarly
	sp.closedEarly = true
	sp.mu.Unlock()
	if first {
		sp.a.Close()
		sp.b.Close()
	}
}

// fail records the first error and resets both streams, which unblocks
// the other direction. Errors that follow from our own reset or close are
// not recorded.
func (sp *splice) fail(dir int, err error) {
	sp.mu.Lock()
	first := sp.err == nil && !sp.closedEarly
	if first {
		sp.err = err
	}
	sp.mu.Unlock()
	if first {
		abort(sp.a)
		abort(sp.b)
	}
}

func dirName(dir int, write bool) string {
	switch {
	case dir == DirAToB && !write, dir == DirBToA && write:
		return "first stream"
	default:
		return "second stream"
	}
}

// Buffer pools for the two sizes relays use; other sizes are allocated
// per Splice.
var (
	idlePool = sync.Pool{New: func() any { b := make([]byte, RelayIdleBufSize); return &b }}
	busyPool = sync.Pool{New: func() any { b := make([]byte, RelayBufSize); return &b }}
)

func getBuf(size int) *[]byte {
	switch size {
	case RelayIdleBufSize:
		return idlePool.Get().(*[]byte)
	case RelayBufSize:
		return busyPool.Get().(*[]byte)
	}
	b := make([]byte, size)
	return &b
}

func putBuf(b *[]byte) {
	switch len(*b) {
	case RelayIdleBufSize:
		idlePool.Put(b)
	case RelayBufSize:
		busyPool.Put(b)
	}
}
