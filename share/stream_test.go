package share

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// sampleFrames has one valid frame of every kind but RangeReply.
func sampleFrames() []Frame {
	bm := NewBitmap(10)
	bm.Set(0)
	bm.Set(9)
	return []Frame{
		{ID: 1, Msg: Have{Root: EmptyRoot}},
		{ID: 2, Msg: HaveReply{Size: 10*GroupSize - 3, Bitmap: bm}},
		{ID: 3, Msg: HaveReply{Size: 0, Complete: true}},
		{ID: 4, Msg: GetRange{Root: EmptyRoot, First: 7, Count: MaxRangeGroups}},
		{ID: 5, Msg: Browse{Path: "music/été", Offset: 3}},
		{ID: 6, Msg: BrowseReply{More: true, Entries: []Entry{
			{Name: "a.txt", Size: 12, Root: EmptyRoot},
			{Name: "sub", Dir: true},
		}}},
		{ID: 7, Msg: ErrorReply{Code: CodeNotHeld, Message: "no"}},
		{ID: 1 << 60, Msg: ErrorReply{Code: ErrorCode(99)}},
		{ID: 0, Msg: BrowseReply{Entries: []Entry{}}},
		{ID: 8, Msg: HaveReply{Size: 10*GroupSize - 3, Bitmap: bm, Fetching: NewBitmap(10)}},
		{ID: 9, Msg: BrowseReply{Entries: []Entry{{Name: "album", Dir: true, Folder: [32]byte{1}}}}},
	}
}

func encodeFrames(t testing.TB, frames []Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestFrameRoundTrip(t *testing.T) {
	frames := sampleFrames()
	r := NewReader(bytes.NewReader(encodeFrames(t, frames)))
	for _, want := range frames {
		got, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", want.ID, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Errorf("at end: %v, want io.EOF", err)
	}
}

func TestHaveReplyHas(t *testing.T) {
	bm := NewBitmap(10)
	bm.Set(3)
	h := HaveReply{Size: 10 * GroupSize, Bitmap: bm}
	for i := int64(-1); i <= 10; i++ {
		if h.Has(i) != (i == 3) {
			t.Errorf("Has(%d) = %v", i, h.Has(i))
		}
	}
	c := HaveReply{Size: 10 * GroupSize, Complete: true}
	if !c.Has(0) || !c.Has(9) || c.Has(10) || c.Has(-1) {
		t.Error("complete reply misreports groups")
	}
}

func TestErrorReply(t *testing.T) {
	var err error = ErrorReply{Code: CodeNotFound, Message: "gone"}
	if err.Error() != "peer: not found: gone" {
		t.Errorf("Error() = %q", err.Error())
	}
	if s := ErrorCode(1234).String(); s != "error code 1234" {
		t.Errorf("unknown code: %q", s)
	}
	long := ErrorReply{Code: CodeInternal, Message: strings.Repeat("é", MaxErrorMessageLen)}
	f, err := NewReader(bytes.NewReader(encodeFrames(t, []Frame{{Msg: long}}))).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if m := f.Msg.(ErrorReply).Message; len(m) != MaxErrorMessageLen || !strings.HasPrefix(long.Message, m) {
		t.Errorf("long message cut to %d bytes", len(m))
	}
}

// rangeFixture is a file with its tree for range tests.
type rangeFixture struct {
	data []byte
	tree Tree
}

func newRangeFixture(t testing.TB, size int64) rangeFixture {
	data := testData(size)
	return rangeFixture{data: data, tree: mustHash(t, data)}
}

// serve answers GetRange requests on rw until EOF, the way a holder would.
func (fx rangeFixture) serve(t testing.TB, rw io.ReadWriter) error {
	r, w := NewReader(rw), NewWriter(rw)
	var proof []byte
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, ErrUnknownMessage) {
			if err := w.WriteFrame(Frame{ID: f.ID, Msg: ErrorReply{Code: CodeUnknownRequest}}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		req, ok := f.Msg.(GetRange)
		if !ok || req.Root != fx.tree.Root {
			if err := w.WriteFrame(Frame{ID: f.ID, Msg: ErrorReply{Code: CodeNotFound}}); err != nil {
				return err
			}
			continue
		}
		proof, err = fx.tree.AppendProof(proof[:0], req.First, req.Count)
		if err != nil {
			if err := w.WriteFrame(Frame{ID: f.ID, Msg: ErrorReply{Code: CodeBadRequest, Message: err.Error()}}); err != nil {
				return err
			}
			continue
		}
		off := req.First * GroupSize
		if err := w.WriteRange(f.ID, req.First, req.Count, proof, fx.data[off:off+RangeDataSize(fx.tree.Size, req.First, req.Count)]); err != nil {
			return err
		}
	}
}

func TestPipelinedRanges(t *testing.T) {
	fx := newRangeFixture(t, 20*GroupSize+1234)
	size := fx.tree.Size
	client, server := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer server.Close()
		if err := fx.serve(t, server); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { client.Close(); wg.Wait() })

	reqs := []GetRange{
		{Root: fx.tree.Root, First: 0, Count: 4},
		{Root: fx.tree.Root, First: 20, Count: 1},
		{Root: fx.tree.Root, First: 19, Count: 2}, // past the end: error
		{Root: EmptyRoot, First: 0, Count: 1},     // unknown file
		{Root: fx.tree.Root, First: 4, Count: 16},
	}
	// Write all requests before reading any reply; the requests are small
	// enough not to block behind replies on the unbuffered pipe.
	w := NewWriter(client)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, req := range reqs {
			if err := w.WriteFrame(Frame{ID: uint64(100 + i), Msg: req}); err != nil {
				t.Error(err)
			}
		}
	}()
	r := NewReader(client)
	got := make([]byte, size)
	for i, req := range reqs {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.ID != uint64(100+i) {
			t.Fatalf("reply %d has id %d", i, f.ID)
		}
		switch m := f.Msg.(type) {
		case RangeReply:
			if m.First != req.First || m.Count != req.Count || m.ProofLen != RangeProofSize(size, req.First, req.Count) ||
				m.DataLen != RangeDataSize(size, req.First, req.Count) {
				t.Fatalf("reply %d: %+v", i, m)
			}
			// Read the proof, then verify each group as it lands in place.
			proof := make([]byte, m.ProofLen)
			if err := r.ReadPayload(proof); err != nil {
				t.Fatal(err)
			}
			for g := m.First; g < m.First+m.Count; g++ {
				off, n := GroupBounds(size, g)
				if err := r.ReadPayload(got[off : off+n]); err != nil {
					t.Fatal(err)
				}
				p := GroupProofSize(size, g)
				if err := VerifyGroup(fx.tree.Root, size, g, got[off:off+n], proof[:p]); err != nil {
					t.Fatal(err)
				}
				proof = proof[p:]
			}
			if r.Pending() != 0 {
				t.Fatalf("%d payload bytes left", r.Pending())
			}
		case ErrorReply:
			if i != 2 && i != 3 {
				t.Fatalf("reply %d: %v", i, m)
			}
		default:
			t.Fatalf("reply %d: %T", i, m)
		}
	}
	if !bytes.Equal(got, fx.data) {
		t.Error("received data differs")
	}
}

func TestReadFrameSkipsUnreadPayload(t *testing.T) {
	fx := newRangeFixture(t, 3*GroupSize)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	proof, _ := fx.tree.AppendProof(nil, 1, 2)
	if err := w.WriteRange(1, 1, 2, proof, fx.data[GroupSize:]); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(Frame{ID: 2, Msg: Have{Root: fx.tree.Root}}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadPayload(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	f, err := r.ReadFrame()
	if err != nil || f.ID != 2 {
		t.Fatalf("after skipping: %+v, %v", f, err)
	}
	if err := r.ReadPayload(make([]byte, 1)); !errors.Is(err, ErrNoPayload) {
		t.Errorf("payload of a Have: %v", err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	fx := newRangeFixture(t, GroupSize)
	var buf bytes.Buffer
	proof, _ := fx.tree.AppendProof(nil, 0, 1)
	if err := NewWriter(&buf).WriteRange(1, 0, 1, proof, fx.data); err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(buf.Bytes()[:buf.Len()-1]))
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadPayload(make([]byte, GroupSize)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short payload: %v", err)
	}
	enc := encodeFrames(t, sampleFrames()[:1])
	if _, err := NewReader(bytes.NewReader(enc[:len(enc)-1])).ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short frame: %v", err)
	}
}

// rawFrame builds a delimited frame from protobuf fields by hand, to send
// what our Writer never would.
func rawFrame(fields ...[]byte) []byte {
	var msg []byte
	for _, f := range fields {
		msg = append(msg, f...)
	}
	return append(protowire.AppendVarint(nil, uint64(len(msg))), msg...)
}

func field(num protowire.Number, msg []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func TestUnknownMessageKeepsStream(t *testing.T) {
	stream := rawFrame(varintField(1, 42), field(99, []byte("from the future")))
	stream = append(stream, rawFrame(varintField(1, 43))...) // no body at all
	stream = append(stream, encodeFrames(t, sampleFrames()[:1])...)
	r := NewReader(bytes.NewReader(stream))
	for _, id := range []uint64{42, 43} {
		f, err := r.ReadFrame()
		if !errors.Is(err, ErrUnknownMessage) || f.ID != id {
			t.Fatalf("got %+v, %v; want id %d and ErrUnknownMessage", f, err, id)
		}
	}
	if f, err := r.ReadFrame(); err != nil || f.ID != 1 {
		t.Fatalf("after unknown messages: %+v, %v", f, err)
	}
}

func TestBadMessages(t *testing.T) {
	root := EmptyRoot[:]
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"too large", protowire.AppendVarint(nil, MaxMessageSize+1), ErrMessageTooLarge},
		{"not protobuf", rawFrame([]byte{0xff, 0xff}), ErrBadMessage},
		{"short root", rawFrame(field(2, field(1, root[:31]))), ErrBadMessage},
		{"range count 0", rawFrame(field(4, append(field(1, root), varintField(3, 0)...))), ErrBadRange},
		{"range too long", rawFrame(field(4, append(field(1, root), varintField(3, MaxRangeGroups+1)...))), ErrBadRange},
		{"range past max", rawFrame(field(4, append(append(field(1, root), varintField(2, 1<<62)...), varintField(3, 1)...))), ErrBadRange},
		{"reply data too long", rawFrame(field(5, append(varintField(2, 1), varintField(4, GroupSize+1)...))), ErrBadProof},
		{"reply no data", rawFrame(field(5, varintField(2, 1))), ErrBadProof},
		{"reply odd proof", rawFrame(field(5, append(append(varintField(2, 1), varintField(3, 63)...), varintField(4, 1)...))), ErrBadProof},
		{"have too large", rawFrame(field(3, append(varintField(1, MaxFileSize+1), varintField(2, MaxGroups+1)...))), ErrFileTooLarge},
		{"have wrong groups", rawFrame(field(3, append(varintField(1, 10), varintField(2, 2)...))), ErrBadMessage},
		{"have short bitmap", rawFrame(field(3, append(varintField(1, 9*GroupSize), varintField(2, 9)...))), ErrBadMessage},
		{"browse dotdot", rawFrame(field(6, field(1, []byte("a/../b")))), ErrBadName},
		{"browse absolute", rawFrame(field(6, field(1, []byte("/etc")))), ErrBadName},
		{"browse long", rawFrame(field(6, field(1, bytes.Repeat([]byte("a/"), MaxPathLen)))), ErrBadName},
		{"entry bad name", rawFrame(field(7, field(1, field(1, []byte("a/b"))))), ErrBadName},
		{"entry file without root", rawFrame(field(7, field(1, field(1, []byte("a"))))), ErrBadRoot},
		{"entry dir with root", rawFrame(field(7, field(1, append(append(field(1, []byte("a")), varintField(2, 1)...), field(4, root)...)))), ErrBadMessage},
		{"error too long", rawFrame(field(8, field(2, bytes.Repeat([]byte("x"), MaxErrorMessageLen+1)))), ErrBadMessage},
		{"bad utf8", rawFrame(field(8, field(2, []byte{0xff}))), ErrBadMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.stream)).ReadFrame()
			if !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWriterRefuses(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.WriteFrame(Frame{Msg: RangeReply{Count: 1}}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("RangeReply via WriteFrame: %v", err)
	}
	if err := w.WriteFrame(Frame{}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("nil message: %v", err)
	}
	entries := make([]Entry, 10000)
	for i := range entries {
		entries[i] = Entry{Name: strings.Repeat("n", MaxNameLen), Size: 1}
	}
	if err := w.WriteFrame(Frame{Msg: BrowseReply{Entries: entries}}); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("huge reply: %v", err)
	}
	if err := w.WriteRange(1, 0, 0, nil, nil); !errors.Is(err, ErrBadRange) {
		t.Errorf("empty range: %v", err)
	}
	if err := w.WriteRange(1, 0, 1, nil, make([]byte, MaxRangeData+1)); !errors.Is(err, ErrBadRange) {
		t.Errorf("huge range: %v", err)
	}
}

// FuzzReadFrame feeds arbitrary bytes to a Reader, reading payloads as a
// client would. It must never panic, allocate past its caps, or return a
// frame that breaks the documented invariants; valid frames must survive a
// round trip.
func FuzzReadFrame(f *testing.F) {
	for _, fr := range sampleFrames() {
		f.Add(encodeFrames(f, []Frame{fr}))
	}
	fx := newRangeFixture(f, 2*GroupSize+5)
	var buf bytes.Buffer
	proof, _ := fx.tree.AppendProof(nil, 1, 2)
	NewWriter(&buf).WriteRange(9, 1, 2, proof, fx.data[GroupSize:])
	f.Add(buf.Bytes()[:200])
	f.Add(rawFrame(varintField(1, 42), field(99, []byte("x"))))
	f.Add(rawFrame(field(5, append(varintField(2, 1), varintField(4, 3)...)), []byte("abc")))
	f.Add(protowire.AppendVarint(nil, MaxMessageSize+1))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := NewReader(bytes.NewReader(stream))
		for range 100 {
			fr, err := r.ReadFrame()
			if errors.Is(err, ErrUnknownMessage) {
				continue
			}
			if err != nil {
				return
			}
			if rr, ok := fr.Msg.(RangeReply); ok {
				if rr.DataLen > MaxRangeData || rr.ProofLen > MaxRangeProof || r.Pending() != int64(rr.ProofLen)+rr.DataLen {
					t.Fatalf("accepted %+v", rr)
				}
				p := make([]byte, min(r.Pending(), 1000))
				if err := r.ReadPayload(p); err != nil {
					return
				}
				continue
			}
			back, err := NewReader(bytes.NewReader(encodeFrames(t, []Frame{fr}))).ReadFrame()
			if err != nil || !reflect.DeepEqual(back, fr) {
				t.Fatalf("%#v did not survive a round trip: %#v, %v", fr, back, err)
			}
		}
	})
}

// BenchmarkRangeStream measures framing overhead: a holder sends 16 MiB
// ranges over an in-memory pipe, a reader reads each group into place. Set
// against BenchmarkRawStream, which moves the same bytes with no framing.
func BenchmarkRangeStream(b *testing.B) {
	fx := newRangeFixture(b, MaxRangeData)
	proof, _ := fx.tree.AppendProof(nil, 0, MaxRangeGroups)
	c1, c2 := net.Pipe()
	defer c1.Close()
	go func() {
		defer c2.Close()
		w := NewWriter(c2)
		for {
			if err := w.WriteRange(1, 0, MaxRangeGroups, proof, fx.data); err != nil {
				return
			}
		}
	}()
	r := NewReader(c1)
	dst := make([]byte, MaxRangeData)
	pbuf := make([]byte, MaxRangeProof)
	b.SetBytes(MaxRangeData)
	for b.Loop() {
		f, err := r.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		m := f.Msg.(RangeReply)
		if err := r.ReadPayload(pbuf[:m.ProofLen]); err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < m.DataLen; off += GroupSize {
			if err := r.ReadPayload(dst[off : off+GroupSize]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkRawStream(b *testing.B) {
	data := testData(MaxRangeData)
	c1, c2 := net.Pipe()
	defer c1.Close()
	go func() {
		defer c2.Close()
		for {
			if _, err := c2.Write(data); err != nil {
				return
			}
		}
	}()
	dst := make([]byte, MaxRangeData)
	b.SetBytes(MaxRangeData)
	for b.Loop() {
		for off := 0; off < len(dst); off += GroupSize {
			if _, err := io.ReadFull(c1, dst[off:off+GroupSize]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
