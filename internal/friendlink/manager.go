package friendlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"kith/internal/frame"
)

// Friends is what a Manager asks about the peers it links to:
// f2f.Friends implements it. Its methods are called from the Manager's
// goroutines and must not block for long.
type Friends interface {
	IsFriend(peer.ID) bool
	IDs() []peer.ID
}

// Handler is the owner's side of one link, made by Config.Up.
type Handler[M any] interface {
	// Serve reads the friend's frames from r until reading fails or the
	// friend breaks the protocol, and returns the error that ended it
	// (io.EOF or nil for a clean end). It runs in the link's reader
	// goroutine, one call per link, so the frames of one link are handled
	// one at a time and in order. An error for which frame.IsPeerFault or
	// Config.PeerFault holds is a fault: the misbehaviour policy applies.
	// Serve should return soon once the link is stopped: its reads then
	// fail.
	Serve(r *frame.Reader) error
	// Written is called by the link's writer after a message given to
	// Send went out on the stream (not for SendEncoded bytes). It runs in
	// the writer goroutine and must not block.
	Written(m M)
	// Down is called once, in the reader goroutine, after the link's
	// reader and writer ended and the Manager forgot the link; a
	// replacement link of the same friend may be up already (its Up came
	// first). Down may block briefly; Close waits for it.
	Down()
}

// Config configures a Manager. Host, Friends, Protocol, Up, Encode, Size,
// MaxFrame, Queue and QueueBytes are required; zero durations and
// MaxInbound take the package defaults.
type Config[M any] struct {
	// Host is the libp2p host whose connections carry the links.
	Host host.Host
	// Friends says which peers may have a link.
	Friends Friends
	// Protocol is the links' protocol; the Manager registers its stream
	// handler.
	Protocol protocol.ID
	// Log receives the Manager's events; nil discards them.
	Log *slog.Logger

	// Up makes the Handler of a link that just came up, before the link's
	// goroutines start; it may Send on l. It is called from the
	// Manager's goroutines (a stream handler, an opener), one call at a
	// time, in the order the links were accepted, so a friend's
	// replacement link is up after the link it replaces. It may call the
	// Manager's methods but Close, and must not block for long.
	Up func(l *Link[M]) Handler[M]
	// Encode appends m, with its length prefix, to dst and returns the
	// extended slice. It runs in the link's writer goroutine. On error dst
	// is not written and the message is dropped (logged at Debug): it is
	// the owner's bug, not the friend's.
	Encode func(dst []byte, m M) ([]byte, error)
	// Size returns at least the bytes Encode appends for m, what the send
	// queue charges for it. It is called by Send, from any goroutine.
	Size func(m M) int
	// PeerFault reports whether an error Serve returned means the friend
	// broke the protocol, besides frame.IsPeerFault: the owner's own
	// protocol errors. nil means only framing faults count.
	PeerFault func(error) bool

	// MaxFrame caps the frames the reader accepts, in bytes.
	MaxFrame int
	// Queue caps the messages queued for one link and not written yet;
	// QueueBytes caps what they are charged.
	Queue      int
	QueueBytes int
	// MaxInbound caps the inbound streams of Protocol one friend may have
	// open at once; 0 means DefaultMaxInbound.
	MaxInbound int

	// Retry is how often links to connected friends that have none are
	// (re)opened; 0 means DefaultRetry.
	Retry time.Duration
	// OpenTimeout bounds opening a link's stream; 0 means
	// DefaultOpenTimeout.
	OpenTimeout time.Duration
	// WriteTimeout bounds each write to a link; 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// FrameTimeout bounds the time from a frame's first byte to its last;
	// 0 means DefaultFrameTimeout.
	FrameTimeout time.Duration

	// Tap, if set, sees the raw bytes read from (in) or written to (!in)
	// each link's stream, for byte counters and tests. It is called from
	// the links' goroutines, many at once, and must not keep b or block.
	Tap func(p peer.ID, in bool, b []byte)

	// pause replaces FaultPause in this package's tests.
	pause time.Duration
}

// Stats counts what a Manager refused and dropped.
type Stats struct {
	// Faults counts links reset because the friend broke the protocol.
	Faults uint64
	// QueueDrops counts messages dropped on a full send queue (or refused
	// memory by the resource manager).
	QueueDrops uint64
	// Refused counts inbound streams reset before they became a link: not
	// from a friend, over MaxInbound, from a paused friend, or losing to
	// the other side's stream.
	Refused uint64
}

// Manager keeps one link per connected friend on one protocol (see the
// package documentation). Its methods are safe for concurrent use.
type Manager[M any] struct {
	cfg    Config[M]
	self   peer.ID
	log    *slog.Logger
	sub    event.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	// upMu makes addLink one at a time, so Up calls come in the order the
	// links were registered. Taken before mu.
	upMu sync.Mutex

	mu      sync.Mutex
	closing bool
	links   map[peer.ID]*Link[M]
	dialing map[peer.ID]bool
	paused  map[peer.ID]time.Time // friends that broke the protocol, until
	inbound map[peer.ID]int       // inbound streams held per friend

	faults  atomic.Uint64
	drops   atomic.Uint64
	refused atomic.Uint64
}

// New starts a Manager: it registers cfg.Protocol's stream handler,
// watches the host's event bus and opens links to connected friends. It
// does not block.
func New[M any](cfg Config[M]) (*Manager[M], error) {
	switch {
	case cfg.Host == nil || cfg.Friends == nil || cfg.Protocol == "":
		return nil, errors.New("starting friend links: no host, friends or protocol")
	case cfg.Up == nil || cfg.Encode == nil || cfg.Size == nil:
		return nil, fmt.Errorf("starting %s links: no Up, Encode or Size", cfg.Protocol)
	case cfg.MaxFrame <= 0 || cfg.Queue <= 0 || cfg.QueueBytes <= 0:
		return nil, fmt.Errorf("starting %s links: MaxFrame, Queue and QueueBytes must be set", cfg.Protocol)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	orDefault(&cfg.MaxInbound, DefaultMaxInbound)
	orDefault(&cfg.Retry, DefaultRetry)
	orDefault(&cfg.OpenTimeout, DefaultOpenTimeout)
	orDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	orDefault(&cfg.FrameTimeout, DefaultFrameTimeout)
	orDefault(&cfg.pause, FaultPause)
	sub, err := cfg.Host.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return nil, fmt.Errorf("starting %s links: %w", cfg.Protocol, err)
	}
	m := &Manager[M]{
		cfg: cfg, self: cfg.Host.ID(), log: cfg.Log, sub: sub,
		links:   make(map[peer.ID]*Link[M]),
		dialing: make(map[peer.ID]bool),
		paused:  make(map[peer.ID]time.Time),
		inbound: make(map[peer.ID]int),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	cfg.Host.SetStreamHandler(cfg.Protocol, m.handleStream)
	m.wg.Add(1)
	go m.loop()
	return m, nil
}

// orDefault sets *v to d if it is not positive.
func orDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Close removes the stream handler, stops every link and waits for the
// Manager's goroutines, the Handlers' Down calls included. It is safe to
// call more than once; it must not be called from a Handler or from Up.
func (m *Manager[M]) Close() error {
	m.once.Do(func() {
		m.cfg.Host.RemoveStreamHandler(m.cfg.Protocol)
		m.mu.Lock()
		m.closing = true
		links := make([]*Link[M], 0, len(m.links))
		for _, l := range m.links {
			links = append(links, l)
		}
		m.mu.Unlock()
		m.cancel()
		m.sub.Close()
		for _, l := range links {
			l.Stop()
		}
		m.wg.Wait()
	})
	return nil
}

// Stats returns the Manager's counters. It does not block.
func (m *Manager[M]) Stats() Stats {
	return Stats{Faults: m.faults.Load(), QueueDrops: m.drops.Load(), Refused: m.refused.Load()}
}

// Paused reports whether friend p is refused links for a fault it made
// less than FaultPause ago.
func (m *Manager[M]) Paused(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pausedLocked(p, time.Now())
}

// Opener reports whether self opens the link to p: the lower peer ID
// does, so each pair of friends has one link per protocol.
func Opener(self, p peer.ID) bool { return self < p }

func (m *Manager[M]) pausedLocked(p peer.ID, now time.Time) bool {
	until, ok := m.paused[p]
	return ok && now.Before(until)
}

// loop watches friends connect and disconnect and retries links.
func (m *Manager[M]) loop() {
	defer m.wg.Done()
	retry := time.NewTicker(m.cfg.Retry)
	defer retry.Stop()
	m.poke()
	for {
		select {
		case <-m.ctx.Done():
			return
		case ev, ok := <-m.sub.Out():
			if !ok {
				return
			}
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				m.maybeOpen(e.Peer)
			case event.EvtPeerConnectednessChanged:
				if e.Connectedness != network.Connected {
					m.mu.Lock()
					l := m.links[e.Peer]
					m.mu.Unlock()
					if l != nil {
						l.Stop()
					}
				}
			}
		case now := <-retry.C:
			m.mu.Lock()
			for p, until := range m.paused {
				if !now.Before(until) {
					delete(m.paused, p)
				}
			}
			m.mu.Unlock()
			m.poke()
		}
	}
}

// poke opens links to every connected friend that has none.
func (m *Manager[M]) poke() {
	for _, p := range m.cfg.Friends.IDs() {
		if m.cfg.Host.Network().Connectedness(p) == network.Connected {
			m.maybeOpen(p)
		}
	}
}

// maybeOpen opens the link to friend p if this side opens it, there is
// none, none is being opened and p is not paused.
func (m *Manager[M]) maybeOpen(p peer.ID) {
	if p == m.self || !Opener(m.self, p) || !m.cfg.Friends.IsFriend(p) {
		return
	}
	m.mu.Lock()
	if m.closing || m.links[p] != nil || m.dialing[p] || m.pausedLocked(p, time.Now()) {
		m.mu.Unlock()
		return
	}
	m.dialing[p] = true
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.dialing, p)
			m.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(m.ctx, m.cfg.OpenTimeout)
		defer cancel()
		s, err := m.cfg.Host.NewStream(network.WithNoDial(ctx, "friend links go to connected friends"), p, m.cfg.Protocol)
		if err != nil {
			m.log.Debug("opening link", m.attrs(p, slog.Any("err", err))...)
			return
		}
		m.addLink(s, false)
	}()
}

// handleStream takes a friend's inbound stream as its link, unless the
// friend is paused or has MaxInbound streams already.
func (m *Manager[M]) handleStream(s network.Stream) {
	p := s.Conn().RemotePeer()
	why := ""
	if !m.cfg.Friends.IsFriend(p) {
		why = "not a friend"
	} else {
		m.mu.Lock()
		switch {
		case m.closing:
			why = "closing"
		case m.pausedLocked(p, time.Now()):
			why = "paused after a protocol fault"
		case m.inbound[p] >= m.cfg.MaxInbound:
			why = "over the friend's inbound streams"
		default:
			m.inbound[p]++
		}
		m.mu.Unlock()
	}
	if why != "" {
		m.refused.Add(1)
		m.log.Debug("refusing a link stream", m.attrs(p, slog.String("why", why))...)
		s.Reset()
		return
	}
	m.addLink(s, true)
}

// addLink makes s the link of its peer, unless the Manager is closing,
// the friend is paused, or a link is up and s is not the stream of the
// lower peer ID; then s is reset. counted says s holds one of the
// friend's inbound slots, given back when the link ends.
func (m *Manager[M]) addLink(s network.Stream, counted bool) {
	p := s.Conn().RemotePeer()
	outbound := s.Stat().Direction == network.DirOutbound
	m.upMu.Lock()
	defer m.upMu.Unlock()
	m.mu.Lock()
	old := m.links[p]
	if m.closing || m.pausedLocked(p, time.Now()) || (old != nil && outbound != Opener(m.self, p)) {
		m.mu.Unlock()
		m.refuse(s, p, counted)
		return
	}
	l := newLink(m, p, s, counted)
	m.links[p] = l
	m.wg.Add(2)
	m.mu.Unlock()
	l.h = m.cfg.Up(l)
	go l.writeLoop()
	go l.readLoop()
	if old != nil {
		old.Stop()
	}
	m.log.Debug("link up", m.attrs(p)...)
}

// refuse resets s, which did not become a link, and gives back its
// inbound slot.
func (m *Manager[M]) refuse(s network.Stream, p peer.ID, counted bool) {
	if counted {
		m.refused.Add(1)
		m.mu.Lock()
		m.releaseInboundLocked(p)
		m.mu.Unlock()
	}
	s.Reset()
}

func (m *Manager[M]) releaseInboundLocked(p peer.ID) {
	if m.inbound[p]--; m.inbound[p] <= 0 {
		delete(m.inbound, p)
	}
}

// remove forgets l once its goroutines ended.
func (m *Manager[M]) remove(l *Link[M]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.links[l.peer] == l {
		delete(m.links, l.peer)
	}
	if l.counted {
		m.releaseInboundLocked(l.peer)
	}
}

// fault applies the misbehaviour policy to l, whose read ended with err:
// counted, logged at Info, and the friend paused. The caller resets the
// link.
func (m *Manager[M]) fault(l *Link[M], err error) {
	m.faults.Add(1)
	m.mu.Lock()
	m.paused[l.peer] = time.Now().Add(m.cfg.pause)
	m.mu.Unlock()
	m.log.Info("friend broke the protocol: link reset, refused for a while",
		m.attrs(l.peer, slog.Duration("pause", m.cfg.pause), slog.Any("err", err))...)
}

func (m *Manager[M]) attrs(p peer.ID, more ...any) []any {
	return append([]any{slog.String("protocol", string(m.cfg.Protocol)), slog.String("peer", p.ShortString())}, more...)
}
