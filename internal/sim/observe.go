package sim

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/tunnels"
)

// copyObs is one Search message on one link, as its sender wrote it.
type copyObs struct {
	from, to int32
	depth    int8
	walk     bool          // a walking copy (tunnels.Search.Walk)
	at       time.Duration // since the run's epoch
}

// searchRec is everything observed about one search.
type searchRec struct {
	k      int // index in the workload; -1 for a search the workload did not start
	origin int
	file   int
	start  time.Duration

	mu      sync.Mutex
	copies  []copyObs
	results int // SearchResult messages on all links

	// Set by the goroutine reading the origin's result channel.
	found       bool
	firstResult time.Duration // from start
	firstHolder int
	holders     map[int]bool
}

// observer records what every router writes on its friend links, through
// tunnels.Tap. The writes of one link come from the link's one writer
// goroutine, in order; a message may span writes (pbio writes the length
// prefix and the body apart), so each link's bytes are reassembled into
// length-prefixed messages. The sender's write time stands for the
// arrival time: every link has the same latency.
type observer struct {
	epoch   time.Time
	peers   map[peer.ID]int  // read-only once the routers start
	probers map[peer.ID]bool // the probing friends' hosts, not nodes; read-only too

	mu      sync.RWMutex
	byID    map[tunnels.SearchID]*searchRec
	pending [][]*searchRec // per origin: searches started, id not seen yet

	asm         []assembler    // per node
	sent        []atomic.Int64 // control messages written, per node
	sentBytes   []atomic.Int64 // control bytes written, per node
	answerBytes []atomic.Int64 // SearchResult messages' bytes written, per node
	data        []atomic.Int64 // tunnel bytes relayed, per node
	kinds       [7]atomic.Int64
	undecoded   atomic.Int64
	unexpected  atomic.Int64
}

// Message kinds counted in observer.kinds.
const (
	kindSearch = iota
	kindResult
	kindTunnelRequest
	kindTunnelOK
	kindTunnelFail
	kindTunnelClose
	kindOther
)

func newObserver(n int) *observer {
	return &observer{
		epoch:       time.Now(),
		peers:       make(map[peer.ID]int, n),
		probers:     make(map[peer.ID]bool),
		byID:        make(map[tunnels.SearchID]*searchRec),
		pending:     make([][]*searchRec, n),
		asm:         make([]assembler, n),
		sent:        make([]atomic.Int64, n),
		sentBytes:   make([]atomic.Int64, n),
		answerBytes: make([]atomic.Int64, n),
		data:        make([]atomic.Int64, n),
	}
}

func (o *observer) now() time.Duration { return time.Since(o.epoch) }

// tap returns node i's tunnels.Tap.
func (o *observer) tap(i int) *tunnels.Tap {
	return &tunnels.Tap{
		Control: func(p peer.ID, in bool, b []byte) {
			if !in {
				o.control(i, p, b)
			}
		},
		Data: func(dir int, b []byte) { o.data[i].Add(int64(len(b))) },
	}
}

// expect registers a search that origin is about to start; the next new
// search id that origin writes is this one.
func (o *observer) expect(rec *searchRec) {
	o.mu.Lock()
	o.pending[rec.origin] = append(o.pending[rec.origin], rec)
	o.mu.Unlock()
}

// assembler holds the bytes of each link of a node that do not make a
// whole message yet.
type assembler struct {
	mu      sync.Mutex
	partial map[peer.ID][]byte
	// searches counts the Search messages written to each friend node.
	searches map[int32]int64
}

// control takes bytes node i wrote to friend p and records every message
// they complete.
func (o *observer) control(i int, p peer.ID, b []byte) {
	a := &o.asm[i]
	o.sentBytes[i].Add(int64(len(b)))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.partial == nil {
		a.partial = make(map[peer.ID][]byte)
	}
	buf := append(a.partial[p], b...)
	for len(buf) > 0 {
		l, n := binary.Uvarint(buf)
		if n == 0 || (n > 0 && uint64(len(buf)-n) < l) {
			break // incomplete
		}
		if n < 0 || l > tunnels.MaxControlMsg {
			o.undecoded.Add(1)
			buf = nil
			break
		}
		o.message(i, p, buf[n:n+int(l)], a)
		buf = buf[n+int(l):]
	}
	if len(buf) == 0 {
		delete(a.partial, p)
	} else {
		a.partial[p] = bytes.Clone(buf)
	}
}

// message records one whole message node i wrote to friend p; a is
// node i's assembler, locked.
func (o *observer) message(i int, p peer.ID, b []byte, a *assembler) {
	o.sent[i].Add(1)
	m, err := tunnels.DecodeMessage(b)
	if err != nil {
		o.undecoded.Add(1)
		return
	}
	switch m := m.(type) {
	case *tunnels.Search:
		o.kinds[kindSearch].Add(1)
		to, ok := o.peers[p]
		if !ok {
			if !o.probers[p] {
				o.unexpected.Add(1)
			}
			return
		}
		if a.searches == nil {
			a.searches = make(map[int32]int64)
		}
		a.searches[int32(to)]++
		at := o.now()
		rec := o.lookup(m.ID, i)
		rec.mu.Lock()
		rec.copies = append(rec.copies, copyObs{from: int32(i), to: int32(to), depth: int8(m.Depth), walk: m.Walk, at: at})
		rec.mu.Unlock()
	case *tunnels.SearchResult:
		o.kinds[kindResult].Add(1)
		o.answerBytes[i].Add(int64(len(b) + uvarintLen(len(b))))
		o.mu.RLock()
		rec := o.byID[m.SearchID]
		o.mu.RUnlock()
		if rec != nil {
			rec.mu.Lock()
			rec.results++
			rec.mu.Unlock()
		}
	case *tunnels.TunnelRequest:
		o.kinds[kindTunnelRequest].Add(1)
	case *tunnels.TunnelOK:
		o.kinds[kindTunnelOK].Add(1)
	case *tunnels.TunnelFail:
		o.kinds[kindTunnelFail].Add(1)
	case *tunnels.TunnelClose:
		o.kinds[kindTunnelClose].Add(1)
	default:
		o.kinds[kindOther].Add(1)
	}
}

// lookup returns the record of search id, written by node i. The first
// node to write an id is its origin: a relay writes an id only after
// receiving it, that is after its sender wrote it.
func (o *observer) lookup(id tunnels.SearchID, i int) *searchRec {
	o.mu.RLock()
	rec := o.byID[id]
	o.mu.RUnlock()
	if rec != nil {
		return rec
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if rec = o.byID[id]; rec != nil {
		return rec
	}
	if q := o.pending[i]; len(q) > 0 {
		rec = q[0]
		o.pending[i] = q[1:]
	} else {
		rec = &searchRec{k: -1, origin: i, file: -1}
	}
	o.byID[id] = rec
	return rec
}

// dataSnapshot returns each node's relayed tunnel bytes so far.
func (o *observer) dataSnapshot() []int64 {
	out := make([]int64, len(o.data))
	for i := range o.data {
		out[i] = o.data[i].Load()
	}
	return out
}

// uvarintLen is the length of n's uvarint length prefix.
func uvarintLen(n int) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], uint64(n))
}

// answerSnapshot returns each node's SearchResult bytes written so far.
func (o *observer) answerSnapshot() []int64 {
	out := make([]int64, len(o.answerBytes))
	for i := range o.answerBytes {
		out[i] = o.answerBytes[i].Load()
	}
	return out
}

// bytesSnapshot returns each node's control bytes written so far.
func (o *observer) bytesSnapshot() []int64 {
	out := make([]int64, len(o.sentBytes))
	for i := range o.sentBytes {
		out[i] = o.sentBytes[i].Load()
	}
	return out
}

// linkSearches returns the Search messages written so far on each
// directed friend link, keyed by (from, to).
func (o *observer) linkSearches() map[[2]int32]int64 {
	out := make(map[[2]int32]int64)
	for i := range o.asm {
		a := &o.asm[i]
		a.mu.Lock()
		for to, c := range a.searches {
			out[[2]int32{int32(i), to}] = c
		}
		a.mu.Unlock()
	}
	return out
}

// sentTotal returns the control messages written by all nodes so far.
func (o *observer) sentSnapshot() []int64 {
	out := make([]int64, len(o.sent))
	for i := range o.sent {
		out[i] = o.sent[i].Load()
	}
	return out
}
