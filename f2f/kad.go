package f2f

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"kith/f2f/pb"
	"kith/internal/frame"
)

// kith serves the friends DHT's protocol itself: no kad-dht server code
// reads a friend's bytes. kad-dht runs in client mode (its lookups, its
// routing table) and sends through kadSender; kadServer answers.

// errKadRequest means a friend sent a DHT request kith does not answer.
var errKadRequest = errors.New("unsupported friends DHT request")

// kadRequest is a decoded DHT request.
type kadRequest struct {
	typ   pb.KadMessage_Type
	key   []byte
	proof []byte
}

// readKadRequest decodes and checks one request frame.
func readKadRequest(b []byte) (kadRequest, error) {
	var m pb.KadMessage
	if err := frame.Unmarshal(b, &m); err != nil {
		return kadRequest{}, err
	}
	switch {
	case m.Type != pb.KadMessage_FIND_NODE && m.Type != pb.KadMessage_PING:
		return kadRequest{}, fmt.Errorf("%w: type %v", errKadRequest, m.Type)
	case len(m.CloserPeers) > 0, len(m.Key) > 64, len(m.Proof) > proofLen:
		return kadRequest{}, fmt.Errorf("%w: malformed %v", errKadRequest, m.Type)
	}
	return kadRequest{typ: m.Type, key: m.Key, proof: m.Proof}, nil
}

// readKadAnswer decodes an answer frame into at most one peer per ID, each
// with at most MaxStoredAddrs well-formed addresses.
func readKadAnswer(b []byte) ([]peer.AddrInfo, error) {
	var m pb.KadMessage
	if err := frame.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var out []peer.AddrInfo
	for _, p := range m.CloserPeers {
		id, err := peer.IDFromBytes(p.Id)
		if err != nil || slices.ContainsFunc(out, func(ai peer.AddrInfo) bool { return ai.ID == id }) {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for _, raw := range p.Addrs {
			if len(ai.Addrs) == MaxStoredAddrs {
				break
			}
			if a, err := ma.NewMultiaddrBytes(raw); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		out = append(out, ai)
	}
	return out, nil
}

// kadServer answers the friends DHT for one node.
type kadServer struct {
	h       host.Host
	friends *Friends
	look    *lookup
	log     *slog.Logger
	// frameTimeout and idleTimeout are KadFrameTimeout and KadIdleTimeout
	// (tests shorten them).
	frameTimeout, idleTimeout time.Duration

	answered, empty, refused atomic.Uint64
}

// handle serves one stream: requests and answers in turn, until the friend
// closes it, stays idle or breaks the protocol.
func (k *kadServer) handle(s network.Stream) {
	asker := s.Conn().RemotePeer()
	r := frame.NewReader(s, KadMaxMessage, frame.Options{FrameTimeout: k.frameTimeout, IdleTimeout: k.idleTimeout, Memory: s.Scope()})
	defer r.Close()
	w := frame.NewWriter(s, KadMaxMessage)
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			s.Close()
			return
		}
		var req kadRequest
		if err == nil {
			req, err = readKadRequest(b)
		}
		if err != nil {
			if frame.IsPeerFault(err) || errors.Is(err, errKadRequest) {
				k.refused.Add(1)
				k.log.Debug("bad friends DHT request", slog.String("peer", asker.ShortString()), slog.Any("err", err))
			}
			s.Reset()
			return
		}
		s.SetWriteDeadline(time.Now().Add(KadRequestTimeout))
		if err := w.WriteMsg(k.answer(asker, req)); err != nil {
			s.Reset()
			return
		}
		s.SetWriteDeadline(time.Time{})
	}
}

// answer answers a request of asker: PING with PING; FIND_NODE with the
// peer it names, if that is us, or a friend of ours whose grant holds the
// asker's proof; else with no peer.
func (k *kadServer) answer(asker peer.ID, req kadRequest) *pb.KadMessage {
	resp := &pb.KadMessage{Type: req.typ}
	if req.typ != pb.KadMessage_FIND_NODE {
		return resp
	}
	target, ok := k.look.resolve(req.key)
	var ai peer.AddrInfo
	switch {
	case !ok || target == asker:
	case target == k.h.ID():
		ai = peer.AddrInfo{ID: target, Addrs: k.h.Addrs()}
	case k.friends.IsFriend(target) && k.look.allowed(target, req.proof):
		ai = peer.AddrInfo{ID: target, Addrs: k.addrsOf(target)}
	}
	if ai.ID == "" {
		k.empty.Add(1)
		return resp
	}
	k.answered.Add(1)
	p := &pb.KadMessage_Peer{Id: []byte(ai.ID)}
	for _, a := range (*AddrPolicy)(nil).Filter(ai.ID, ai.Addrs) {
		if len(p.Addrs) == MaxStoredAddrs {
			break
		}
		p.Addrs = append(p.Addrs, stripPeer(a).Bytes())
	}
	resp.CloserPeers = []*pb.KadMessage_Peer{p}
	return resp
}

// addrsOf returns what we know of a friend's addresses: where its live
// connections come from (behind a NAT, the mapped endpoint), then the
// stored ones.
func (k *kadServer) addrsOf(id peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, c := range k.h.Network().ConnsToPeer(id) {
		a := c.RemoteMultiaddr()
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	fr, _ := k.friends.Get(id)
	for _, a := range fr.Addrs {
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// kadSender is the kad-dht client's way out: each request on a stream of
// its own, the key blinded and the proof added (lookup.go), the answer
// read with kith's bounded framing. It implements
// dhtpb.MessageSenderWithDisconnect.
type kadSender struct {
	h    host.Host
	look *lookup
}

var _ dhtpb.MessageSenderWithDisconnect = (*kadSender)(nil)

// SendRequest asks p and returns its answer in kad-dht's form.
func (k *kadSender) SendRequest(ctx context.Context, p peer.ID, m *dhtpb.Message) (*dhtpb.Message, error) {
	req, err := k.toWire(p, m)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, KadRequestTimeout)
	defer cancel()
	s, err := k.h.NewStream(ctx, p, DHTProtocol)
	if err != nil {
		return nil, fmt.Errorf("opening friends DHT stream: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := frame.NewWriter(s, KadMaxMessage).WriteMsg(req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("writing friends DHT request: %w", err)
	}
	s.CloseWrite()
	r := frame.NewReader(s, KadMaxMessage, frame.Options{FrameTimeout: KadFrameTimeout, Memory: s.Scope()})
	defer r.Close()
	b, err := r.Next()
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("reading friends DHT answer: %w", err)
	}
	peers, err := readKadAnswer(b)
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("reading friends DHT answer: %w", err)
	}
	resp := dhtpb.NewMessage(m.GetType(), nil, 0)
	if req.Type == pb.KadMessage_FIND_NODE {
		resp.CloserPeers = dhtpb.RawPeerInfosToPBPeers(peers)
	}
	return resp, nil
}

// SendMessage is for requests without an answer (provider and value
// records), which the friends DHT does not carry.
func (k *kadSender) SendMessage(context.Context, peer.ID, *dhtpb.Message) error {
	return errKadRequest
}

// OnDisconnect has nothing to do: no stream outlives its request.
func (k *kadSender) OnDisconnect(context.Context, peer.ID) {}

// toWire turns kad-dht's request to p into ours: FIND_NODE keys are
// blinded for p and carry our proof, PING goes as it is.
func (k *kadSender) toWire(p peer.ID, m *dhtpb.Message) (*pb.KadMessage, error) {
	switch m.GetType() {
	case dhtpb.Message_PING:
		return &pb.KadMessage{Type: pb.KadMessage_PING}, nil
	case dhtpb.Message_FIND_NODE:
		target, err := peer.IDFromBytes(m.GetKey())
		if err != nil {
			// kad-dht's refresh asks random keys; a key that is no
			// peer ID names no friend.
			target = peer.ID(m.GetKey())
		}
		key, proof := k.look.request(target, p)
		return &pb.KadMessage{Type: pb.KadMessage_FIND_NODE, Key: key[:], Proof: proof}, nil
	}
	return nil, fmt.Errorf("%w: %v", errKadRequest, m.GetType())
}
