package f2f

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"filippo.io/edwards25519"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"kith/f2f/pb"
	"kith/internal/frame"
)

// How the friends DHT answers only what a friend needs.
//
// A asks its friend B for the addresses of K. B answers only if K is a
// friend of B and A is a friend of K, and then with K's addresses only. It
// must do so without learning K's friend list, and without A's question
// telling B (or any other friend A asks) who K is unless it already knows.
//
//   - Every pair of friends X, Y shares a secret s(X,Y): the X25519
//     agreement of their node keys (ed25519, in Montgomery form), which
//     both compute alone, with no message.
//   - The key A asks for is blind(K, B) = SHA-256("kith-kad-key-v1", K, B),
//     not K: B maps it back by computing blind(F, B) for each friend F of
//     its own. A friend that does not know K's ID cannot tell whom A asks
//     for.
//   - A's proof is proof(s(A,K), K, B) = HMAC-SHA-256(s(A,K),
//     "kith-lookup-v1", K, B), cut to 16 bytes: only A and K can compute it,
//     and it is good only at B.
//   - K tells each friend B, whenever they connect and whenever K's friend
//     list changes, its grant: proof(s(F,K), K, B) for every friend F of K
//     but B, padded with random values to a multiple of LookupVerifierPad.
//     B answers A's FIND_NODE for K only if A's proof is in K's grant.
//
// What it costs in privacy: B learns how many friends K has, to within
// LookupVerifierPad; B learns that A is a friend of K when A asks B about K
// (when A lost K's address); a friend of A that already knows K's ID can
// tell that A looks for K. B cannot test whether any other ID is a friend
// of K (it would need that peer's secret with K), and A learns no ID it did
// not know: B's answer names only K, or B itself (asked for its own key,
// which kad-dht does to check a peer).

// LookupProtocol carries lookup grants, one message per stream.
const LookupProtocol protocol.ID = "/kith/lookup/1"

const (
	blindDomain = "kith-kad-key-v1"
	proofDomain = "kith-lookup-v1"
	// proofLen is the length of a proof and of a grant's verifiers.
	proofLen = 16
)

// errBadGrant means a friend's grant broke the protocol.
var errBadGrant = errors.New("malformed lookup grant")

type verifier [proofLen]byte

// lookup holds a node's lookup secrets and the grants its friends gave it.
// It is safe for concurrent use.
type lookup struct {
	self    peer.ID
	friends *Friends
	priv    *ecdh.PrivateKey
	log     *slog.Logger

	mu      sync.Mutex
	shared  map[peer.ID][]byte        // s(self, friend), computed once
	grants  map[peer.ID][]verifier    // sorted; what each friend gave us
	blinded map[[32]byte]peer.ID      // blind(F, self) for our friends and ourselves
	limits  map[peer.ID]*rate.Limiter // grants taken from each friend
}

func newLookup(self peer.ID, key crypto.PrivKey, friends *Friends, log *slog.Logger) (*lookup, error) {
	priv, err := x25519Private(key)
	if err != nil {
		return nil, err
	}
	l := &lookup{self: self, friends: friends, priv: priv, log: log,
		shared: map[peer.ID][]byte{}, grants: map[peer.ID][]verifier{}, limits: map[peer.ID]*rate.Limiter{}}
	l.reindex()
	return l, nil
}

// x25519Private is the X25519 form of an ed25519 node key: the clamped
// scalar of RFC 8032 (X25519 clamps it itself).
func x25519Private(key crypto.PrivKey) (*ecdh.PrivateKey, error) {
	if key == nil || key.Type() != crypto.Ed25519 {
		return nil, errors.New("friends DHT needs an ed25519 node key")
	}
	raw, err := key.Raw()
	if err != nil || len(raw) < 32 {
		return nil, fmt.Errorf("reading node key: %w", err)
	}
	h := sha512.Sum512(raw[:32])
	return ecdh.X25519().NewPrivateKey(h[:32])
}

// x25519Public is the X25519 form of the ed25519 key in a peer ID.
func x25519Public(id peer.ID) (*ecdh.PublicKey, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil || pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("peer %s has no ed25519 key", id.ShortString())
	}
	raw, err := pub.Raw()
	if err != nil {
		return nil, err
	}
	p, err := new(edwards25519.Point).SetBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", id.ShortString(), err)
	}
	return ecdh.X25519().NewPublicKey(p.BytesMontgomery())
}

// appendID appends a length-prefixed peer ID (IDs vary in length).
func appendID(b []byte, id peer.ID) []byte {
	b = append(b, byte(len(id)))
	return append(b, id...)
}

// blind is the key a FIND_NODE for target carries when it is asked of
// server.
func blind(target, server peer.ID) [32]byte {
	b := appendID(appendID([]byte(blindDomain), target), server)
	return sha256.Sum256(b)
}

// proofWith is the proof that target lists the holder of secret (its
// secret with target), good at server.
func proofWith(secret []byte, target, server peer.ID) verifier {
	m := hmac.New(sha256.New, secret)
	m.Write(appendID(appendID([]byte(proofDomain), target), server))
	return verifier(m.Sum(nil)[:proofLen])
}

// secret returns s(self, id), computing it once.
func (l *lookup) secret(id peer.ID) ([]byte, bool) {
	l.mu.Lock()
	s, ok := l.shared[id]
	l.mu.Unlock()
	if ok {
		return s, true
	}
	pub, err := x25519Public(id)
	if err != nil {
		return nil, false
	}
	s, err = l.priv.ECDH(pub)
	if err != nil {
		return nil, false
	}
	l.mu.Lock()
	l.shared[id] = s
	l.mu.Unlock()
	return s, true
}

// request returns the blinded key and the proof (nil if none) with which
// we ask server for target.
func (l *lookup) request(target, server peer.ID) ([32]byte, []byte) {
	key := blind(target, server)
	if target == server || target == l.self || !l.friends.IsFriend(target) {
		return key, nil
	}
	s, ok := l.secret(target)
	if !ok {
		return key, nil
	}
	p := proofWith(s, target, server)
	return key, p[:]
}

// resolve maps a blinded key asked of us back to one of our friends or to
// ourselves.
func (l *lookup) resolve(key []byte) (peer.ID, bool) {
	if len(key) != 32 {
		return "", false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.blinded[[32]byte(key)]
	return id, ok
}

// reindex recomputes the blinded keys of our friends and ourselves, and
// forgets what belonged to friends that are gone.
func (l *lookup) reindex() {
	ids := l.friends.IDs()
	idx := make(map[[32]byte]peer.ID, len(ids)+1)
	idx[blind(l.self, l.self)] = l.self
	for _, id := range ids {
		idx[blind(id, l.self)] = id
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blinded = idx
	for id := range l.shared {
		if !l.friends.IsFriend(id) {
			delete(l.shared, id)
		}
	}
	for id := range l.grants {
		if !l.friends.IsFriend(id) {
			delete(l.grants, id)
			delete(l.limits, id)
		}
	}
}

// allowed reports whether asker's proof shows that target lists it: the
// proof is in target's grant to us.
func (l *lookup) allowed(target peer.ID, proof []byte) bool {
	if len(proof) != proofLen {
		return false
	}
	l.mu.Lock()
	g := l.grants[target]
	l.mu.Unlock()
	_, found := slices.BinarySearchFunc(g, verifier(proof), func(a, b verifier) int { return bytes.Compare(a[:], b[:]) })
	return found
}

// grantFor builds our grant to friend b: a verifier for each of our other
// friends, padded with random ones, sorted.
func (l *lookup) grantFor(b peer.ID) *pb.LookupGrant {
	var vs []verifier
	for _, id := range l.friends.IDs() {
		if id == b || len(vs) == MaxLookupVerifiers {
			continue
		}
		if s, ok := l.secret(id); ok {
			vs = append(vs, proofWith(s, l.self, b))
		}
	}
	for len(vs)%LookupVerifierPad != 0 && len(vs) < MaxLookupVerifiers {
		var v verifier
		crand.Read(v[:])
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b verifier) int { return bytes.Compare(a[:], b[:]) })
	g := &pb.LookupGrant{Verifiers: make([][]byte, len(vs))}
	for i := range vs {
		g.Verifiers[i] = vs[i][:]
	}
	return g
}

// parseGrant decodes and checks a grant's frame.
func parseGrant(b []byte) ([]verifier, error) {
	var g pb.LookupGrant
	if err := frame.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadGrant, err)
	}
	if len(g.Verifiers) > MaxLookupVerifiers {
		return nil, fmt.Errorf("%w: %d verifiers, at most %d", errBadGrant, len(g.Verifiers), MaxLookupVerifiers)
	}
	vs := make([]verifier, 0, len(g.Verifiers))
	for _, v := range g.Verifiers {
		if len(v) != proofLen {
			return nil, fmt.Errorf("%w: a verifier of %d bytes", errBadGrant, len(v))
		}
		vs = append(vs, verifier(v))
	}
	slices.SortFunc(vs, func(a, b verifier) int { return bytes.Compare(a[:], b[:]) })
	return slices.CompactFunc(vs, func(a, b verifier) bool { return a == b }), nil
}

// handleGrant takes one grant from a friend.
func (l *lookup) handleGrant(s network.Stream) {
	from := s.Conn().RemotePeer()
	if !l.friends.IsFriend(from) || !l.takeGrant(from) {
		s.Reset()
		return
	}
	r := frame.NewReader(s, LookupGrantMax, frame.Options{FrameTimeout: KadFrameTimeout, IdleTimeout: KadFrameTimeout, Memory: s.Scope()})
	defer r.Close()
	b, err := r.Next()
	if err == nil {
		var vs []verifier
		if vs, err = parseGrant(b); err == nil {
			l.mu.Lock()
			l.grants[from] = vs
			l.mu.Unlock()
			s.Close()
			return
		}
	}
	if frame.IsPeerFault(err) || errors.Is(err, errBadGrant) {
		l.log.Debug("bad lookup grant from a friend", slog.String("peer", from.ShortString()), slog.Any("err", err))
	}
	s.Reset()
}

// takeGrant reports whether a grant from the friend id is within its rate.
func (l *lookup) takeGrant(id peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.limits[id]
	if !ok {
		lim = rate.NewLimiter(LookupGrantRate, LookupGrantBurst)
		l.limits[id] = lim
	}
	return lim.Allow()
}

// sendGrant gives friend id our grant.
func (l *lookup) sendGrant(ctx context.Context, open func(context.Context, peer.ID) (network.Stream, error), id peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, KadRequestTimeout)
	defer cancel()
	s, err := open(ctx, id)
	if err != nil {
		return fmt.Errorf("opening lookup grant stream: %w", err)
	}
	s.SetDeadline(time.Now().Add(KadRequestTimeout))
	if err := frame.NewWriter(s, LookupGrantMax).WriteMsg(l.grantFor(id)); err != nil {
		s.Reset()
		return fmt.Errorf("writing lookup grant: %w", err)
	}
	return s.Close()
}
