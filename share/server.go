package share

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"kith/internal/frame"
)

// errNoChunk is what a range reply cut short for want of memory breaks its
// stream with; sendQueue.takeChunk keeps it from happening.
var errNoChunk = errors.New("no memory for the rest of a range")

// fileRecheck is how long a stream trusts a catalog lookup before it asks
// again, so a share that stops being shared stops being served on streams
// already open, without a catalog read per request.
const fileRecheck = 10 * time.Second

// msgFileChanged answers a request for a file that changed, moved or
// vanished since it was indexed: its outboard no longer proves it.
const msgFileChanged = "file changed since indexing"

// Server answers share streams from a Catalog: Have, GetRange and Browse
// requests of the /kith/share/1 protocol. One Server serves any number of
// streams at once; its methods are safe for concurrent use. Besides the
// request rates of the peers it serves (kept a while after their last
// stream, see StreamInfo.Peer) it keeps no state between streams, so it
// needs no Close: a stream's resources go when its Serve returns.
type Server struct {
	catalog      Catalog
	log          *slog.Logger
	limiter      *RateLimiter
	idle         time.Duration
	frameTimeout time.Duration
	pipeline     int
	openFiles    int

	ratesMu sync.Mutex
	rates   map[string]*peerRates

	partials serverPartials // files being downloaded (server_extra.go)

	stats serverCounters
}

// StreamInfo is what a Server knows of a stream besides its bytes.
type StreamInfo struct {
	// Peer names who is at the other end, such as a friend's peer ID: the
	// request rates (BrowseRate, HaveRate, RangeRate) are shared by every
	// stream of one Peer. A stream with no Peer (a tunnel session) has
	// rates of its own.
	Peer string
	// Memory, if set, is charged for the stream's buffers before they are
	// allocated: ServeStreamMemory for as long as the stream is served and
	// up to ServeChunks chunks of ServeChunkSize while ranges are written. Pass a libp2p stream's
	// Scope(), so that libp2p's resource manager sees them in the stream's,
	// the peer's and the protocol's scopes.
	Memory frame.MemoryScope
}

// ServerStats counts what a Server did, since it was made.
type ServerStats struct {
	// Have, Ranges and Browses count the requests answered, by kind
	// (refusals included).
	Have, Ranges, Browses int64
	// Throttled counts requests that waited for their peer's rate.
	Throttled int64
	// Busy counts requests refused with CodeBusy (no memory for them) and
	// streams refused at start for the same reason.
	Busy int64
	// PeerFaults counts streams ended because the peer broke the protocol:
	// a frame too large, malformed or too slow.
	PeerFaults int64
}

type serverCounters struct {
	have, ranges, browses, throttled, busy, peerFaults atomic.Int64
}

// ServerOption tunes a Server.
type ServerOption func(*Server)

// WithLogger makes the server log to l. A peer's misbehaviour is logged at
// Debug. The default discards logs.
func WithLogger(l *slog.Logger) ServerOption {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithUploadLimiter limits the bytes all streams of the server send
// together, and with anything else that shares l. nil means no limit, the
// default.
func WithUploadLimiter(l *RateLimiter) ServerOption {
	return func(s *Server) { s.limiter = l }
}

// WithIdleTimeout closes a stream on which no byte moved either way for d.
// Zero or less disables it; the default is IdleTimeoutSeconds.
func WithIdleTimeout(d time.Duration) ServerOption {
	return func(s *Server) { s.idle = d }
}

// WithFrameTimeout sets the time a request frame may take from its first
// byte to its last (ServerFrameTimeout by default; zero or less disables
// it). It needs streams with a SetReadDeadline method.
func WithFrameTimeout(d time.Duration) ServerOption {
	return func(s *Server) { s.frameTimeout = d }
}

// WithPipelineDepth sets how many requests a stream reads ahead of the one
// it answers, between 1 and the default, MaxPipelinedRequests.
func WithPipelineDepth(n int) ServerOption {
	return func(s *Server) { s.pipeline = min(max(n, 1), MaxPipelinedRequests) }
}

// NewServer returns a server of the files in c.
func NewServer(c Catalog, opts ...ServerOption) *Server {
	s := &Server{
		catalog:      c,
		log:          slog.New(slog.DiscardHandler),
		idle:         IdleTimeoutSeconds * time.Second,
		frameTimeout: ServerFrameTimeout,
		pipeline:     MaxPipelinedRequests,
		openFiles:    MaxOpenFilesPerStream,
		rates:        map[string]*peerRates{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Stats returns what the server did so far.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Have: s.stats.have.Load(), Ranges: s.stats.ranges.Load(), Browses: s.stats.browses.Load(),
		Throttled: s.stats.throttled.Load(), Busy: s.stats.busy.Load(), PeerFaults: s.stats.peerFaults.Load(),
	}
}

// memoryPriority is the priority of a served stream's reservations: they
// may take a scope's memory until it is 80% full (libp2p's
// ReservationPriorityHigh).
const memoryPriority = 204

// chunkPool holds ServeChunkSize buffers; a stream takes one for each range
// it writes.
var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, ServeChunkSize)
	return &b
}}

// Serve answers the requests of one share stream, in order, until the peer
// closes its side, an error, the idle timeout or the end of ctx; it then
// closes rwc, or resets it if it has a Reset method and the stream broke.
// scope says who the peer is and so what it may see. Serve blocks until
// every goroutine it started has stopped; it returns nil when the peer
// closed the stream cleanly after its last request. It is ServeStream with
// no StreamInfo.
//
// A peer may pipeline requests: up to the pipeline depth are read ahead of
// the one being answered, the rest wait in the stream. A request for a file
// that does not exist, or that is not shared in scope, is answered
// CodeNotFound either way. A malformed request is answered CodeBadRequest
// and ends the stream; a request type this version does not know is
// answered CodeUnknownRequest and the stream goes on. A request frame over
// MaxRequestSize, or slower than the frame timeout, ends the stream. A
// request beyond its peer's rate waits for its turn.
func (s *Server) Serve(ctx context.Context, rwc io.ReadWriteCloser, scope Scope) error {
	return s.ServeStream(ctx, rwc, scope, StreamInfo{})
}

// ServeStream is Serve for a stream of which info says who sent it and
// where its buffers are charged. If info.Memory refuses ServeStreamMemory,
// the stream is reset at once.
func (s *Server) ServeStream(ctx context.Context, rwc io.ReadWriteCloser, scope Scope, info StreamInfo) error {
	switch scope {
	case ScopeFriend, ScopeAnonymous, ScopeLocal:
	default:
		rwc.Close()
		return fmt.Errorf("serving share stream: unknown scope %d", scope)
	}
	if info.Memory != nil {
		if err := info.Memory.ReserveMemory(ServeStreamMemory, memoryPriority); err != nil {
			s.stats.busy.Add(1)
			resetStream(rwc)
			return fmt.Errorf("serving share stream: %w: %w", frame.ErrNoMemory, err)
		}
		defer info.Memory.ReleaseMemory(ServeStreamMemory)
	}
	rates := s.acquireRates(info.Peer)
	defer s.releaseRates(rates)
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	c := &serverConn{s: s, scope: scope, rwc: rwc, mem: info.Memory, rates: rates}
	c.rw = activityRW{rw: rwc, n: &c.activity}
	c.q = newSendQueue(LimitWriter(ctx, c.rw, s.limiter), c.releaseChunk)
	c.w = newWriter(c.q, ServerWriteBuffer)

	reqs := make(chan request, s.pipeline)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.watch(ctx, parent)
	}()
	go func() {
		defer wg.Done()
		defer close(reqs)
		c.readRequests(ctx, reqs)
	}()
	werr := c.answer(ctx, reqs)
	if qerr := c.q.close(); werr == nil {
		werr = qerr
	}
	if werr != nil {
		c.reset.Store(true)
	}
	parentErr := context.Cause(ctx) // nil unless the caller ended ctx
	cancel()                        // the watchdog closes rwc, which stops the reader
	wg.Wait()
	c.release()

	switch {
	case c.idle.Load():
		return fmt.Errorf("serving share stream: %w", ErrStreamIdle)
	case parentErr != nil:
		return fmt.Errorf("serving share stream: %w", parentErr)
	case werr != nil:
		return fmt.Errorf("serving share stream: %w", werr)
	case c.readErr != nil && c.readErr != io.EOF:
		return fmt.Errorf("serving share stream: %w", c.readErr)
	}
	return nil
}

// resetStream resets rwc if it can be reset, else closes it.
func resetStream(rwc io.ReadWriteCloser) {
	if r, ok := rwc.(interface{ Reset() error }); ok {
		r.Reset()
		return
	}
	rwc.Close()
}

// peerRates are the request rates of one peer, shared by its streams.
type peerRates struct {
	peer                 string
	streams              int       // streams being served; guarded by Server.ratesMu
	last                 time.Time // when the last stream ended; guarded by Server.ratesMu
	browse, have, ranges *rate.Limiter
}

func newPeerRates(peer string) *peerRates {
	return &peerRates{
		peer:   peer,
		browse: rate.NewLimiter(BrowseRate, BrowseBurst),
		have:   rate.NewLimiter(HaveRate, HaveBurst),
		ranges: rate.NewLimiter(RangeRate, RangeBurst),
	}
}

// acquireRates returns the rates of peer for one more stream, and forgets
// those of peers without a stream for peerRatesKeep.
func (s *Server) acquireRates(peer string) *peerRates {
	if peer == "" {
		return newPeerRates("")
	}
	s.ratesMu.Lock()
	defer s.ratesMu.Unlock()
	now := time.Now()
	for k, r := range s.rates {
		if r.streams == 0 && now.Sub(r.last) > peerRatesKeep {
			delete(s.rates, k)
		}
	}
	r := s.rates[peer]
	if r == nil {
		r = newPeerRates(peer)
		s.rates[peer] = r
	}
	r.streams++
	return r
}

func (s *Server) releaseRates(r *peerRates) {
	if r.peer == "" {
		return
	}
	s.ratesMu.Lock()
	r.streams--
	r.last = time.Now()
	s.ratesMu.Unlock()
}

// wait waits for the turn of a request of type msg, or for ctx.
func (c *serverConn) wait(ctx context.Context, msg Message) error {
	var l *rate.Limiter
	switch msg.(type) {
	case Browse:
		l = c.rates.browse
	case GetRange:
		l = c.rates.ranges
	default:
		l = c.rates.have
	}
	if l.Allow() {
		return nil
	}
	c.s.stats.throttled.Add(1)
	return l.Wait(ctx)
}

// request is one request read from a stream, for the answering loop.
type request struct {
	id   uint64
	msg  Message   // Have, GetRange or Browse; nil to answer with code
	code ErrorCode // the error to answer when msg is nil
	text string
}

// serverConn is the state of one served stream. The reader goroutine owns
// readErr until it closes the request channel; the answering loop owns
// everything else but the atomics.
type serverConn struct {
	s     *Server
	scope Scope
	rwc   io.ReadWriteCloser
	mem   frame.MemoryScope // nil: not accounted
	rates *peerRates
	rw    activityRW
	q     *sendQueue // writes what w gathers, and range data
	w     *Writer

	activity atomic.Uint64 // bumped by every read and write on rwc
	idle     atomic.Bool   // the watchdog closed the stream for idleness
	reset    atomic.Bool   // close with Reset: the stream broke

	readErr error

	files []*openFile // most recently used first
	proof []byte
}

// openFile is a file a stream has open, with what the catalog said of it.
type openFile struct {
	root    [32]byte
	sf      SharedFile
	f       *os.File
	checked time.Time // of the last catalog lookup
}

// activityRW counts reads and writes, for the idle watchdog.
type activityRW struct {
	rw io.ReadWriter
	n  *atomic.Uint64
}

func (a activityRW) Read(p []byte) (int, error) {
	n, err := a.rw.Read(p)
	a.n.Add(1)
	return n, err
}

func (a activityRW) Write(p []byte) (int, error) {
	n, err := a.rw.Write(p)
	a.n.Add(1)
	return n, err
}

// watch closes the stream when ctx ends, or earlier when no byte has moved
// for the idle timeout; closing unblocks the reader and the writer. When the
// caller ended parent (the node shuts down) the stream is reset: a graceful
// close does not unblock a write stuck on a peer that stopped reading.
func (c *serverConn) watch(ctx, parent context.Context) {
	defer func() {
		if parent.Err() != nil {
			c.reset.Store(true)
		}
		c.closeStream()
	}()
	if c.s.idle <= 0 {
		<-ctx.Done()
		return
	}
	// Two quiet ticks of half the timeout in a row: idle for between one
	// and one and a half timeouts.
	t := time.NewTicker(c.s.idle / 2)
	defer t.Stop()
	last, quiet := c.activity.Load(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := c.activity.Load(); n != last {
			last, quiet = n, 0
			continue
		}
		if quiet++; quiet >= 2 {
			c.idle.Store(true)
			c.reset.Store(true)
			return
		}
	}
}

func (c *serverConn) closeStream() {
	if c.reset.Load() {
		resetStream(c.rwc)
		return
	}
	c.rwc.Close()
}

// readRequests reads requests into reqs until the stream ends, a malformed
// frame, or ctx ends. A frame that breaks the protocol (too large,
// malformed, too slow) resets the stream once what was read is answered.
func (c *serverConn) readRequests(ctx context.Context, reqs chan<- request) {
	d, _ := c.rwc.(frame.Deadliner)
	r := newReader(c.rw, ServerReadBuffer, MaxRequestSize, frame.Options{
		FrameTimeout: c.s.frameTimeout, Deadliner: d, Memory: c.mem,
	})
	defer r.close()
	for {
		f, err := r.ReadFrame()
		if err != nil && frame.IsPeerFault(err) {
			c.s.stats.peerFaults.Add(1)
			c.reset.Store(true)
			c.s.log.Debug("share peer broke the protocol", slog.Any("err", err))
		}
		req, stop := request{id: f.ID}, false
		switch {
		case err == nil:
			switch f.Msg.(type) {
			case Have, GetRange, Browse:
				req.msg = f.Msg
			default:
				req.code, req.text = CodeUnknownRequest, "not a request"
			}
		case errors.Is(err, ErrUnknownMessage):
			req.code = CodeUnknownRequest
		case errors.Is(err, ErrBadMessage), errors.Is(err, ErrMessageTooLarge):
			req.code, req.text, stop = CodeBadRequest, err.Error(), true
			c.readErr = err
		default:
			c.readErr = err
			return
		}
		select {
		case reqs <- req:
		case <-ctx.Done():
			return
		}
		if stop {
			return
		}
	}
}

// answer answers requests in order until reqs is closed or a write fails.
func (c *serverConn) answer(ctx context.Context, reqs <-chan request) error {
	for req := range reqs {
		if err := c.wait(ctx, req.msg); err != nil {
			return nil // ctx ended
		}
		var err error
		switch m := req.msg.(type) {
		case Have:
			c.s.stats.have.Add(1)
			err = c.have(req.id, m)
		case GetRange:
			c.s.stats.ranges.Add(1)
			err = c.getRange(req.id, m)
		case Browse:
			c.s.stats.browses.Add(1)
			err = c.browse(req.id, m)
		default:
			c.s.log.Debug("share request refused", slog.Uint64("id", req.id), slog.String("code", req.code.String()), slog.String("why", req.text))
			err = c.fail(req.id, req.code, req.text)
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// fail answers request id with an error.
func (c *serverConn) fail(id uint64, code ErrorCode, msg string) error {
	return c.w.WriteFrame(Frame{ID: id, Msg: ErrorReply{Code: code, Message: msg}})
}

func (c *serverConn) have(id uint64, m Have) error {
	of, refusal := c.file(m.Root)
	if refusal != nil {
		if ok, err := c.extraHave(id, m.Root); ok { // server_extra.go
			return err
		}
		return c.fail(id, refusal.Code, refusal.Message)
	}
	return c.w.WriteFrame(Frame{ID: id, Msg: HaveReply{Size: of.sf.Tree.Size, Complete: true}})
}

// getRange sends the proof and data of a range. The first chunk of data is
// read before anything is sent, so a file that turns out short is refused
// cleanly; if it comes up short after that, in the middle of a reply larger
// than a chunk, the stream can only break.
func (c *serverConn) getRange(id uint64, m GetRange) error {
	of, refusal := c.file(m.Root)
	if refusal != nil {
		if ok, err := c.extraRange(id, m); ok { // server_extra.go
			return err
		}
		return c.fail(id, refusal.Code, refusal.Message)
	}
	size := of.sf.Tree.Size
	if err := CheckRange(size, m.First, m.Count); err != nil {
		return c.fail(id, CodeBadRequest, err.Error())
	}
	proof, err := of.sf.Tree.AppendProof(c.proof[:0], m.First, m.Count)
	if err != nil {
		c.s.log.Info("cannot serve file: rescan the share", slog.String("path", of.sf.Path), slog.Any("err", err))
		return c.fail(id, CodeInternal, "bad outboard")
	}
	c.proof = proof
	cp, busy, err := c.q.takeChunk(c.reserveChunk)
	if err != nil {
		return err
	}
	if busy {
		c.s.stats.busy.Add(1)
		return c.fail(id, CodeBusy, "no memory for a range now")
	}
	defer c.q.endRange()
	off, n := m.First*GroupSize, RangeDataSize(size, m.First, m.Count)
	k := min(n, int64(len(*cp)))
	if _, err := of.f.ReadAt((*cp)[:k], off); err != nil {
		c.q.putChunk(cp)
		c.s.log.Debug("reading shared file", slog.String("path", of.sf.Path), slog.Any("err", err))
		c.drop(of)
		return c.fail(id, CodeNotFound, msgFileChanged)
	}

	if err := c.writeRangeHead(id, m, proof, n); err != nil {
		c.q.putChunk(cp)
		return err
	}
	// The queue writes each chunk while the next is read from the file.
	for done := int64(0); ; {
		if err := c.q.sendChunk(cp, k); err != nil {
			return fmt.Errorf("writing range data: %w", err)
		}
		if done += k; done == n {
			return nil
		}
		// The range's first chunk is kept until endRange: this never
		// finds the scope full with no chunk to wait for.
		if cp, _, err = c.q.takeChunk(c.reserveChunk); err != nil || cp == nil {
			return fmt.Errorf("writing range data: %w", cmp.Or(err, errNoChunk))
		}
		k = min(n-done, int64(len(*cp)))
		if _, err := of.f.ReadAt((*cp)[:k], off+done); err != nil {
			c.q.putChunk(cp)
			c.drop(of)
			return fmt.Errorf("reading %s: %w", of.sf.Path, err)
		}
	}
}

// writeRangeHead writes and flushes a range reply's header and proof;
// its n bytes of data follow through the send queue.
func (c *serverConn) writeRangeHead(id uint64, m GetRange, proof []byte, n int64) error {
	w := c.w
	if err := w.writeNoFlush(Frame{ID: id, Msg: RangeReply{First: m.First, Count: m.Count, ProofLen: len(proof), DataLen: n}}); err != nil {
		return err
	}
	if _, err := w.bw.Write(proof); err != nil {
		return fmt.Errorf("writing range proof: %w", err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing range proof: %w", err)
	}
	return nil
}

func (c *serverConn) browse(id uint64, m Browse) error {
	if c.scope != ScopeFriend {
		return c.fail(id, CodeNotFound, "")
	}
	reply, err := c.s.catalog.Browse(m.Path, m.Offset)
	if err != nil {
		c.s.log.Debug("browse refused", slog.String("path", m.Path), slog.Any("err", err))
		return c.fail(id, CodeNotFound, "")
	}
	if len(reply.Entries) > MaxBrowseEntries {
		reply.Entries, reply.More = reply.Entries[:MaxBrowseEntries], true
	}
	// A name the peer would refuse would fail the whole listing: leave it
	// out. The catalog should not list such names in the first place.
	if slices.ContainsFunc(reply.Entries, badEntry) {
		reply.Entries = slices.DeleteFunc(slices.Clone(reply.Entries), badEntry)
		c.s.log.Debug("browse entries left out", slog.String("path", m.Path))
	}
	err = c.w.WriteFrame(Frame{ID: id, Msg: reply})
	if errors.Is(err, ErrMessageTooLarge) {
		return c.fail(id, CodeInternal, "listing too large")
	}
	return err
}

// badEntry reports whether e would make a peer refuse a BrowseReply.
func badEntry(e Entry) bool {
	return CheckName(e.Name) != nil || e.Size < 0 || e.Size > MaxFileSize || (e.Dir && e.Size != 0)
}

// file returns the open file with root, opening it and caching it for the
// stream; or the refusal to answer with. It checks the file against the
// catalog's size and mtime on every call (one fstat) and the catalog itself
// every fileRecheck.
func (c *serverConn) file(root [32]byte) (*openFile, *ErrorReply) {
	now := time.Now()
	var of *openFile
	for i, f := range c.files {
		if f.root == root {
			of = f
			copy(c.files[1:i+1], c.files[:i])
			c.files[0] = of
			break
		}
	}
	if of != nil && now.Sub(of.checked) > fileRecheck {
		sf, ok := c.s.catalog.Lookup(root, c.scope)
		if !ok || sf.Path != of.sf.Path || !sf.ModTime.Equal(of.sf.ModTime) || sf.Tree.Size != of.sf.Tree.Size {
			c.drop(of)
			of = nil
		} else {
			of.sf, of.checked = sf, now
		}
	}
	if of == nil {
		sf, ok := c.s.catalog.Lookup(root, c.scope)
		if !ok || sf.Tree.Root != root {
			return nil, &ErrorReply{Code: CodeNotFound}
		}
		f, err := openShared(sf)
		if err != nil {
			c.s.log.Debug("opening shared file", slog.String("path", sf.Path), slog.Any("err", err))
			return nil, &ErrorReply{Code: CodeNotFound, Message: msgFileChanged}
		}
		of = &openFile{root: root, sf: sf, f: f, checked: now}
		if len(c.files) >= c.s.openFiles {
			c.drop(c.files[len(c.files)-1])
		}
		c.files = append([]*openFile{of}, c.files...)
	}
	fi, err := of.f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != of.sf.Tree.Size || !fi.ModTime().Equal(of.sf.ModTime) {
		c.s.log.Debug("shared file changed since indexing", slog.String("path", of.sf.Path))
		c.drop(of)
		return nil, &ErrorReply{Code: CodeNotFound, Message: msgFileChanged}
	}
	return of, nil
}

// openShared opens sf's file beneath its share folder, following no
// symlink (see openInShare).
func openShared(sf SharedFile) (*os.File, error) {
	if sf.Dir == "" {
		return openInShare(filepath.Dir(sf.Path), filepath.Base(sf.Path))
	}
	return openInShare(sf.Dir, sf.Rel)
}

// drop closes of and forgets it.
func (c *serverConn) drop(of *openFile) {
	for i, f := range c.files {
		if f == of {
			c.files = append(c.files[:i], c.files[i+1:]...)
			break
		}
	}
	of.f.Close()
}

// reserveChunk charges a data chunk to the stream's memory scope; it
// reports false if the scope refused it.
func (c *serverConn) reserveChunk() bool {
	if c.mem != nil {
		if err := c.mem.ReserveMemory(ServeChunkSize, memoryPriority); err != nil {
			c.s.log.Debug("no memory for a share range", slog.Any("err", err))
			return false
		}
	}
	return true
}

// releaseChunk gives back a chunk that reserveChunk charged.
func (c *serverConn) releaseChunk(p *[]byte) {
	chunkPool.Put(p)
	if c.mem != nil {
		c.mem.ReleaseMemory(ServeChunkSize)
	}
}

// release closes the stream's files.
func (c *serverConn) release() {
	for _, of := range c.files {
		of.f.Close()
	}
	c.files = nil
}
