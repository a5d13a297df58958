package f2f

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"

	"kith/f2f/pb"
	"kith/internal/frame"
)

// Friendship in one step. `kith id --introduce` makes an invite that
// carries a one-time token: the private key of a fresh identity (the
// token's peer ID) and an expiry, signed with the rest of the invite. The
// inviter's Gater admits that peer ID, inbound only, until the token is
// used or expires, and the resource manager lets a connection of it open
// no stream but IntroduceProtocol (not even identify: it learns nothing
// of the inviter). Whoever adds the invite connects as the token's
// identity and sends its own invite with a signature of its node key
// binding it to this token and this inviter; the inviter adds it as a
// friend (or keeps it for the owner's approval), marks the token used,
// and answers. Both are then friends: the one who pasted the invite added
// the inviter before asking.
//
// Refused: a token that was used (the second key to present it, or the
// same one again), expired, or never issued (no gate lets it in: forged);
// an invite or binding that does not verify. A stranger without a token
// has no identity the gater admits, so it opens no stream at all.

// IntroduceProtocol is the protocol of one introduction exchange.
const IntroduceProtocol protocol.ID = "/kith/introduce/1"

// introSigDomain separates introduction bindings from any other use of a
// node key.
const introSigDomain = "kith-introduce:"

// Introduction errors.
var (
	// ErrIntroRefused: the inviter refused the introduction (its token
	// was used or expired, or it never issued it).
	ErrIntroRefused = errors.New("the introduction was refused: its token was used, expired or never issued; ask for a new invite (`kith id --introduce`), or exchange plain invites")
	// ErrIntroUnreachable: the inviter could not be reached directly to
	// introduce us.
	ErrIntroUnreachable = errors.New("could not reach the inviter directly to introduce you (an introduction does not go through relays): " +
		"exchange plain invites instead (`kith id` on both sides)")
	// ErrTooManyIntros: as many introduction tokens are open as allowed.
	ErrTooManyIntros = errors.New("too many open introduction invites: wait for one to be used or expire")
	// ErrNoSuchRequest: no pending introduction matches.
	ErrNoSuchRequest = errors.New("no such introduction request")
)

// Introduction outcomes, as the introduced node learns them.
const (
	IntroAccepted = "accepted"
	IntroPending  = "pending"
)

// Buckets of introductions in kith.db.
var (
	// bucketIntros maps a token's binary peer ID to a JSON introToken.
	bucketIntros = []byte("f2f.intros")
	// bucketIntroRequests maps an introduced node's binary peer ID to a
	// JSON IntroRequest waiting for approval.
	bucketIntroRequests = []byte("f2f.intro_requests")
)

type introToken struct {
	Expires time.Time `json:"expires"`
	Used    bool      `json:"used,omitempty"`
	UsedBy  string    `json:"used_by,omitempty"`
}

// IntroRequest is an introduction waiting for the owner's approval.
type IntroRequest struct {
	ID     peer.ID   `json:"-"`
	Name   string    `json:"name"`
	Invite string    `json:"invite"`
	At     time.Time `json:"at"`
}

// IntroStats counts introduction exchanges.
type IntroStats struct {
	Accepted, Pending, Refused uint64
}

// Introductions issues one-time introduction tokens and takes the
// introductions made with them. It is safe for concurrent use.
type Introductions struct {
	db      *bolt.DB
	friends *Friends
	log     *slog.Logger
	// Approve, when set, keeps introductions for the owner's approval
	// instead of adding the friend at once.
	approve atomic.Bool
	clock   atomic.Pointer[func() time.Time] // tests move it

	mu     sync.Mutex
	tokens map[peer.ID]introToken

	accepted, pending, refused atomic.Uint64
}

// OpenIntroductions loads the introduction tokens of db.
func OpenIntroductions(db *bolt.DB, friends *Friends, log *slog.Logger) (*Introductions, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The buckets are made on first use: a node that never introduces
	// keeps the database it had.
	in := &Introductions{db: db, friends: friends, log: log, tokens: map[peer.ID]introToken{}}
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIntros)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			id, err := peer.IDFromBytes(k)
			if err != nil {
				return nil // not ours to read; dropped at the next prune
			}
			var t introToken
			if json.Unmarshal(v, &t) == nil {
				in.tokens[id] = t
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading introductions: %w", err)
	}
	return in, nil
}

// SetApprove sets whether introductions wait for the owner's approval.
func (in *Introductions) SetApprove(on bool) { in.approve.Store(on) }

// Stats returns the counters of introduction exchanges.
func (in *Introductions) Stats() IntroStats {
	return IntroStats{Accepted: in.accepted.Load(), Pending: in.pending.Load(), Refused: in.refused.Load()}
}

// Issue makes a new one-time token valid for ttl and returns the seed of
// its key (for the invite) and its expiry.
func (in *Introductions) Issue(ttl time.Duration) ([]byte, time.Time, error) {
	if ttl <= 0 || ttl > MaxIntroTTL {
		ttl = DefaultIntroTTL
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, time.Time{}, fmt.Errorf("making introduction token: %w", err)
	}
	id, err := introID(seed)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := in.now()
	exp := now.Add(ttl).Truncate(time.Second)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.pruneLocked(now)
	open := 0
	for _, t := range in.tokens {
		if !t.Used {
			open++
		}
	}
	if open >= MaxIntroTokens {
		return nil, time.Time{}, ErrTooManyIntros
	}
	t := introToken{Expires: exp}
	if err := in.put(id, t); err != nil {
		return nil, time.Time{}, err
	}
	in.tokens[id] = t
	return seed, exp, nil
}

// pruneLocked forgets tokens expired for longer than IntroKeepUsed (used
// ones are kept that long so a replay is told "used", not "never
// issued"). The caller holds in.mu.
func (in *Introductions) pruneLocked(now time.Time) {
	for id, t := range in.tokens {
		if now.Sub(t.Expires) > IntroKeepUsed {
			delete(in.tokens, id)
			_ = in.db.Update(func(tx *bolt.Tx) error {
				if b := tx.Bucket(bucketIntros); b != nil {
					return b.Delete([]byte(id))
				}
				return nil
			})
		}
	}
}

func (in *Introductions) put(id peer.ID, t introToken) error {
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := in.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketIntros)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	}); err != nil {
		return fmt.Errorf("storing introduction token: %w", err)
	}
	return nil
}

// open reports whether id is a token that may still be used now: the
// Gater admits its connections (restricted to IntroduceProtocol).
func (in *Introductions) open(id peer.ID) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, ok := in.tokens[id]
	return ok && !t.Used && in.now().Before(t.Expires)
}

// known reports whether id is a token issued here, open or not.
func (in *Introductions) known(id peer.ID) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	_, ok := in.tokens[id]
	return ok
}

// use marks token id used by who; false if it cannot be used.
func (in *Introductions) use(id, who peer.ID) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, ok := in.tokens[id]
	if !ok || t.Used || !in.now().Before(t.Expires) {
		return false
	}
	t.Used, t.UsedBy = true, who.String()
	if err := in.put(id, t); err != nil {
		return false
	}
	in.tokens[id] = t
	return true
}

// Requests lists the introductions waiting for approval.
func (in *Introductions) Requests() []IntroRequest {
	var out []IntroRequest
	_ = in.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIntroRequests)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r IntroRequest
			id, err := peer.IDFromBytes(k)
			if err == nil && json.Unmarshal(v, &r) == nil {
				r.ID = id
				out = append(out, r)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// Approve adds the node of a pending introduction (by peer ID or name) as
// a friend.
func (in *Introductions) Approve(ref string) (Friend, error) {
	r, err := in.findRequest(ref)
	if err != nil {
		return Friend{}, err
	}
	inv, err := ParseInvite(r.Invite)
	if err != nil {
		return Friend{}, err
	}
	f, err := in.friends.Add(inv, "")
	if err != nil && !errors.Is(err, ErrAlreadyFriend) {
		return Friend{}, err
	}
	if errors.Is(err, ErrAlreadyFriend) {
		f, _ = in.friends.Get(inv.ID)
	}
	in.dropRequest(r.ID)
	return f, nil
}

// Reject drops a pending introduction.
func (in *Introductions) Reject(ref string) (IntroRequest, error) {
	r, err := in.findRequest(ref)
	if err != nil {
		return r, err
	}
	in.dropRequest(r.ID)
	return r, nil
}

func (in *Introductions) findRequest(ref string) (IntroRequest, error) {
	var found []IntroRequest
	for _, r := range in.Requests() {
		if r.ID.String() == ref || r.Name == ref {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return IntroRequest{}, fmt.Errorf("%w: %q", ErrNoSuchRequest, ref)
	case 1:
		return found[0], nil
	}
	return IntroRequest{}, fmt.Errorf("%w: %q", ErrAmbiguousFriend, ref)
}

func (in *Introductions) dropRequest(id peer.ID) {
	_ = in.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketIntroRequests); b != nil {
			return b.Delete([]byte(id))
		}
		return nil
	})
}

func (in *Introductions) addRequest(inv Invite, text string) error {
	v, err := json.Marshal(IntroRequest{Name: inv.Name, Invite: text, At: in.now().UTC()})
	if err != nil {
		return err
	}
	return in.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketIntroRequests)
		if err != nil {
			return err
		}
		if b.Stats().KeyN >= MaxIntroRequests {
			return ErrTooManyIntros
		}
		return b.Put([]byte(inv.ID), v)
	})
}

// handle takes one introduction from a token's connection, which is
// good for this one exchange: the introduced node closes it once it has
// the answer, or it is closed IntroLinger after the answer.
func (in *Introductions) handle(s network.Stream) {
	token := s.Conn().RemotePeer()
	self := s.Conn().LocalPeer()
	conn := s.Conn()
	defer conn.Close()
	status := in.take(s, token, self)
	s.SetWriteDeadline(time.Now().Add(KadRequestTimeout))
	if err := frame.NewWriter(s, IntroMaxMessage).WriteMsg(&pb.IntroductionAnswer{Status: status}); err != nil {
		s.Reset()
		return
	}
	s.Close()
	// Closing the connection at once could lose the answer in flight.
	for deadline := time.Now().Add(IntroLinger); !conn.IsClosed() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

func (in *Introductions) take(s network.Stream, token, self peer.ID) pb.IntroductionAnswer_Status {
	refuse := func(why string, args ...any) pb.IntroductionAnswer_Status {
		in.refused.Add(1)
		in.log.Info("refused an introduction: "+why, append([]any{slog.String("token", token.ShortString())}, args...)...)
		return pb.IntroductionAnswer_REFUSED
	}
	if !in.open(token) {
		return refuse("token used or expired")
	}
	rd := frame.NewReader(s, IntroMaxMessage, frame.Options{FrameTimeout: KadFrameTimeout, IdleTimeout: KadFrameTimeout, Memory: s.Scope()})
	defer rd.Close()
	b, err := rd.Next()
	if err != nil {
		return refuse("bad message", slog.Any("err", err))
	}
	inv, text, err := readIntroduction(b, self, token)
	if err != nil {
		return refuse("bad introduction", slog.Any("err", err))
	}
	if !in.use(token, inv.ID) {
		return refuse("token used or expired")
	}
	if in.approve.Load() {
		if err := in.addRequest(inv, text); err != nil {
			return refuse("cannot keep the request", slog.Any("err", err))
		}
		in.pending.Add(1)
		in.log.Info("introduction waits for your approval: `kith friend approve NAME`", slog.String("peer", inv.ID.ShortString()))
		return pb.IntroductionAnswer_PENDING
	}
	if _, err := in.friends.Add(inv, ""); err != nil && !errors.Is(err, ErrAlreadyFriend) {
		return refuse("cannot add the friend", slog.Any("err", err))
	} else if errors.Is(err, ErrAlreadyFriend) {
		in.friends.LearnAddrs(inv.ID, inv.Addrs)
	}
	in.accepted.Add(1)
	in.log.Info("new friend by introduction", slog.String("peer", inv.ID.ShortString()))
	return pb.IntroductionAnswer_ACCEPTED
}

// errIntroduction means an introduction message does not hold.
var errIntroduction = errors.New("bad introduction")

// readIntroduction decodes an introduction made to inviter with token:
// a valid invite of another node than both, bound to them by that
// node's key. It returns the invite and its text.
func readIntroduction(b []byte, inviter, token peer.ID) (Invite, string, error) {
	var m pb.Introduction
	if err := frame.Unmarshal(b, &m); err != nil {
		return Invite{}, "", err
	}
	inv, err := ParseInvite(m.Invite)
	if err != nil {
		return Invite{}, "", err
	}
	if inv.ID == inviter || inv.ID == token || len(inv.IntroKey) > 0 {
		return Invite{}, "", fmt.Errorf("%w: the invite of the wrong node", errIntroduction)
	}
	pub, err := inv.ID.ExtractPublicKey()
	if err != nil {
		return Invite{}, "", fmt.Errorf("%w: no key in the invite", errIntroduction)
	}
	if ok, err := pub.Verify(introBinding(inviter, token, m.Invite), m.Binding); err != nil || !ok {
		return Invite{}, "", fmt.Errorf("%w: the binding does not verify", errIntroduction)
	}
	return inv, m.Invite, nil
}

// introBinding is what the introduced node signs with its node key.
func introBinding(inviter, token peer.ID, invite string) []byte {
	b := []byte(introSigDomain)
	b = append(b, inviter...)
	b = append(b, token...)
	return append(b, invite...)
}

// introID returns the peer ID of the token key with seed.
func introID(seed []byte) (peer.ID, error) {
	k, err := introKey(seed)
	if err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(k)
}

func introKey(seed []byte) (crypto.PrivKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: introduction token of %d bytes", ErrInviteGarbled, len(seed))
	}
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("%w: introduction token: %v", ErrInviteGarbled, err)
	}
	return k, nil
}

// Introduce presents the token of inv (an introduction invite) to its
// inviter: it connects with the token's key to inv's addresses that
// policy admits, sends selfInvite (our invite) bound to the token with
// key, and returns IntroAccepted or IntroPending, or an error
// (ErrIntroRefused, ErrIntroUnreachable).
func Introduce(ctx context.Context, inv Invite, key crypto.PrivKey, selfInvite string, policy *AddrPolicy) (string, error) {
	tk, err := introKey(inv.IntroKey)
	if err != nil {
		return "", err
	}
	token, _ := peer.IDFromPrivateKey(tk)
	addrs := policy.Filter(inv.ID, inv.Addrs)
	if len(addrs) == 0 {
		return "", fmt.Errorf("%w (none it carries can be dialled from here)", ErrIntroUnreachable)
	}
	allowed := func(a ma.Multiaddr) bool {
		for _, x := range addrs {
			if stripPeer(a).Equal(stripPeer(x)) {
				return true
			}
		}
		return false
	}
	h, err := libp2p.New(
		libp2p.Identity(tk),
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.Ping(false),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.ConnectionGater(dialOnly{p: inv.ID, allow: allowed}),
	)
	if err != nil {
		return "", fmt.Errorf("introducing: %w", err)
	}
	defer h.Close()
	h.RemoveStreamHandler(identify.ID)
	h.RemoveStreamHandler(identify.IDPush)
	ctx, cancel := context.WithTimeout(ctx, IntroTimeout)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: inv.ID, Addrs: addrs}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrIntroUnreachable, err)
	}
	s, err := h.NewStream(ctx, inv.ID, IntroduceProtocol)
	if err != nil {
		// The inviter's gater closed the token's connection: no open token.
		return "", fmt.Errorf("%w (%v)", ErrIntroRefused, err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	sig, err := key.Sign(introBinding(inv.ID, token, selfInvite))
	if err != nil {
		return "", fmt.Errorf("signing introduction: %w", err)
	}
	if err := frame.NewWriter(s, IntroMaxMessage).WriteMsg(&pb.Introduction{Invite: selfInvite, Binding: sig}); err != nil {
		return "", fmt.Errorf("%w (%v)", ErrIntroRefused, err)
	}
	s.CloseWrite()
	rd := frame.NewReader(s, IntroMaxMessage, frame.Options{FrameTimeout: KadFrameTimeout, Memory: s.Scope()})
	defer rd.Close()
	var ans pb.IntroductionAnswer
	if err := rd.ReadMsg(&ans); err != nil {
		return "", fmt.Errorf("%w (%v)", ErrIntroRefused, err)
	}
	switch ans.Status {
	case pb.IntroductionAnswer_ACCEPTED:
		return IntroAccepted, nil
	case pb.IntroductionAnswer_PENDING:
		return IntroPending, nil
	}
	return "", ErrIntroRefused
}

// introScope is the stream scope of a connection admitted with an
// introduction token: it may speak IntroduceProtocol and nothing else,
// in either direction.
type introScope struct {
	network.StreamManagementScope
	refused *atomic.Uint64
}

func (s introScope) SetProtocol(p protocol.ID) error {
	if p != IntroduceProtocol {
		s.refused.Add(1)
		return fmt.Errorf("%w: an introduction token may open only %s", network.ErrResourceLimitExceeded, IntroduceProtocol)
	}
	return s.StreamManagementScope.SetProtocol(p)
}

// ServeIntroductions registers the introduction handler on h and lets
// the Gater admit open tokens.
func ServeIntroductions(h host.Host, g *Gater, in *Introductions) {
	g.intro.Store(in)
	h.SetStreamHandler(IntroduceProtocol, func(s network.Stream) {
		if !in.open(s.Conn().RemotePeer()) || g.allow.IsFriend(s.Conn().RemotePeer()) {
			s.Reset()
			return
		}
		in.handle(s)
	})
}

// now is the Introductions' clock.
func (in *Introductions) now() time.Time {
	if fn := in.clock.Load(); fn != nil {
		return (*fn)()
	}
	return time.Now()
}
