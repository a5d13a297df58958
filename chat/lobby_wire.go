package chat

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"kith/chat/pb"
	kframe "kith/internal/frame"
)

// LobbyProtocolID is the libp2p protocol of chat lobbies: one long-lived
// stream per pair of connected friends.
//
// Its streams are in the resource-manager service "kith.lobby": the f2f
// host attaches every kith protocol's streams (f2f.ServiceOf).
const LobbyProtocolID = "/kith/lobby/1"

// ErrBadLobbyFrame means a friend sent a lobby frame that breaks the
// protocol: too large, not a LobbyFrame, or with a field of the wrong
// size. The lobby stream it came on is reset.
var ErrBadLobbyFrame = errors.New("bad lobby frame")

// LobbyID is a lobby's random 128-bit id.
type LobbyID [16]byte

// NewLobbyID returns a fresh random id.
func NewLobbyID() LobbyID {
	var id LobbyID
	if _, err := rand.Read(id[:]); err != nil {
		panic("chat: crypto/rand failed: " + err.Error())
	}
	return id
}

// String returns the id in hex (32 digits): the form users copy.
func (id LobbyID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the id in hex.
func (id LobbyID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads an id in hex.
func (id *LobbyID) UnmarshalText(b []byte) error {
	p, err := ParseLobbyID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseLobbyID parses the text form made by LobbyID.String.
func ParseLobbyID(s string) (LobbyID, error) {
	s = strings.TrimSpace(s)
	var id LobbyID
	if len(s) != 2*len(id) {
		return LobbyID{}, fmt.Errorf("%w: want %d hex digits, got %d characters", ErrBadLobbyID, 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return LobbyID{}, fmt.Errorf("%w: not hex", ErrBadLobbyID)
	}
	return id, nil
}

// LobbyKind is what a lobby message says. The values are on the wire and
// only ever added to; a message of an unknown kind is dropped.
type LobbyKind uint32

// Kinds of lobby messages.
const (
	// LobbyKindText is a message the author wrote; stored and shown.
	LobbyKindText LobbyKind = 1
	// LobbyKindJoin says the author joined; stored and shown.
	LobbyKindJoin LobbyKind = 2
	// LobbyKindLeave says the author left; stored and shown.
	LobbyKindLeave LobbyKind = 3
	// LobbyKindKeepAlive says the author is still in the lobby; relayed
	// but not stored.
	LobbyKindKeepAlive LobbyKind = 4
)

var lobbyKindNames = map[LobbyKind]string{
	LobbyKindText: "text", LobbyKindJoin: "join", LobbyKindLeave: "leave", LobbyKindKeepAlive: "keepalive",
}

// String returns the kind's name: text, join, leave or keepalive.
func (k LobbyKind) String() string {
	if s, ok := lobbyKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// MarshalText writes the kind's name.
func (k LobbyKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *LobbyKind) UnmarshalText(b []byte) error {
	for v, s := range lobbyKindNames {
		if s == string(b) {
			*k = v
			return nil
		}
	}
	return fmt.Errorf("unknown lobby message kind %q", b)
}

// LobbyMessage is one message of a lobby, as its author signed it.
type LobbyMessage struct {
	// Seq is the message's place in this node's history of the lobby,
	// from 1; zero for a message not stored (a keep-alive).
	Seq    uint64
	Lobby  LobbyID
	ID     MsgID
	Kind   LobbyKind
	Author ChatID
	Nick   string
	// Time is the author's clock, to the millisecond.
	Time time.Time
	// Stored is this node's clock when it entered the history.
	Stored time.Time
	Text   string
	// Sig is the author's ed25519 signature over lobbySignedBytes.
	Sig []byte
	// every is, in a keep-alive, its author's keep-alive interval (zero:
	// not said); not signed, at most LobbyKeepAliveWireMax.
	every time.Duration
}

// lobbySignDomain starts the bytes a lobby message's signature covers, so
// a signature made for anything else never verifies as one.
const lobbySignDomain = "kith/lobby/1 message\x00"

// lobbySignedBytes is the canonical encoding a lobby message's signature
// covers: the domain, then every field but the signature, fixed-size
// fields as they are and the variable ones prefixed by their length.
func lobbySignedBytes(m *LobbyMessage) []byte {
	b := make([]byte, 0, len(lobbySignDomain)+16+16+4+32+8+2*binary.MaxVarintLen64+len(m.Nick)+len(m.Text))
	b = append(b, lobbySignDomain...)
	b = append(b, m.Lobby[:]...)
	b = append(b, m.ID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Kind))
	b = append(b, m.Author[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixMilli()))
	b = binary.AppendUvarint(b, uint64(len(m.Nick)))
	b = append(b, m.Nick...)
	b = binary.AppendUvarint(b, uint64(len(m.Text)))
	b = append(b, m.Text...)
	return b
}

// signLobbyMessage fills in m's author, nick and signature as id.
func signLobbyMessage(id Identity, m *LobbyMessage) {
	m.Author, m.Nick = id.ID, id.Nick
	m.Time = m.Time.Truncate(time.Millisecond)
	m.Sig = id.Sign(lobbySignedBytes(m))
}

// verify reports whether m's signature is its author's over its fields.
func (m *LobbyMessage) verify() bool { return m.verifyWith(nil) }

// verifyWith is verify with check (LobbyConfig.Verify) for the
// signature check itself; nil means ed25519.Verify.
func (m *LobbyMessage) verifyWith(check Verifier) bool {
	if len(m.Sig) != ed25519.SignatureSize {
		return false
	}
	if check == nil {
		check = ed25519.Verify
	}
	return check(m.Author[:], lobbySignedBytes(m), m.Sig)
}

// Verifier checks an ed25519 signature: ed25519.Verify, or a function
// that gives the same answer for the same arguments (LobbyConfig.Verify).
type Verifier func(pub ed25519.PublicKey, msg, sig []byte) bool

// Drop reasons: why a lobby message or frame from a friend was not taken.
// They are the keys of LobbyStats.Dropped.
const (
	DropBadSignature = "bad_signature"
	DropOversize     = "oversize"
	DropBadText      = "bad_text"
	DropBadKind      = "bad_kind"
	DropStale        = "stale"
	DropFuture       = "future"
	DropAuthorRate   = "author_rate"
	DropFriendRate   = "friend_rate"
	DropNotJoined    = "not_joined"
	DropDuplicate    = "duplicate"
	DropQueueFull    = "queue_full"
	DropUnsolicited  = "unsolicited"
	DropControlRate  = "control_rate"
	DropInvitesFull  = "invites_full"
	// DropPresenceRate counts keep-alives, joins and leaves this node did
	// not write to a friend for the link's LobbyPresenceRate (its
	// presence queue was full).
	DropPresenceRate = "presence_rate"
)

// checkLobbyMessage checks what a message says, not who signed it, and
// returns why to drop it ("" to keep it). A message from a history reply
// (history) is not checked for age.
func checkLobbyMessage(m *LobbyMessage, now time.Time, history bool) string {
	switch {
	case len(m.Text) > MaxTextSize || len(m.Nick) > MaxNickSize:
		return DropOversize
	case m.Kind < LobbyKindText || m.Kind > LobbyKindKeepAlive:
		return DropBadKind
	case CheckNick(m.Nick) != nil:
		return DropBadText
	case m.Kind == LobbyKindText && CheckText(m.Text) != nil:
		return DropBadText
	case m.Kind != LobbyKindText && m.Text != "":
		return DropBadText
	case !history && m.Time.Before(now.Add(-LobbyMaxAge-LobbyMaxSkew)):
		return DropStale
	case m.Time.After(now.Add(LobbyMaxSkew)):
		return DropFuture
	}
	return ""
}

// lobbyAnnounced is one lobby of an announcement or invite.
type lobbyAnnounced struct {
	ID           LobbyID
	Name, Topic  string
	Participants int
}

// lobbyInviteFrame is a decoded invite.
type lobbyInviteFrame struct {
	lobby   lobbyAnnounced
	private bool
	nick    string
}

// lobbyFrameType tells which field of a lobbyFrame is set; zero is a
// frame of a type this version does not know, which is skipped.
type lobbyFrameType int

const (
	lobbyFrameMessage lobbyFrameType = iota + 1
	lobbyFrameSubscribe
	lobbyFrameUnsubscribe
	lobbyFrameAnnounce
	lobbyFrameInvite
	lobbyFrameHistoryRequest
	lobbyFrameHistoryReply
	lobbyFrameHave
	lobbyFrameWant
	lobbyFrameSyncReply
)

// lobbyFrame is one decoded lobby frame whose fields have the right
// sizes; what a message says is checked later (checkLobbyMessage, verify).
type lobbyFrame struct {
	typ      lobbyFrameType
	msg      *LobbyMessage    // message
	lobbies  []LobbyID        // subscribe, unsubscribe
	announce []lobbyAnnounced // announce
	invite   *lobbyInviteFrame
	lobby    LobbyID        // history request and reply, have, want, sync reply
	max      int            // history request
	history  []LobbyMessage // history reply, sync reply
	ids      []MsgID        // have, want
	// truncated is a sync reply's: some messages asked for were left out.
	truncated bool
	// clock is an announcement's sender's clock (zero if not sent).
	clock time.Time
}

// lobbyFrameReader reads lobby frames: a uvarint length of at most
// MaxLobbyFrameSize, then a LobbyFrame, through a kith/internal/frame
// Reader (a link's is friendlink's: the buffer grows as bytes arrive, a
// frame must arrive within LobbyFrameTimeout of its first byte, buffers
// are charged to the stream's scope).
type lobbyFrameReader struct {
	r *kframe.Reader
}

// newLobbyFrameReader reads frames from r with the lobby's frame timeout,
// charging buffers to mem (which may be nil).
func newLobbyFrameReader(r io.Reader, mem kframe.MemoryScope) *lobbyFrameReader {
	return &lobbyFrameReader{r: kframe.NewReader(r, MaxLobbyFrameSize, kframe.Options{
		FrameTimeout: LobbyFrameTimeout, Memory: mem})}
}

// read returns the next frame. It returns io.EOF at a clean end between
// frames, an error wrapping ErrBadLobbyFrame for bytes that break the
// protocol, and the stream's own error otherwise.
func (fr *lobbyFrameReader) read() (lobbyFrame, error) {
	b, err := fr.r.Next()
	if err != nil {
		if kframe.IsPeerFault(err) {
			return lobbyFrame{}, fmt.Errorf("%w: %w", ErrBadLobbyFrame, err)
		}
		return lobbyFrame{}, err
	}
	return decodeLobbyFrame(b)
}

// decodeLobbyFrame decodes and checks the bytes of one LobbyFrame.
func decodeLobbyFrame(b []byte) (lobbyFrame, error) {
	var w pb.LobbyFrame
	if err := kframe.Unmarshal(b, &w); err != nil {
		return lobbyFrame{}, fmt.Errorf("%w: %w", ErrBadLobbyFrame, err)
	}
	return lobbyFrameFromWire(&w)
}

func lobbyIDFromBytes(b []byte) (LobbyID, error) {
	if len(b) != len(LobbyID{}) {
		return LobbyID{}, fmt.Errorf("%w: lobby id of %d bytes", ErrBadLobbyFrame, len(b))
	}
	return LobbyID(b), nil
}

func lobbyIDsFromWire(ids [][]byte) ([]LobbyID, error) {
	if len(ids) > MaxLobbies {
		return nil, fmt.Errorf("%w: %d lobby ids", ErrBadLobbyFrame, len(ids))
	}
	out := make([]LobbyID, len(ids))
	for i, b := range ids {
		id, err := lobbyIDFromBytes(b)
		if err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, nil
}

func lobbyFrameFromWire(w *pb.LobbyFrame) (lobbyFrame, error) {
	switch b := w.Body.(type) {
	case *pb.LobbyFrame_Message:
		m, err := lobbyMessageFromWire(b.Message)
		if err != nil {
			return lobbyFrame{}, err
		}
		return lobbyFrame{typ: lobbyFrameMessage, msg: &m}, nil
	case *pb.LobbyFrame_Subscribe:
		ids, err := lobbyIDsFromWire(b.Subscribe.GetLobbyIds())
		return lobbyFrame{typ: lobbyFrameSubscribe, lobbies: ids}, err
	case *pb.LobbyFrame_Unsubscribe:
		ids, err := lobbyIDsFromWire(b.Unsubscribe.GetLobbyIds())
		return lobbyFrame{typ: lobbyFrameUnsubscribe, lobbies: ids}, err
	case *pb.LobbyFrame_Announce:
		ls := b.Announce.GetLobbies()
		if len(ls) > MaxLobbies {
			return lobbyFrame{}, fmt.Errorf("%w: announcement of %d lobbies", ErrBadLobbyFrame, len(ls))
		}
		f := lobbyFrame{typ: lobbyFrameAnnounce, announce: make([]lobbyAnnounced, len(ls))}
		if ms := b.Announce.GetTimeMs(); ms > 0 {
			f.clock = time.UnixMilli(ms)
		}
		for i, l := range ls {
			a, err := lobbyInfoFromWire(l)
			if err != nil {
				return lobbyFrame{}, err
			}
			f.announce[i] = a
		}
		return f, nil
	case *pb.LobbyFrame_Invite:
		a, err := lobbyInfoFromWire(b.Invite.GetLobby())
		if err != nil {
			return lobbyFrame{}, err
		}
		nick := string(b.Invite.GetInviterNick())
		if err := CheckNick(nick); err != nil {
			return lobbyFrame{}, fmt.Errorf("%w: inviter: %w", ErrBadLobbyFrame, err)
		}
		return lobbyFrame{typ: lobbyFrameInvite, invite: &lobbyInviteFrame{lobby: a, private: b.Invite.GetPrivate(), nick: nick}}, nil
	case *pb.LobbyFrame_HistoryRequest:
		id, err := lobbyIDFromBytes(b.HistoryRequest.GetLobbyId())
		if err != nil {
			return lobbyFrame{}, err
		}
		return lobbyFrame{typ: lobbyFrameHistoryRequest, lobby: id, max: int(min(b.HistoryRequest.GetMax(), LobbyHistoryMax))}, nil
	case *pb.LobbyFrame_HistoryReply:
		id, err := lobbyIDFromBytes(b.HistoryReply.GetLobbyId())
		if err != nil {
			return lobbyFrame{}, err
		}
		ms, err := lobbyMessagesFromWire(id, b.HistoryReply.GetMessages())
		return lobbyFrame{typ: lobbyFrameHistoryReply, lobby: id, history: ms}, err
	case *pb.LobbyFrame_Have:
		id, ids, err := lobbyMessageIDsFromWire(b.Have, LobbySyncIDs)
		return lobbyFrame{typ: lobbyFrameHave, lobby: id, ids: ids}, err
	case *pb.LobbyFrame_Want:
		id, ids, err := lobbyMessageIDsFromWire(b.Want, LobbyWantMax)
		return lobbyFrame{typ: lobbyFrameWant, lobby: id, ids: ids}, err
	case *pb.LobbyFrame_SyncReply:
		id, err := lobbyIDFromBytes(b.SyncReply.GetLobbyId())
		if err != nil {
			return lobbyFrame{}, err
		}
		ms, err := lobbyMessagesFromWire(id, b.SyncReply.GetMessages())
		return lobbyFrame{typ: lobbyFrameSyncReply, lobby: id, history: ms, truncated: b.SyncReply.GetTruncated()}, err
	default:
		// A frame type from a later version: skipped (typ 0).
		return lobbyFrame{}, nil
	}
}

// lobbyMessagesFromWire checks the messages of a history or sync reply
// of lobby id: at most LobbyHistoryMax, all of that lobby.
func lobbyMessagesFromWire(id LobbyID, ms []*pb.LobbyMessage) ([]LobbyMessage, error) {
	if len(ms) > LobbyHistoryMax {
		return nil, fmt.Errorf("%w: reply of %d messages", ErrBadLobbyFrame, len(ms))
	}
	out := make([]LobbyMessage, len(ms))
	for i, wm := range ms {
		m, err := lobbyMessageFromWire(wm)
		if err != nil {
			return nil, err
		}
		if m.Lobby != id {
			return nil, fmt.Errorf("%w: reply of another lobby", ErrBadLobbyFrame)
		}
		out[i] = m
	}
	return out, nil
}

// lobbyMessageIDsFromWire checks a have or want frame: a lobby id and at
// most max message ids of 16 bytes.
func lobbyMessageIDsFromWire(w *pb.LobbyMessageIDs, max int) (LobbyID, []MsgID, error) {
	id, err := lobbyIDFromBytes(w.GetLobbyId())
	if err != nil {
		return LobbyID{}, nil, err
	}
	if len(w.GetIds()) > max {
		return LobbyID{}, nil, fmt.Errorf("%w: %d message ids", ErrBadLobbyFrame, len(w.GetIds()))
	}
	ids := make([]MsgID, len(w.GetIds()))
	for i, b := range w.GetIds() {
		if len(b) != len(MsgID{}) {
			return LobbyID{}, nil, fmt.Errorf("%w: message id of %d bytes", ErrBadLobbyFrame, len(b))
		}
		ids[i] = MsgID(b)
	}
	return id, ids, nil
}

// lobbyMessageFromWire checks the sizes of w's fixed-size fields.
func lobbyMessageFromWire(w *pb.LobbyMessage) (LobbyMessage, error) {
	if w == nil {
		return LobbyMessage{}, fmt.Errorf("%w: empty message", ErrBadLobbyFrame)
	}
	lobby, err := lobbyIDFromBytes(w.LobbyId)
	if err != nil {
		return LobbyMessage{}, err
	}
	switch {
	case len(w.Id) != len(MsgID{}):
		return LobbyMessage{}, fmt.Errorf("%w: message id of %d bytes", ErrBadLobbyFrame, len(w.Id))
	case len(w.Author) != len(ChatID{}):
		return LobbyMessage{}, fmt.Errorf("%w: author of %d bytes", ErrBadLobbyFrame, len(w.Author))
	case len(w.Signature) != ed25519.SignatureSize:
		return LobbyMessage{}, fmt.Errorf("%w: signature of %d bytes", ErrBadLobbyFrame, len(w.Signature))
	}
	m := LobbyMessage{
		Lobby: lobby, ID: MsgID(w.Id), Kind: LobbyKind(w.Kind), Author: ChatID(w.Author),
		Nick: string(w.Nick), Time: time.UnixMilli(w.TimeMs).UTC(), Text: string(w.Text), Sig: w.Signature,
	}
	if m.Kind == LobbyKindKeepAlive {
		m.every = time.Duration(min(w.KeepaliveS, uint32(LobbyKeepAliveWireMax/time.Second))) * time.Second
	}
	return m, nil
}

func lobbyMessageToWire(m *LobbyMessage) *pb.LobbyMessage {
	return &pb.LobbyMessage{
		LobbyId: m.Lobby[:], Id: m.ID[:], Kind: uint32(m.Kind), Author: m.Author[:],
		Nick: []byte(m.Nick), TimeMs: m.Time.UnixMilli(), Text: []byte(m.Text), Signature: m.Sig,
		KeepaliveS: uint32(min(m.every, LobbyKeepAliveWireMax) / time.Second),
	}
}

// lobbyInfoFromWire checks a lobby's id, name and topic.
func lobbyInfoFromWire(w *pb.LobbyInfo) (lobbyAnnounced, error) {
	if w == nil {
		return lobbyAnnounced{}, fmt.Errorf("%w: no lobby", ErrBadLobbyFrame)
	}
	id, err := lobbyIDFromBytes(w.Id)
	if err != nil {
		return lobbyAnnounced{}, err
	}
	a := lobbyAnnounced{ID: id, Name: string(w.Name), Topic: string(w.Topic), Participants: int(min(w.Participants, uint32(MaxLobbySize)))}
	if err := checkLobbyName(a.Name, a.Topic); err != nil {
		return lobbyAnnounced{}, fmt.Errorf("%w: %w", ErrBadLobbyFrame, err)
	}
	return a, nil
}

func lobbyInfoToWire(a lobbyAnnounced) *pb.LobbyInfo {
	return &pb.LobbyInfo{Id: a.ID[:], Name: []byte(a.Name), Topic: []byte(a.Topic), Participants: uint32(a.Participants)}
}

// checkLobbyName checks a lobby's name (1 to MaxLobbyName bytes) and
// topic (up to MaxLobbyTopic bytes): UTF-8 without control characters.
func checkLobbyName(name, topic string) error {
	if name == "" || len(name) > MaxLobbyName || !printable(name) {
		return fmt.Errorf("%w: 1 to %d bytes of text", ErrBadLobbyName, MaxLobbyName)
	}
	if len(topic) > MaxLobbyTopic || !printable(topic) {
		return fmt.Errorf("%w: up to %d bytes of text", ErrBadLobbyTopic, MaxLobbyTopic)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// appendLobbyFrame appends f with its length prefix to dst. A frame over
// MaxLobbyFrameSize is refused with an error wrapping ErrBadLobbyFrame and
// dst is returned as it was.
func appendLobbyFrame(dst []byte, f *pb.LobbyFrame) ([]byte, error) {
	out, err := kframe.Append(dst, f, MaxLobbyFrameSize)
	if errors.Is(err, kframe.ErrTooLarge) {
		return dst, fmt.Errorf("%w: %w", ErrBadLobbyFrame, err)
	}
	return out, err
}

// Frame constructors.

func msgFrame(m *LobbyMessage) *pb.LobbyFrame {
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_Message{Message: lobbyMessageToWire(m)}}
}

func idsToWire(ids []LobbyID) [][]byte {
	out := make([][]byte, len(ids))
	for i := range ids {
		out[i] = ids[i][:]
	}
	return out
}

func subscribeFrame(ids []LobbyID) *pb.LobbyFrame {
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_Subscribe{Subscribe: &pb.LobbySubscription{LobbyIds: idsToWire(ids)}}}
}

func unsubscribeFrame(ids []LobbyID) *pb.LobbyFrame {
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_Unsubscribe{Unsubscribe: &pb.LobbySubscription{LobbyIds: idsToWire(ids)}}}
}

func announceFrame(ls []lobbyAnnounced, now time.Time) *pb.LobbyFrame {
	w := &pb.LobbyAnnounce{TimeMs: now.UnixMilli()}
	for _, l := range ls {
		w.Lobbies = append(w.Lobbies, lobbyInfoToWire(l))
	}
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_Announce{Announce: w}}
}

func inviteFrame(a lobbyAnnounced, private bool, nick string) *pb.LobbyFrame {
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_Invite{Invite: &pb.LobbyInvite{
		Lobby: lobbyInfoToWire(a), Private: private, InviterNick: []byte(nick)}}}
}

func historyRequestFrame(id LobbyID, max int) *pb.LobbyFrame {
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_HistoryRequest{HistoryRequest: &pb.LobbyHistoryRequest{
		LobbyId: id[:], Max: uint32(max)}}}
}

func historyReplyFrame(id LobbyID, ms []LobbyMessage) *pb.LobbyFrame {
	w := &pb.LobbyHistoryReply{LobbyId: id[:]}
	for i := range ms {
		w.Messages = append(w.Messages, lobbyMessageToWire(&ms[i]))
	}
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_HistoryReply{HistoryReply: w}}
}

func msgIDsToWire(id LobbyID, ids []MsgID) *pb.LobbyMessageIDs {
	w := &pb.LobbyMessageIDs{LobbyId: id[:], Ids: make([][]byte, len(ids))}
	for i := range ids {
		w.Ids[i] = ids[i][:]
	}
	return w
}

func haveFrame(id LobbyID, ids []MsgID) *pb.LobbyFrame {
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_Have{Have: msgIDsToWire(id, ids)}}
}

func wantFrame(id LobbyID, ids []MsgID) *pb.LobbyFrame {
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_Want{Want: msgIDsToWire(id, ids)}}
}

func syncReplyFrame(id LobbyID, ms []LobbyMessage, truncated bool) *pb.LobbyFrame {
	w := &pb.LobbySyncReply{LobbyId: id[:], Truncated: truncated}
	for i := range ms {
		w.Messages = append(w.Messages, lobbyMessageToWire(&ms[i]))
	}
	return &pb.LobbyFrame{Body: &pb.LobbyFrame_SyncReply{SyncReply: w}}
}
