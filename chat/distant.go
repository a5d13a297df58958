package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"kith/tunnels"
)

// Tunnels is what distant chat needs of the turtle router:
// *tunnels.Router implements it.
type Tunnels interface {
	RequestTunnels(ctx context.Context, target [32]byte, n int) ([]io.ReadWriteCloser, error)
}

// ErrNoTunnels means distant chat has no router to make tunnels with.
var ErrNoTunnels = errors.New("no tunnel router")

// DistantEvent is the data of a "distant.message" event: a message of
// the conversation between Local, one of this node's identities, and
// Remote.
type DistantEvent struct {
	Local   ChatID  `json:"local"`
	Remote  ChatID  `json:"remote"`
	Message Message `json:"message"`
	// Request is set for a message of a request (an identity the user
	// has not answered nor accepted).
	Request bool `json:"request,omitempty"`
}

// DistantDeliveredEvent is the data of a "distant.delivered" event.
type DistantDeliveredEvent struct {
	Local  ChatID  `json:"local"`
	Remote ChatID  `json:"remote"`
	IDs    []MsgID `json:"ids"`
}

// distant returns the identities of a distant conversation.
func (c convKey) distant() (local, remote ChatID, ok bool) {
	if len(c) != 1+2*len(ChatID{}) || c[0] != 'd' {
		return local, remote, false
	}
	copy(local[:], c[1:])
	copy(remote[:], c[1+len(ChatID{}):])
	return local, remote, true
}

func (s *Service) distantRoute(local Identity, remote ChatID) route {
	return route{
		dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			if s.cfg.Tunnels == nil {
				return nil, ErrNoTunnels
			}
			remoteKey, err := remote.X25519()
			if err != nil {
				return nil, err
			}
			// Each request travels a random depth (see package tunnels),
			// so a far identity may need a few before one reaches it.
			var raws []io.ReadWriteCloser
			for try := 0; ; try++ {
				raws, err = s.cfg.Tunnels.RequestTunnels(ctx, tunnels.TargetForChatID(remote[:]), 1)
				if err == nil {
					break
				}
				if try+1 >= DistantTunnelTries || ctx.Err() != nil {
					return nil, fmt.Errorf("reaching %s: %w", remote.Short(), err)
				}
			}
			for _, extra := range raws[1:] {
				extra.Close()
			}
			sess, err := tunnels.OpenChatSession(ctx, raws[0], local.DHKey(), remoteKey)
			if err != nil {
				return nil, fmt.Errorf("distant chat handshake: %w", err)
			}
			fw := newFrameWriter(sess)
			if err = fw.hello(local.ID); err == nil {
				err = fw.flush()
			}
			if err != nil {
				sess.Reset()
				return nil, fmt.Errorf("distant chat hello: %w", err)
			}
			return sess, nil
		},
		acked: func(ms []Message) {
			ev := DistantDeliveredEvent{Local: local.ID, Remote: remote}
			for _, m := range ms {
				ev.IDs = append(ev.IDs, m.ID)
			}
			s.stats.delivered.Add(uint64(len(ms)))
			s.e.events("distant.delivered", ev)
		},
	}
}

// SendDistant writes text from this node's identity as (see
// Identities.Resolve; "" is the default) to the chat identity to. The
// message enters the history and the outbox at once and leaves through a
// tunnel as soon as one can be made.
func (s *Service) SendDistant(as string, to ChatID, text string) (Message, error) {
	if err := CheckText(text); err != nil {
		return Message{}, err
	}
	local, err := s.ids.Resolve(as)
	if err != nil {
		return Message{}, err
	}
	if _, err := to.X25519(); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrBadChatID, err)
	}
	conv := distantConv(local.ID, to)
	m, _, err := s.e.hist.append(conv, Message{ID: NewMsgID(), Time: time.Now().UTC().Truncate(time.Millisecond), Out: true, Text: text})
	if err != nil {
		return Message{}, err
	}
	s.stats.queued.Add(1)
	s.e.events("distant.message", DistantEvent{Local: local.ID, Remote: to, Message: m})
	s.e.kick(conv, s.distantRoute(local, to), false)
	return m, nil
}

// DistantHistory returns a page of the history between this node's
// identity as and the chat identity remote: messages stored after
// sequence number after, bounded as History's.
func (s *Service) DistantHistory(as string, remote ChatID, after uint64, limit int) ([]Message, error) {
	local, err := s.ids.Resolve(as)
	if err != nil {
		return nil, err
	}
	return s.e.hist.list(distantConv(local.ID, remote), after, time.Time{}, limit)
}

// DistantHistoryBefore returns the page of that history that ends just
// before sequence number before (0: the newest page).
func (s *Service) DistantHistoryBefore(as string, remote ChatID, before uint64, limit int) ([]Message, error) {
	local, err := s.ids.Resolve(as)
	if err != nil {
		return nil, err
	}
	return s.e.hist.listBefore(distantConv(local.ID, remote), before, limit)
}

// DistantSummary returns the state of the conversation between this
// node's identity as and remote.
func (s *Service) DistantSummary(as string, remote ChatID) (Summary, error) {
	local, err := s.ids.Resolve(as)
	if err != nil {
		return Summary{}, err
	}
	return s.e.hist.summary(distantConv(local.ID, remote)), nil
}

// ErrNoConversation means there is no distant conversation between the
// identities named.
var ErrNoConversation = errors.New("no such distant conversation (`kith distant ls` and `kith distant requests` list them)")

// DistantConversation is a distant conversation: one of this node's
// identities and a chat identity, and its state. Summary.Request tells a
// request (from an identity never answered nor accepted) from an
// accepted conversation.
type DistantConversation struct {
	Local  ChatID `json:"local"`
	Remote ChatID `json:"remote"`
	Summary
}

// DistantConversations returns every distant conversation, requests
// included, most recent first.
func (s *Service) DistantConversations() ([]DistantConversation, error) {
	convs, err := s.e.hist.distantConvs()
	if err != nil {
		return nil, err
	}
	out := make([]DistantConversation, 0, len(convs))
	for c := range convs {
		local, remote, ok := c.distant()
		if !ok {
			continue
		}
		out = append(out, DistantConversation{Local: local, Remote: remote, Summary: s.e.hist.summary(c)})
	}
	stamp := func(d DistantConversation) time.Time {
		if d.Last == nil {
			return time.Time{}
		}
		return d.Last.Stored
	}
	slices.SortFunc(out, func(a, b DistantConversation) int {
		if c := stamp(b).Compare(stamp(a)); c != 0 {
			return c
		}
		return bytes.Compare(a.Remote[:], b.Remote[:])
	})
	return out, nil
}

// AcceptDistant accepts the request of remote to this node's identity
// as: its messages leave the requests' quota, and what its sender still
// holds comes in at its next try.
func (s *Service) AcceptDistant(as string, remote ChatID) error {
	local, err := s.ids.Resolve(as)
	if err != nil {
		return err
	}
	conv := distantConv(local.ID, remote)
	if s.e.hist.distantState(conv) == distantNone {
		return fmt.Errorf("%w: %s", ErrNoConversation, remote.Short())
	}
	return s.e.hist.accept(conv)
}

// DeleteDistant deletes the conversation between this node's identity
// as and remote: its history, its outbox and its state. If remote writes
// again, that is a new request.
func (s *Service) DeleteDistant(as string, remote ChatID) error {
	local, err := s.ids.Resolve(as)
	if err != nil {
		return err
	}
	conv := distantConv(local.ID, remote)
	if s.e.hist.distantState(conv) == distantNone && s.e.hist.summary(conv).Messages == 0 {
		return fmt.Errorf("%w: %s", ErrNoConversation, remote.Short())
	}
	return s.e.hist.clear(conv, false)
}

// AcceptsTarget reports whether target is the tunnel target of one of
// this node's chat identities. It makes Service a tunnels.Endpoint.
func (s *Service) AcceptsTarget(target [32]byte) bool {
	_, ok := s.identityForTarget(target)
	return ok
}

func (s *Service) identityForTarget(target [32]byte) (Identity, bool) {
	for _, id := range s.ids.List() {
		if tunnels.TargetForChatID(id.ID[:]) == target {
			return id, true
		}
	}
	return Identity{}, false
}

// ServeTunnel takes a tunnel opened to one of this node's identities: it
// runs the responder's Noise_XK handshake, checks the caller's Hello and
// serves its messages. It returns at once; the service owns rw. At most
// MaxDistantSessions are served at once, and Close waits for them.
func (s *Service) ServeTunnel(target [32]byte, rw io.ReadWriteCloser) {
	if !s.admit("", true) {
		abort(rw)
		return
	}
	if !s.e.track() {
		s.release("", true)
		abort(rw)
		return
	}
	go func() {
		defer s.e.wg.Done()
		defer s.release("", true)
		if err := s.serveDistant(target, rw); err != nil {
			if errors.Is(err, ErrBadFrame) {
				s.stats.streamsBroken.Add(1)
			}
			s.cfg.Log.Debug("distant chat session ended", slog.Any("err", err))
		}
	}()
}

// serveDistant serves one distant session. The caller's identity is
// known only after the handshake: sessions of identities not accepted
// are taken at DistantRequestSessionRate in all, and their messages only
// within the requests' quotas.
func (s *Service) serveDistant(target [32]byte, rw io.ReadWriteCloser) error {
	local, ok := s.identityForTarget(target)
	if !ok {
		abort(rw)
		return errors.New("tunnel to an identity this node no longer has")
	}
	if !s.handshakes.Allow() {
		s.stats.sessionsLimited.Add(1)
		abort(rw)
		return errors.New("distant handshakes over their rate")
	}
	mem := memoryOf(rw)
	hctx, cancel := context.WithTimeout(s.e.ctx, tunnels.HandshakeTimeout)
	sess, err := tunnels.AcceptChatSession(hctx, rw, local.DHKey())
	cancel()
	if err != nil {
		return fmt.Errorf("distant chat handshake: %w", err)
	}
	stop := context.AfterFunc(s.e.ctx, func() { sess.Reset() })
	defer stop()
	fr := newFrameReader(sess, mem)
	defer fr.close()
	sess.SetReadDeadline(time.Now().Add(StreamTimeout))
	first, err := fr.read()
	if err != nil || first.hello == nil {
		sess.Reset()
		return fmt.Errorf("%w: distant chat must start with hello", ErrBadFrame)
	}
	remote := *first.hello
	if want, err := remote.X25519(); err != nil || !bytes.Equal(want[:], sess.PeerStatic()) {
		sess.Reset()
		return fmt.Errorf("%w: hello names a chat id the handshake did not prove", ErrBadFrame)
	}
	sess.SetReadDeadline(time.Time{})
	conv := distantConv(local.ID, remote)
	state := s.e.hist.distantState(conv)
	if state != distantAccepted {
		// A fresh identity per session does not reset this rate: it is
		// the node's, not the identity's.
		if !s.requests.Allow() {
			s.stats.sessionsLimited.Add(1)
			sess.Close() // the sender keeps its messages and tries later
			return errors.New("distant request sessions over their rate")
		}
		if state == distantNone {
			if state, err = s.e.hist.openRequest(conv); err != nil {
				sess.Reset()
				return err
			}
			if state == distantNone {
				s.stats.refusedRequests.Add(1)
				sess.Close()
				return fmt.Errorf("%w: %d requests wait already", errRequestFull, MaxDistantRequests)
			}
		}
	}
	err = s.e.serveFrames(s.e.ctx, fr, sess, mem, receiver{
		conv:    conv,
		limit:   s.distantLimiter(remote),
		noHello: true,
		stored: func(m Message) {
			s.stats.received.Add(1)
			s.e.events("distant.message", DistantEvent{Local: local.ID, Remote: remote, Message: m,
				Request: state == distantRequest})
		},
		refused: s.refused,
	})
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

func (s *Service) distantLimiter(remote ChatID) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return peerLimiter(s.distantLimits, remote, MessagesPerSecond, MessageBurst)
}
