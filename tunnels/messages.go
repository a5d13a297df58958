package tunnels

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"kith/internal/frame"
	"kith/tunnels/pb"
)

// RouterProtocol is the libp2p protocol ID of the router's control stream,
// one per friend link.
//
// Its streams are in the resource-manager service "kith.router": the f2f
// host attaches every kith protocol's streams (f2f.ServiceOf).
const RouterProtocol = "/kith/router/1"

// SearchID names a search at every hop: 16 random bytes chosen by the
// searcher.
type SearchID [16]byte

// TunnelID names a tunnel on one friend link. Each hop picks its own at
// random, so ids seen at two hops never match. Zero is never used.
type TunnelID uint64

// Message is a router control message: *Search, *SearchResult,
// *TunnelRequest, *TunnelOK, *TunnelFail or *TunnelClose.
type Message interface {
	toWire() (*pb.RouterMessage, error)
}

// Search looks for files in the anonymous shares of friends of friends.
// Exactly one of Keywords and RootHash is set: a zero RootHash means a
// keyword search.
type Search struct {
	// ID is the same at every hop.
	ID SearchID
	// Depth is the number of hops the search may still travel, 0 to
	// MaxDepth.
	Depth int
	// Keywords are words to match against file names, at most
	// MaxKeywordsLen bytes of UTF-8.
	Keywords string
	// RootHash is SearchHash of the root of the file searched for.
	RootHash [SearchHashLen]byte
	// ReplyKey is the searcher's ephemeral X25519 public key; answers are
	// sealed to it with Seal.
	ReplyKey [32]byte
	// Walk is set while the search walks: its receiver sends it on to one
	// friend (see Router.Search).
	Walk bool
	// Answers is how many answers the receiver may send back for this
	// search in all, its own and those it relays; 0 (a sender that does
	// not set it) means MaxResultsPerSearch (see searchAnswers).
	Answers int
}

// SearchResult answers a Search along its reverse path. Sealed is the
// output of Seal and is opaque to relays.
type SearchResult struct {
	// SearchID is the ID of the Search answered.
	SearchID SearchID
	// Sealed is the output of Seal or SealForRoot, opaque to relays: one
	// SealRootPad block or more plus 48 bytes, at most MaxSealedResults.
	Sealed []byte
}

// TunnelRequest asks for a tunnel to whoever holds Target.
type TunnelRequest struct {
	// ID names the tunnel on this link; the next hop gets a new one.
	ID TunnelID
	// Depth is the number of hops the request may still travel, 0 to
	// MaxDepth.
	Depth int
	// Target is TargetForRoot or TargetForChatID of what is asked for.
	Target [32]byte
	// RequestID is the same at every hop: the origin picks it, relays copy
	// it, and a relay forwards a request it has seen before no further.
	RequestID RequestID
}

// RequestID names one tunnel request end to end (see TunnelRequest).
type RequestID [16]byte

// TunnelOK answers a TunnelRequest: the tunnel is set up.
type TunnelOK struct {
	// ID is the TunnelRequest's ID on this link.
	ID TunnelID
}

// FailCode says why a tunnel could not be made. Values are append-only and
// match pb.FailCode; a code this version does not know is kept as is and
// means a failure all the same.
type FailCode int32

// Tunnel failure codes.
const (
	// FailUnspecified gives no reason.
	FailUnspecified = FailCode(pb.FailCode_FAIL_CODE_UNSPECIFIED)
	// FailNoRoute: no holder answered before the request expired.
	FailNoRoute = FailCode(pb.FailCode_FAIL_CODE_NO_ROUTE)
	// FailLimit: a limit of a hop was reached.
	FailLimit = FailCode(pb.FailCode_FAIL_CODE_LIMIT)
	// FailDuplicate: the request's id is already in use on the link.
	FailDuplicate = FailCode(pb.FailCode_FAIL_CODE_DUPLICATE)
)

// String returns a short name for c, such as "no route".
func (c FailCode) String() string {
	if name, ok := pb.FailCode_name[int32(c)]; ok {
		return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "FAIL_CODE_")), "_", " ")
	}
	return fmt.Sprintf("fail code %d", int32(c))
}

// TunnelFail answers a TunnelRequest that could not be served.
type TunnelFail struct {
	// ID is the TunnelRequest's ID on this link.
	ID TunnelID
	// Code says why.
	Code FailCode
}

// TunnelClose tears down a tunnel's routing entry on one link.
type TunnelClose struct {
	// ID is the tunnel's ID on this link.
	ID TunnelID
}

func (m *Search) toWire() (*pb.RouterMessage, error) {
	if m.Answers < 0 {
		return nil, fmt.Errorf("%w: search answers %d", ErrInvalidMessage, m.Answers)
	}
	w := &pb.Search{Id: m.ID[:], Depth: uint32(m.Depth), ReplyKey: m.ReplyKey[:], Walk: m.Walk, Answers: uint32(min(m.Answers, MaxResultsPerSearch))}
	if m.Keywords != "" {
		w.Query = &pb.Search_Keywords{Keywords: m.Keywords}
	} else {
		w.Query = &pb.Search_RootHash{RootHash: m.RootHash[:]}
	}
	if m.Depth < 0 || m.Depth > MaxDepth {
		return nil, fmt.Errorf("%w: search depth %d", ErrInvalidMessage, m.Depth)
	}
	if _, err := searchFromWire(w); err != nil {
		return nil, err
	}
	return &pb.RouterMessage{Body: &pb.RouterMessage_Search{Search: w}}, nil
}

func (m *SearchResult) toWire() (*pb.RouterMessage, error) {
	w := &pb.SearchResult{SearchId: m.SearchID[:], Sealed: m.Sealed}
	if _, err := searchResultFromWire(w); err != nil {
		return nil, err
	}
	return &pb.RouterMessage{Body: &pb.RouterMessage_SearchResult{SearchResult: w}}, nil
}

func (m *TunnelRequest) toWire() (*pb.RouterMessage, error) {
	if m.Depth < 0 || m.Depth > MaxDepth {
		return nil, fmt.Errorf("%w: tunnel request depth %d", ErrInvalidMessage, m.Depth)
	}
	w := &pb.TunnelRequest{Id: uint64(m.ID), Depth: uint32(m.Depth), Target: m.Target[:], RequestId: m.RequestID[:]}
	if _, err := tunnelRequestFromWire(w); err != nil {
		return nil, err
	}
	return &pb.RouterMessage{Body: &pb.RouterMessage_TunnelRequest{TunnelRequest: w}}, nil
}

func (m *TunnelOK) toWire() (*pb.RouterMessage, error) {
	if m.ID == 0 {
		return nil, fmt.Errorf("%w: tunnel ok: zero id", ErrInvalidMessage)
	}
	return &pb.RouterMessage{Body: &pb.RouterMessage_TunnelOk{TunnelOk: &pb.TunnelOK{Id: uint64(m.ID)}}}, nil
}

func (m *TunnelFail) toWire() (*pb.RouterMessage, error) {
	if m.ID == 0 {
		return nil, fmt.Errorf("%w: tunnel fail: zero id", ErrInvalidMessage)
	}
	w := &pb.TunnelFail{Id: uint64(m.ID), Code: pb.FailCode(m.Code)}
	return &pb.RouterMessage{Body: &pb.RouterMessage_TunnelFail{TunnelFail: w}}, nil
}

func (m *TunnelClose) toWire() (*pb.RouterMessage, error) {
	if m.ID == 0 {
		return nil, fmt.Errorf("%w: tunnel close: zero id", ErrInvalidMessage)
	}
	return &pb.RouterMessage{Body: &pb.RouterMessage_TunnelClose{TunnelClose: &pb.TunnelClose{Id: uint64(m.ID)}}}, nil
}

// fromWire checks a decoded message and converts it. A message with no
// body set is of a type this version does not know.
func fromWire(w *pb.RouterMessage) (Message, error) {
	switch b := w.Body.(type) {
	case *pb.RouterMessage_Search:
		return searchFromWire(b.Search)
	case *pb.RouterMessage_SearchResult:
		return searchResultFromWire(b.SearchResult)
	case *pb.RouterMessage_TunnelRequest:
		return tunnelRequestFromWire(b.TunnelRequest)
	case *pb.RouterMessage_TunnelOk:
		id, err := tunnelIDFromWire("tunnel ok", b.TunnelOk.GetId())
		return &TunnelOK{ID: id}, err
	case *pb.RouterMessage_TunnelFail:
		id, err := tunnelIDFromWire("tunnel fail", b.TunnelFail.GetId())
		return &TunnelFail{ID: id, Code: FailCode(b.TunnelFail.GetCode())}, err
	case *pb.RouterMessage_TunnelClose:
		id, err := tunnelIDFromWire("tunnel close", b.TunnelClose.GetId())
		return &TunnelClose{ID: id}, err
	}
	return nil, ErrUnknownMessage
}

func searchFromWire(w *pb.Search) (*Search, error) {
	if w == nil {
		w = &pb.Search{}
	}
	var m Search
	if len(w.Id) != len(m.ID) {
		return nil, fmt.Errorf("%w: search id of %d bytes", ErrInvalidMessage, len(w.Id))
	}
	if w.Depth > MaxDepth {
		return nil, fmt.Errorf("%w: search depth %d", ErrInvalidMessage, w.Depth)
	}
	if len(w.ReplyKey) != len(m.ReplyKey) {
		return nil, fmt.Errorf("%w: search reply key of %d bytes", ErrInvalidMessage, len(w.ReplyKey))
	}
	m.ID = SearchID(w.Id)
	m.Depth = int(w.Depth)
	m.ReplyKey = [32]byte(w.ReplyKey)
	m.Walk = w.Walk
	// Any value is accepted: the router clamps it (searchAnswers).
	m.Answers = int(min(w.Answers, MaxResultsPerSearch))
	if m.ReplyKey == [32]byte{} {
		return nil, fmt.Errorf("%w: search reply key is zero", ErrInvalidMessage)
	}
	switch q := w.Query.(type) {
	case *pb.Search_Keywords:
		if !validKeywords(q.Keywords) {
			return nil, fmt.Errorf("%w: search keywords", ErrInvalidMessage)
		}
		m.Keywords = q.Keywords
	case *pb.Search_RootHash:
		// 32 bytes came from senders before SearchHash was cut to its
		// first SearchHashLen: the same value, longer.
		if len(q.RootHash) != SearchHashLen && len(q.RootHash) != 32 {
			return nil, fmt.Errorf("%w: search root hash of %d bytes", ErrInvalidMessage, len(q.RootHash))
		}
		m.RootHash = [SearchHashLen]byte(q.RootHash[:SearchHashLen])
		if m.RootHash == [SearchHashLen]byte{} {
			return nil, fmt.Errorf("%w: search root hash is zero", ErrInvalidMessage)
		}
	default:
		return nil, fmt.Errorf("%w: search without query", ErrInvalidMessage)
	}
	return &m, nil
}

// validKeywords accepts UTF-8 of at most MaxKeywordsLen bytes with at
// least one letter or digit and no control characters.
func validKeywords(s string) bool {
	if len(s) > MaxKeywordsLen || !utf8.ValidString(s) {
		return false
	}
	word := false
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return false
		case r != ' ':
			word = true
		}
	}
	return word
}

func searchResultFromWire(w *pb.SearchResult) (*SearchResult, error) {
	if w == nil {
		w = &pb.SearchResult{}
	}
	var m SearchResult
	if len(w.SearchId) != len(m.SearchID) {
		return nil, fmt.Errorf("%w: search result id of %d bytes", ErrInvalidMessage, len(w.SearchId))
	}
	if n := len(w.Sealed); n < sealHandshakeBytes+SealRootPad || n > MaxSealedResults {
		return nil, fmt.Errorf("%w: sealed results of %d bytes", ErrInvalidMessage, n)
	}
	m.SearchID = SearchID(w.SearchId)
	m.Sealed = w.Sealed
	return &m, nil
}

func tunnelRequestFromWire(w *pb.TunnelRequest) (*TunnelRequest, error) {
	if w == nil {
		w = &pb.TunnelRequest{}
	}
	var m TunnelRequest
	id, err := tunnelIDFromWire("tunnel request", w.Id)
	if err != nil {
		return nil, err
	}
	if w.Depth > MaxDepth {
		return nil, fmt.Errorf("%w: tunnel request depth %d", ErrInvalidMessage, w.Depth)
	}
	if len(w.Target) != len(m.Target) {
		return nil, fmt.Errorf("%w: tunnel target of %d bytes", ErrInvalidMessage, len(w.Target))
	}
	if len(w.RequestId) != len(m.RequestID) {
		return nil, fmt.Errorf("%w: tunnel request id of %d bytes", ErrInvalidMessage, len(w.RequestId))
	}
	m.ID, m.Depth, m.Target, m.RequestID = id, int(w.Depth), [32]byte(w.Target), RequestID(w.RequestId)
	return &m, nil
}

func tunnelIDFromWire(what string, id uint64) (TunnelID, error) {
	if id == 0 {
		return 0, fmt.Errorf("%w: %s: zero id", ErrInvalidMessage, what)
	}
	return TunnelID(id), nil
}

// DecodeMessage decodes and checks one RouterMessage without its length
// prefix. It fails with an error wrapping ErrUnknownMessage for a type
// this version does not know, and ErrInvalidMessage for anything else
// wrong.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) > MaxControlMsg {
		return nil, fmt.Errorf("decoding router message: %w", ErrMessageTooLarge)
	}
	var w pb.RouterMessage
	if err := frame.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decoding router message: %w: %w", ErrInvalidMessage, err)
	}
	m, err := fromWire(&w)
	if err != nil {
		return nil, fmt.Errorf("decoding router message: %w", err)
	}
	return m, nil
}

// MessageReader reads router messages: uvarint-length-delimited
// RouterMessages of at most MaxControlMsg bytes, through frame.Reader, so
// a friend that announces a large message holds only the bytes it has sent.
// It is not safe for concurrent use; one goroutine may read while another
// writes with a MessageWriter.
type MessageReader struct {
	r *frame.Reader
}

// NewMessageReader returns a MessageReader reading from r, without
// timeouts or memory accounting. It buffers, so r should carry nothing but
// router messages.
func NewMessageReader(r io.Reader) *MessageReader {
	return newMessageReader(r, frame.Options{})
}

func newMessageReader(r io.Reader, opts frame.Options) *MessageReader {
	return &MessageReader{r: frame.NewReader(r, MaxControlMsg, opts)}
}

// Read reads the next message, blocking until one arrives. It returns
// io.EOF at a clean end of the stream. After an error wrapping
// ErrUnknownMessage the message was consumed and the caller may read on.
// An error wrapping ErrMessageTooLarge or ErrInvalidMessage means the
// friend broke the protocol (frame.IsPeerFault holds for the framing
// faults: too large, malformed, too slow); after any other error the
// stream is broken. In both cases the caller should close it.
func (r *MessageReader) Read() (Message, error) {
	b, err := r.r.Next()
	if err != nil {
		switch {
		case err == io.EOF:
			return nil, io.EOF
		case errors.Is(err, frame.ErrTooLarge):
			return nil, fmt.Errorf("reading router message: %w: %w", ErrMessageTooLarge, err)
		case frame.IsPeerFault(err):
			return nil, fmt.Errorf("reading router message: %w: %w", ErrInvalidMessage, err)
		}
		return nil, fmt.Errorf("reading router message: %w", err)
	}
	var w pb.RouterMessage
	if err := frame.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("reading router message: %w: %w", ErrInvalidMessage, err)
	}
	m, err := fromWire(&w)
	if err != nil {
		return nil, fmt.Errorf("reading router message: %w", err)
	}
	return m, nil
}

// Close releases the memory the reader charged to its scope. It does not
// close the stream.
func (r *MessageReader) Close() { r.r.Close() }

// maxWireSize returns the most bytes m takes on the wire, its length
// prefix included, without encoding it: what a link's send queue charges
// for it.
func maxWireSize(m Message) int {
	// Tags, lengths, the oneof wrapper, the depth and the prefix.
	const overhead = 32
	switch m := m.(type) {
	case *Search:
		return overhead + len(m.ID) + len(m.ReplyKey) + max(len(m.RootHash), len(m.Keywords))
	case *SearchResult:
		return overhead + len(m.SearchID) + len(m.Sealed)
	case *TunnelRequest:
		return overhead + 10 + len(m.Target) + len(m.RequestID)
	}
	return overhead // TunnelOK, TunnelFail, TunnelClose: an id and a code
}

// appendMessage checks m as a reader would and appends it to dst with its
// length prefix. A message that breaks the limits is refused with an error
// wrapping ErrInvalidMessage (or ErrMessageTooLarge) and dst is returned
// as it was.
func appendMessage(dst []byte, m Message) ([]byte, error) {
	wire, err := m.toWire()
	if err != nil {
		return dst, fmt.Errorf("writing router message: %w", err)
	}
	out, err := frame.Append(dst, wire, MaxControlMsg)
	if errors.Is(err, frame.ErrTooLarge) {
		return dst, fmt.Errorf("writing router message: %w: %w", ErrMessageTooLarge, err)
	}
	if err != nil {
		return dst, fmt.Errorf("writing router message: %w", err)
	}
	return out, nil
}

// messageWriterKeep is the largest buffer a MessageWriter keeps between
// messages.
const messageWriterKeep = 4 << 10

// MessageWriter writes router messages. It is not safe for concurrent
// use.
type MessageWriter struct {
	w   io.Writer
	buf []byte
}

// NewMessageWriter returns a MessageWriter writing to w, unbuffered: each
// Write is one write to w, the length prefix and the message together.
func NewMessageWriter(w io.Writer) *MessageWriter {
	return &MessageWriter{w: w}
}

// Write checks m as a reader would and writes it. A message that breaks
// the limits is refused with an error wrapping ErrInvalidMessage and
// nothing is written.
func (w *MessageWriter) Write(m Message) error {
	b, err := appendMessage(w.buf[:0], m)
	if err != nil {
		return err
	}
	if cap(b) <= messageWriterKeep {
		w.buf = b // small messages reuse the buffer; large ones let it go
	}
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("writing router message: %w", err)
	}
	return nil
}
