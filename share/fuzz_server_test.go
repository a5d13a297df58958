package share

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"
)

// fuzzStream is a stream whose requests come from fuzz bytes and whose
// replies are counted and dropped.
type fuzzStream struct {
	r       io.Reader
	written int64
}

func (s *fuzzStream) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *fuzzStream) Write(p []byte) (int, error) {
	s.written += int64(len(p))
	return len(p), nil
}
func (s *fuzzStream) Close() error { return nil }

// FuzzServe feeds arbitrary bytes to Server.Serve as a peer's requests,
// with a catalog of one small file. Serve must not panic, must end when the
// bytes do, and must write a bounded reply per request byte.
func FuzzServe(f *testing.F) {
	cat := newMemCatalog()
	const size = 3*GroupSize + 5 // big enough for a proof
	_, sf := cat.add(f, f.TempDir(), "f", size, true, true)
	cat.folders[""] = []Entry{{Name: "share", Dir: true}}
	root := sf.Tree.Root
	for _, frames := range [][]Frame{
		{{ID: 1, Msg: Have{Root: root}}},
		{{ID: 2, Msg: GetRange{Root: root, First: 0, Count: 1}}},
		{{ID: 3, Msg: GetRange{Root: root, First: 1, Count: 3}}, {ID: 4, Msg: Have{Root: EmptyRoot}}},
		{{ID: 5, Msg: Browse{Path: ""}}, {ID: 6, Msg: Browse{Path: "share/x", Offset: 2}}},
		{{ID: 7, Msg: GetRange{Root: root, First: 3, Count: 2}}},
		{{ID: 8, Msg: ErrorReply{Code: CodeBusy}}, {ID: 9, Msg: HaveReply{Size: 1, Complete: true}}},
	} {
		f.Add(encodeFrames(f, frames), true)
	}
	f.Add(rawFrame(varintField(1, 42), field(99, []byte("x"))), false)
	f.Add(rawFrame([]byte{0xff, 0xff}), true)
	f.Add([]byte{0}, false)
	f.Fuzz(func(t *testing.T, stream []byte, friend bool) {
		scope := ScopeAnonymous
		if friend {
			scope = ScopeFriend
		}
		rw := &fuzzStream{r: bytes.NewReader(stream)}
		done := make(chan error, 1)
		go func() { done <- NewServer(cat).Serve(context.Background(), rw, scope) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not end with its input")
		}
		// Each request is at least one byte and gets one reply: a whole
		// file with proof, a listing, or an error.
		perReply := int64(size + RangeProofSize(size, 0, Groups(size)) + MaxErrorMessageLen + 1024)
		if limit := int64(len(stream)+1) * perReply; rw.written > limit {
			t.Fatalf("%d bytes of replies to %d bytes of requests", rw.written, len(stream))
		}
	})
}

// replyStream is a stream whose replies come from fuzz bytes; requests are
// dropped.
type replyStream struct {
	r io.Reader
}

func (s *replyStream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *replyStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *replyStream) Close() error                { return nil }

// FuzzPeerReplies feeds arbitrary bytes to a Peer as the replies to one
// GetRange. It must not panic, must return, and must never read more than
// the request's lengths nor allocate past the caps.
func FuzzPeerReplies(f *testing.F) {
	fx := newRangeFixture(f, 3*GroupSize+5)
	size := fx.tree.Size
	proof, _ := fx.tree.AppendProof(nil, 1, 2)
	var good bytes.Buffer
	NewWriter(&good).WriteRange(1, 1, 2, proof, fx.data[GroupSize:])
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:300])
	f.Add(encodeFrames(f, []Frame{{ID: 1, Msg: ErrorReply{Code: CodeNotFound}}}))
	f.Add(encodeFrames(f, []Frame{{ID: 1, Msg: HaveReply{Size: 1, Complete: true}}}))
	var lie bytes.Buffer
	NewWriter(&lie).WriteRange(1, 1, 1, proof[:GroupProofSize(size, 1)], fx.data[GroupSize:2*GroupSize])
	f.Add(lie.Bytes())
	f.Add(rawFrame(varintField(1, 1), field(99, []byte("x"))))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		buf := make([]byte, 2*GroupSize+MaxRangeProof)
		p := NewPeer(&replyStream{r: bytes.NewReader(stream)})
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		data, proof, err := p.GetRange(ctx, fx.tree.Root, size, 1, 2, buf)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("GetRange did not return")
		}
		if err == nil {
			if int64(len(data)) != RangeDataSize(size, 1, 2) || len(proof) != RangeProofSize(size, 1, 2) ||
				&data[0] != &buf[0] || &proof[0] != &buf[len(data)] {
				t.Fatalf("accepted %d data and %d proof bytes", len(data), len(proof))
			}
		}
		p.Close()
		runtime.ReadMemStats(&after)
		// Stream buffers, at most one message of MaxMessageSize, and
		// slack for the runtime; never a payload of the peer's choosing.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*MaxMessageSize {
			t.Fatalf("allocated %d bytes", grew)
		}
	})
}
