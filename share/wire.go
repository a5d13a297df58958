package share

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"kith/share/pb"
)

// ProtocolID is the libp2p protocol ID of the share protocol. The same
// protocol also runs over tunnel sessions, which carry no protocol ID.
//
// Its streams are in the resource-manager service "kith.share": the f2f
// host attaches every kith protocol's streams (f2f.ServiceOf).
const ProtocolID = "/kith/share/1"

// Message is the body of a Frame: one of Have, HaveReply, GetRange,
// RangeReply, Browse, BrowseReply or ErrorReply.
type Message interface {
	isMessage()
}

// Frame is one message on a share stream with its request ID. A reply
// carries the ID of the request it answers.
type Frame struct {
	ID  uint64
	Msg Message
}

// Have asks which groups of a file the peer holds.
type Have struct {
	Root [32]byte
}

// HaveReply answers Have.
type HaveReply struct {
	// Size is the file size in bytes.
	Size int64
	// Complete is set when the peer holds every group; Bitmap is then nil.
	Complete bool
	// Bitmap marks the groups held when not Complete.
	Bitmap Bitmap
}

// Has reports whether the peer holds group i.
func (h HaveReply) Has(i int64) bool {
	if i < 0 || i >= Groups(h.Size) {
		return false
	}
	return h.Complete || h.Bitmap.Has(i)
}

// GetRange asks for Count groups from First of the file with Root, with
// their proofs. Count is between 1 and MaxRangeGroups.
type GetRange struct {
	Root  [32]byte
	First int64
	Count int64
}

// RangeReply answers GetRange. On the stream it is followed by ProofLen
// bytes of proof (see VerifyRange) and DataLen bytes of data, which
// Reader.ReadPayload reads. Write it with Writer.WriteRange.
type RangeReply struct {
	First    int64
	Count    int64
	ProofLen int
	DataLen  int64
}

// Browse lists a shared folder. Path is relative with "/" separators; ""
// lists the shared folders themselves. Offset skips entries, for paging.
type Browse struct {
	Path   string
	Offset int
}

// BrowseReply answers Browse. More is set when the listing goes on past
// Entries.
type BrowseReply struct {
	Entries []Entry
	More    bool
}

// Entry is one file or folder of a BrowseReply. Size and Root are zero for
// folders.
type Entry struct {
	Name string
	Dir  bool
	Size int64
	Root [32]byte
}

// ErrorCode says why a request failed. Values are append-only and match
// pb.ErrorCode; a code this version does not know is kept as is.
type ErrorCode int32

// Error codes.
const (
	CodeUnspecified    = ErrorCode(pb.ErrorCode_ERROR_CODE_UNSPECIFIED)
	CodeUnknownRequest = ErrorCode(pb.ErrorCode_ERROR_CODE_UNKNOWN_REQUEST)
	CodeBadRequest     = ErrorCode(pb.ErrorCode_ERROR_CODE_BAD_REQUEST)
	CodeNotFound       = ErrorCode(pb.ErrorCode_ERROR_CODE_NOT_FOUND)
	CodeNotHeld        = ErrorCode(pb.ErrorCode_ERROR_CODE_NOT_HELD)
	CodeBusy           = ErrorCode(pb.ErrorCode_ERROR_CODE_BUSY)
	CodeInternal       = ErrorCode(pb.ErrorCode_ERROR_CODE_INTERNAL)
)

// String returns a short name for c, such as "not found".
func (c ErrorCode) String() string {
	if name, ok := pb.ErrorCode_name[int32(c)]; ok {
		return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "ERROR_CODE_")), "_", " ")
	}
	return fmt.Sprintf("error code %d", int32(c))
}

// ErrorReply answers a request that failed. It is also an error, so a
// requester can return it as is.
type ErrorReply struct {
	Code    ErrorCode
	Message string
}

// Error implements error.
func (e ErrorReply) Error() string {
	if e.Message == "" {
		return "peer: " + e.Code.String()
	}
	return "peer: " + e.Code.String() + ": " + e.Message
}

func (Have) isMessage()        {}
func (HaveReply) isMessage()   {}
func (GetRange) isMessage()    {}
func (RangeReply) isMessage()  {}
func (Browse) isMessage()      {}
func (BrowseReply) isMessage() {}
func (ErrorReply) isMessage()  {}

// Bitmap is a set of groups: bit i%8 of byte i/8 is group i.
type Bitmap []byte

// NewBitmap returns an empty bitmap for a file of groups groups.
func NewBitmap(groups int64) Bitmap {
	return make(Bitmap, (groups+7)/8)
}

// Has reports whether group i is in the set.
func (b Bitmap) Has(i int64) bool {
	return i >= 0 && i/8 < int64(len(b)) && b[i/8]&(1<<(i%8)) != 0
}

// Set adds group i, which must be below 8*len(b), to the set.
func (b Bitmap) Set(i int64) {
	b[i/8] |= 1 << (i % 8)
}

// toWire converts f to its protobuf form.
func (f Frame) toWire() (*pb.Frame, error) {
	w := &pb.Frame{Id: f.ID}
	switch m := f.Msg.(type) {
	case Have:
		w.Body = &pb.Frame_Have{Have: &pb.Have{Root: m.Root[:]}}
	case HaveReply:
		r := &pb.HaveReply{Size: uint64(m.Size), Groups: uint64(Groups(m.Size)), Complete: m.Complete}
		if !m.Complete {
			r.Bitmap = m.Bitmap
		}
		w.Body = &pb.Frame_HaveReply{HaveReply: r}
	case GetRange:
		w.Body = &pb.Frame_GetRange{GetRange: &pb.GetRange{
			Root: m.Root[:], FirstGroup: uint64(m.First), Count: uint32(m.Count),
		}}
	case RangeReply:
		w.Body = &pb.Frame_RangeReply{RangeReply: &pb.RangeReply{
			FirstGroup: uint64(m.First), Count: uint32(m.Count), ProofLen: uint32(m.ProofLen), DataLen: uint64(m.DataLen),
		}}
	case Browse:
		w.Body = &pb.Frame_Browse{Browse: &pb.Browse{Path: m.Path, Offset: uint32(m.Offset)}}
	case BrowseReply:
		r := &pb.BrowseReply{More: m.More, Entries: make([]*pb.Entry, len(m.Entries))}
		for i, e := range m.Entries {
			r.Entries[i] = &pb.Entry{Name: e.Name, Dir: e.Dir, Size: uint64(e.Size)}
			if !e.Dir {
				r.Entries[i].Root = e.Root[:]
			}
		}
		w.Body = &pb.Frame_BrowseReply{BrowseReply: r}
	case ErrorReply:
		w.Body = &pb.Frame_Error{Error: &pb.Error{
			Code: pb.ErrorCode(m.Code), Message: truncateUTF8(m.Message, MaxErrorMessageLen),
		}}
	default:
		return nil, fmt.Errorf("%w: cannot send %T", ErrBadMessage, f.Msg)
	}
	return w, nil
}

// fromWire converts and checks a received frame. It returns the ID even on
// error, so that a bad request can be answered. An empty or unknown body
// gives ErrUnknownMessage.
func fromWire(w *pb.Frame) (Frame, error) {
	f := Frame{ID: w.GetId()}
	var err error
	switch b := w.GetBody().(type) {
	case *pb.Frame_Have:
		var m Have
		m.Root, err = rootFromWire(b.Have.GetRoot())
		f.Msg = m
	case *pb.Frame_HaveReply:
		f.Msg, err = haveReplyFromWire(b.HaveReply)
	case *pb.Frame_GetRange:
		f.Msg, err = getRangeFromWire(b.GetRange)
	case *pb.Frame_RangeReply:
		f.Msg, err = rangeReplyFromWire(b.RangeReply)
	case *pb.Frame_Browse:
		m := Browse{Path: b.Browse.GetPath(), Offset: int(b.Browse.GetOffset())}
		err = CheckPath(m.Path)
		f.Msg = m
	case *pb.Frame_BrowseReply:
		f.Msg, err = browseReplyFromWire(b.BrowseReply)
	case *pb.Frame_Error:
		m := ErrorReply{Code: ErrorCode(b.Error.GetCode()), Message: b.Error.GetMessage()}
		if len(m.Message) > MaxErrorMessageLen {
			err = fmt.Errorf("error message of %d bytes", len(m.Message))
		}
		f.Msg = m
	default:
		return f, fmt.Errorf("reading share message %d: %w", f.ID, ErrUnknownMessage)
	}
	if err != nil {
		return f, fmt.Errorf("reading share message %d: %w: %w", f.ID, ErrBadMessage, err)
	}
	return f, nil
}

func rootFromWire(b []byte) ([32]byte, error) {
	var root [32]byte
	if len(b) != len(root) {
		return root, ErrBadRoot
	}
	copy(root[:], b)
	return root, nil
}

func haveReplyFromWire(w *pb.HaveReply) (HaveReply, error) {
	if w.GetSize() > MaxFileSize {
		return HaveReply{}, ErrFileTooLarge
	}
	m := HaveReply{Size: int64(w.GetSize()), Complete: w.GetComplete()}
	groups := Groups(m.Size)
	if w.GetGroups() != uint64(groups) {
		return HaveReply{}, fmt.Errorf("%d groups for %d bytes", w.GetGroups(), m.Size)
	}
	switch {
	case m.Complete && len(w.GetBitmap()) != 0:
		return HaveReply{}, fmt.Errorf("bitmap with complete file")
	case !m.Complete && int64(len(w.GetBitmap())) != (groups+7)/8:
		return HaveReply{}, fmt.Errorf("bitmap of %d bytes for %d groups", len(w.GetBitmap()), groups)
	}
	if !m.Complete {
		m.Bitmap = w.GetBitmap()
	}
	return m, nil
}

func getRangeFromWire(w *pb.GetRange) (GetRange, error) {
	root, err := rootFromWire(w.GetRoot())
	if err != nil {
		return GetRange{}, err
	}
	m := GetRange{Root: root, First: int64(min(w.GetFirstGroup(), MaxGroups)), Count: int64(w.GetCount())}
	if m.Count < 1 || m.Count > MaxRangeGroups || m.First+m.Count > MaxGroups {
		return GetRange{}, fmt.Errorf("%w: %d groups from %d", ErrBadRange, w.GetCount(), w.GetFirstGroup())
	}
	return m, nil
}

func rangeReplyFromWire(w *pb.RangeReply) (RangeReply, error) {
	m := RangeReply{
		First:    int64(min(w.GetFirstGroup(), MaxGroups)),
		Count:    int64(w.GetCount()),
		ProofLen: int(w.GetProofLen()),
		DataLen:  int64(min(w.GetDataLen(), MaxRangeData+1)),
	}
	if m.Count < 1 || m.Count > MaxRangeGroups || m.First+m.Count > MaxGroups {
		return RangeReply{}, fmt.Errorf("%w: %d groups from %d", ErrBadRange, w.GetCount(), w.GetFirstGroup())
	}
	// Every group but the last is whole; the last has 1 to GroupSize bytes.
	if m.DataLen <= (m.Count-1)*GroupSize || m.DataLen > m.Count*GroupSize ||
		m.ProofLen%NodeSize != 0 || m.ProofLen > int(m.Count)*MaxGroupProofSize {
		return RangeReply{}, fmt.Errorf("%w: %d proof and %d data bytes for %d groups", ErrBadProof, w.GetProofLen(), w.GetDataLen(), m.Count)
	}
	return m, nil
}

func browseReplyFromWire(w *pb.BrowseReply) (BrowseReply, error) {
	if len(w.GetEntries()) > MaxBrowseEntries {
		return BrowseReply{}, fmt.Errorf("%d entries", len(w.GetEntries()))
	}
	m := BrowseReply{More: w.GetMore(), Entries: make([]Entry, len(w.GetEntries()))}
	for i, we := range w.GetEntries() {
		e := Entry{Name: we.GetName(), Dir: we.GetDir()}
		if err := CheckName(e.Name); err != nil {
			return BrowseReply{}, err
		}
		if e.Dir {
			if we.GetSize() != 0 || len(we.GetRoot()) != 0 {
				return BrowseReply{}, fmt.Errorf("folder %q with size or root", e.Name)
			}
		} else {
			if we.GetSize() > MaxFileSize {
				return BrowseReply{}, ErrFileTooLarge
			}
			e.Size = int64(we.GetSize())
			var err error
			if e.Root, err = rootFromWire(we.GetRoot()); err != nil {
				return BrowseReply{}, err
			}
		}
		m.Entries[i] = e
	}
	return m, nil
}

// CheckPath returns an error wrapping ErrBadName unless p is "" or a
// relative path of names that pass CheckName, separated by single slashes,
// at most MaxPathLen bytes long. Such a path can be joined to a shared
// folder without escaping it.
func CheckPath(p string) error {
	if len(p) > MaxPathLen {
		return fmt.Errorf("%w: path of %d bytes", ErrBadName, len(p))
	}
	if p == "" {
		return nil
	}
	for elem := range strings.SplitSeq(p, "/") {
		if err := CheckName(elem); err != nil {
			return err
		}
	}
	return nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
