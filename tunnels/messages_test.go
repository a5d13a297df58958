package tunnels

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/libp2p/go-msgio/pbio"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"kith/tunnels/pb"
)

func validMessages(t testing.TB) []Message {
	key, _ := GenerateKey()
	sealed, err := Seal([32]byte(key.Public), testResults(2))
	if err != nil {
		t.Fatal(err)
	}
	return []Message{
		&Search{ID: SearchID{1}, Depth: 3, Keywords: "linux iso", ReplyKey: [32]byte{9}},
		&Search{ID: SearchID{2}, Depth: 0, RootHash: SearchHash(testRoot), ReplyKey: [32]byte{9}},
		&Search{ID: SearchID{3}, Depth: MaxDepth, Keywords: strings.Repeat("ü", MaxKeywordsLen/2), ReplyKey: [32]byte(key.Public)},
		&Search{ID: SearchID{4}, Depth: 2, RootHash: SearchHash(testRoot), ReplyKey: [32]byte{9}, Walk: true},
		&Search{ID: SearchID{5}, Depth: 6, RootHash: SearchHash(testRoot), ReplyKey: [32]byte{9}, Answers: 1},
		&Search{ID: SearchID{6}, Depth: 6, Keywords: "budget", ReplyKey: [32]byte{9}, Answers: MaxResultsPerSearch},
		&SearchResult{SearchID: SearchID{1}, Sealed: sealed},
		&TunnelRequest{ID: 1 << 63, Depth: 6, Target: TargetForRoot(testRoot), RequestID: RequestID{1, 2}},
		&TunnelOK{ID: 7},
		&TunnelFail{ID: 8, Code: FailNoRoute},
		&TunnelFail{ID: 8, Code: 99}, // unknown codes pass through
		&TunnelClose{ID: 9},
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewMessageWriter(&buf)
	msgs := validMessages(t)
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
	}
	r := NewMessageReader(&buf)
	for _, want := range msgs {
		got, err := r.Read()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v, %v; want %#v", got, err, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
	if FailNoRoute.String() != "no route" || FailCode(99).String() != "fail code 99" {
		t.Error("FailCode.String")
	}
}

func TestMessagesRefused(t *testing.T) {
	cases := map[string]Message{
		"deep":              &Search{ID: SearchID{1}, Depth: MaxDepth + 1, Keywords: "a", ReplyKey: [32]byte{1}},
		"negative depth":    &Search{ID: SearchID{1}, Depth: -1, Keywords: "a", ReplyKey: [32]byte{1}},
		"no query":          &Search{ID: SearchID{1}, ReplyKey: [32]byte{1}},
		"blank keywords":    &Search{ID: SearchID{1}, Keywords: "   ", ReplyKey: [32]byte{1}},
		"long keywords":     &Search{ID: SearchID{1}, Keywords: strings.Repeat("a", MaxKeywordsLen+1), ReplyKey: [32]byte{1}},
		"control keywords":  &Search{ID: SearchID{1}, Keywords: "a\x00b", ReplyKey: [32]byte{1}},
		"bad utf8 keywords": &Search{ID: SearchID{1}, Keywords: "a\xff", ReplyKey: [32]byte{1}},
		"zero reply key":    &Search{ID: SearchID{1}, Keywords: "a"},
		"short sealed":      &SearchResult{SearchID: SearchID{1}, Sealed: make([]byte, 10)},
		"long sealed":       &SearchResult{SearchID: SearchID{1}, Sealed: make([]byte, MaxSealedResults+1)},
		"tunnel zero id":    &TunnelRequest{Depth: 1, Target: [32]byte{1}},
		"tunnel deep":       &TunnelRequest{ID: 1, Depth: MaxDepth + 1, Target: [32]byte{1}},
		"ok zero id":        &TunnelOK{},
		"fail zero id":      &TunnelFail{},
		"close zero id":     &TunnelClose{},
	}
	for name, m := range cases {
		var buf bytes.Buffer
		if err := NewMessageWriter(&buf).Write(m); !errors.Is(err, ErrInvalidMessage) || buf.Len() != 0 {
			t.Errorf("%s: %v, %d bytes written", name, err, buf.Len())
		}
	}
}

// wire writes raw pb messages, bypassing the checks of MessageWriter.
func wire(t testing.TB, msgs ...proto.Message) *bytes.Buffer {
	var buf bytes.Buffer
	w := pbio.NewDelimitedWriter(&buf)
	for _, m := range msgs {
		if err := w.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	return &buf
}

func TestMessageReaderChecks(t *testing.T) {
	id16, key := make([]byte, 16), bytes.Repeat([]byte{1}, 32)
	search := func(s *pb.Search) *pb.RouterMessage {
		return &pb.RouterMessage{Body: &pb.RouterMessage_Search{Search: s}}
	}
	invalid := map[string]*pb.RouterMessage{
		"short id":        search(&pb.Search{Id: id16[:15], ReplyKey: key, Query: &pb.Search_Keywords{Keywords: "a"}}),
		"deep":            search(&pb.Search{Id: id16, Depth: 7, ReplyKey: key, Query: &pb.Search_Keywords{Keywords: "a"}}),
		"huge depth":      search(&pb.Search{Id: id16, Depth: 1 << 31, ReplyKey: key, Query: &pb.Search_Keywords{Keywords: "a"}}),
		"short hash":      search(&pb.Search{Id: id16, ReplyKey: key, Query: &pb.Search_RootHash{RootHash: key[:31]}}),
		"zero hash":       search(&pb.Search{Id: id16, ReplyKey: key, Query: &pb.Search_RootHash{RootHash: make([]byte, 32)}}),
		"zero short hash": search(&pb.Search{Id: id16, ReplyKey: key, Query: &pb.Search_RootHash{RootHash: make([]byte, SearchHashLen)}}),
		"hash of 17":      search(&pb.Search{Id: id16, ReplyKey: key, Query: &pb.Search_RootHash{RootHash: key[:SearchHashLen+1]}}),
		"hash of 15":      search(&pb.Search{Id: id16, ReplyKey: key, Query: &pb.Search_RootHash{RootHash: key[:SearchHashLen-1]}}),
		"empty keywords":  search(&pb.Search{Id: id16, ReplyKey: key, Query: &pb.Search_Keywords{}}),
		"short reply key": search(&pb.Search{Id: id16, ReplyKey: key[:5], Query: &pb.Search_Keywords{Keywords: "a"}}),
		"nil search":      search(nil),
		"nil result":      {Body: &pb.RouterMessage_SearchResult{}},
		"nil request":     {Body: &pb.RouterMessage_TunnelRequest{}},
		"short target":    {Body: &pb.RouterMessage_TunnelRequest{TunnelRequest: &pb.TunnelRequest{Id: 1, Target: key[:3]}}},
		"no request id":   {Body: &pb.RouterMessage_TunnelRequest{TunnelRequest: &pb.TunnelRequest{Id: 1, Target: key[:]}}},
		"nil ok":          {Body: &pb.RouterMessage_TunnelOk{}},
	}
	for name, m := range invalid {
		_, err := NewMessageReader(wire(t, m)).Read()
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: %v", name, err)
		}
	}

	// An unknown type is skipped and the stream stays usable.
	unknown := protowire.AppendTag(nil, 99, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("from the future"))
	var buf bytes.Buffer
	buf.Write(protowire.AppendVarint(nil, uint64(len(unknown))))
	buf.Write(unknown)
	NewMessageWriter(&buf).Write(&TunnelOK{ID: 5})
	r := NewMessageReader(&buf)
	if _, err := r.Read(); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("unknown type: %v", err)
	}
	if m, err := r.Read(); err != nil || m.(*TunnelOK).ID != 5 {
		t.Fatalf("after unknown type: %v, %v", m, err)
	}

	// Too large: refused before reading the body.
	big := protowire.AppendVarint(nil, MaxControlMsg+1)
	if _, err := NewMessageReader(bytes.NewReader(big)).Read(); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("oversize: %v", err)
	}
	// Garbage body, varint overflow, truncated body.
	for name, b := range map[string][]byte{
		"garbage":   {3, 0xff, 0xff, 0xff},
		"overflow":  bytes.Repeat([]byte{0xff}, 11),
		"truncated": {10, 1, 2},
	} {
		_, err := NewMessageReader(bytes.NewReader(b)).Read()
		if err == nil || err == io.EOF {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := DecodeMessage(make([]byte, MaxControlMsg+1)); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("DecodeMessage oversize: %v", err)
	}
}

// countingWriter counts the writes made to it.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

// TestMessageWriterOneWrite: each message is one write to the stream, so
// one stream frame, and what is written reads back.
func TestMessageWriterOneWrite(t *testing.T) {
	var cw countingWriter
	w := NewMessageWriter(&cw)
	msgs := []Message{
		&TunnelOK{ID: 7},
		&SearchResult{SearchID: SearchID{1}, Sealed: make([]byte, MaxSealedResults)},
		&TunnelFail{ID: 9, Code: FailLimit},
	}
	for i, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
		if cw.writes != i+1 {
			t.Fatalf("after %d messages, %d writes", i+1, cw.writes)
		}
	}
	r := NewMessageReader(bytes.NewReader(cw.Bytes()))
	for i := range msgs {
		if _, err := r.Read(); err != nil {
			t.Fatalf("message %d does not read back: %v", i, err)
		}
	}
}

// TestSearchAnswersOnTheWire: the answer budget is an optional field. A
// search without it (an older sender) reads as 0, which the router takes
// for MaxResultsPerSearch; a budget above MaxResultsPerSearch reads as
// MaxResultsPerSearch, not as an error, so that a later version may
// raise it.
func TestSearchAnswersOnTheWire(t *testing.T) {
	w := &pb.Search{Id: make([]byte, 16), Depth: 6, ReplyKey: bytes.Repeat([]byte{9}, 32),
		Query: &pb.Search_RootHash{RootHash: bytes.Repeat([]byte{1}, 32)}}
	for _, c := range []struct{ wire, want uint32 }{{0, 0}, {1, 1}, {5, 5}, {1000, MaxResultsPerSearch}} {
		w.Answers = c.wire
		b, err := proto.Marshal(&pb.RouterMessage{Body: &pb.RouterMessage_Search{Search: w}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := DecodeMessage(b)
		if err != nil {
			t.Fatalf("answers %d: %v", c.wire, err)
		}
		if got := m.(*Search).Answers; got != int(c.want) {
			t.Errorf("answers %d on the wire read as %d, want %d", c.wire, got, c.want)
		}
		if got := searchAnswers(m.(*Search)); got < 1 || got > MaxResultsPerSearch {
			t.Errorf("answers %d on the wire give a budget of %d", c.wire, got)
		}
	}
}

// TestSearchHashOnTheWire: a Search by root carries SearchHashLen bytes,
// and one from a sender of the whole 32-byte derivation (before the hash
// was cut) reads as the same query.
func TestSearchHashOnTheWire(t *testing.T) {
	h := SearchHash(testRoot)
	w, err := (&Search{ID: SearchID{1}, Depth: 3, RootHash: h, ReplyKey: [32]byte{9}}).toWire()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(w.GetSearch().GetRootHash()); got != SearchHashLen {
		t.Fatalf("root hash of %d bytes on the wire, want %d", got, SearchHashLen)
	}
	full := derive(searchHashContext, testRoot[:])
	b, err := proto.Marshal(&pb.RouterMessage{Body: &pb.RouterMessage_Search{Search: &pb.Search{
		Id: make([]byte, 16), Depth: 3, ReplyKey: bytes.Repeat([]byte{9}, 32), Query: &pb.Search_RootHash{RootHash: full[:]}}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(b)
	if err != nil {
		t.Fatalf("a 32-byte root hash: %v", err)
	}
	if m.(*Search).RootHash != h {
		t.Fatal("a 32-byte root hash reads as another query")
	}
}
