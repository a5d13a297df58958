package share

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer runs script on the server end of a pipe whose client end a
// Peer gets, for replies no real server would send.
func fakeServer(t *testing.T, script func(r *Reader, w *Writer, conn net.Conn)) *Peer {
	t.Helper()
	client, server := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer server.Close()
		script(NewReader(server), NewWriter(server), server)
	})
	p := NewPeer(client)
	t.Cleanup(func() {
		p.Close()
		server.Close()
		wg.Wait()
	})
	return p
}

// readRequest reads one request or fails the test.
func readRequest(t *testing.T, r *Reader) Frame {
	t.Helper()
	f, err := r.ReadFrame()
	if err != nil {
		t.Error(err)
	}
	return f
}

func TestPeerCancelInFlight(t *testing.T) {
	noLeaks(t)
	cat := newMemCatalog()
	dir := t.TempDir()
	_, slow := cat.add(t, dir, "slow", 5*GroupSize, true, false)
	data, fast := cat.add(t, dir, "fast", 3*GroupSize+9, true, false)
	gate := make(chan struct{})
	cat.gates[slow.Tree.Root] = gate
	p, _ := startPeer(t, tcpPair, cat, ScopeFriend)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	buf := make([]byte, MaxRangeData+MaxRangeProof)
	go func() {
		_, _, err := p.GetRange(ctx, slow.Tree.Root, slow.Tree.Size, 0, 5, buf)
		errc <- err
	}()
	<-cat.entered // the server is answering it
	// A request behind the slow one, then cancel the slow one.
	behind := make(chan error, 1)
	go func() {
		_, err := p.Have(context.Background(), fast.Tree.Root)
		behind <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled GetRange: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("cancelled GetRange did not return")
	}
	// The slow reply arrives and is dropped; buf, reused now, is left
	// alone; the stream goes on.
	clear(buf)
	close(gate)
	if err := <-behind; err != nil {
		t.Fatalf("request behind the cancelled one: %v", err)
	}
	checkRange(t, p, fast, data, 0, 4, buf)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.GetRange(ctx, fast.Tree.Root, fast.Tree.Size, 0, 1, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("GetRange with a done ctx: %v", err)
	}
}

func TestPeerCancelMidPayload(t *testing.T) {
	noLeaks(t)
	size := int64(4 * GroupSize)
	stall := make(chan struct{})
	p := fakeServer(t, func(r *Reader, w *Writer, conn net.Conn) {
		f := readRequest(t, r)
		proof := make([]byte, RangeProofSize(size, 0, 4))
		// Header, proof and half a group, then nothing.
		w.writeNoFlush(Frame{ID: f.ID, Msg: RangeReply{First: 0, Count: 4, ProofLen: len(proof), DataLen: size}})
		w.bw.Write(proof)
		w.bw.Write(make([]byte, GroupSize/2))
		w.bw.Flush()
		<-stall
	})
	defer close(stall)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := p.GetRange(ctx, EmptyRoot, size, 0, 4, make([]byte, size+MaxRangeProof))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetRange: %v", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond+abandonGrace+time.Second {
		t.Errorf("GetRange returned after %v", d)
	}
	// The stalled stream was given up.
	if _, err := p.Have(context.Background(), EmptyRoot); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("Have after a stall: %v", err)
	}
}

func TestPeerLyingReplies(t *testing.T) {
	size := int64(3*GroupSize + 100)
	proofLen := RangeProofSize(size, 1, 2)
	tests := []struct {
		name  string
		reply func(id uint64) Frame
	}{
		{"fewer groups", func(id uint64) Frame {
			return Frame{ID: id, Msg: RangeReply{First: 1, Count: 1, ProofLen: proofLen, DataLen: GroupSize}}
		}},
		{"other groups", func(id uint64) Frame {
			return Frame{ID: id, Msg: RangeReply{First: 0, Count: 2, ProofLen: proofLen, DataLen: 2 * GroupSize}}
		}},
		{"short data", func(id uint64) Frame {
			return Frame{ID: id, Msg: RangeReply{First: 1, Count: 2, ProofLen: proofLen, DataLen: 2*GroupSize - 1}}
		}},
		{"long proof", func(id uint64) Frame {
			return Frame{ID: id, Msg: RangeReply{First: 1, Count: 2, ProofLen: proofLen + NodeSize, DataLen: GroupSize + 100}}
		}},
		{"wrong id", func(id uint64) Frame {
			return Frame{ID: id + 1, Msg: RangeReply{First: 1, Count: 2, ProofLen: proofLen, DataLen: GroupSize + 100}}
		}},
		{"wrong type", func(id uint64) Frame {
			return Frame{ID: id, Msg: HaveReply{Size: size, Complete: true}}
		}},
		{"a request", func(id uint64) Frame {
			return Frame{ID: id, Msg: Have{Root: EmptyRoot}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			p := fakeServer(t, func(r *Reader, w *Writer, conn net.Conn) {
				f := readRequest(t, r)
				// The header only: a Peer that trusted it would wait
				// for a payload that never comes.
				m := tt.reply(f.ID)
				if rr, ok := m.Msg.(RangeReply); ok {
					w.writeNoFlush(Frame{ID: m.ID, Msg: rr})
					w.bw.Flush()
				} else {
					w.WriteFrame(m)
				}
				r.ReadFrame() // until the Peer closes
			})
			_, _, err := p.GetRange(context.Background(), EmptyRoot, size, 1, 2, nil)
			if !errors.Is(err, ErrBadReply) {
				t.Fatalf("GetRange: %v, want ErrBadReply", err)
			}
			if _, err := p.Have(context.Background(), EmptyRoot); !errors.Is(err, ErrBadReply) {
				t.Errorf("Have after a lie: %v", err)
			}
		})
	}
}

func TestPeerBadReplyKeepsStream(t *testing.T) {
	noLeaks(t)
	p := fakeServer(t, func(r *Reader, w *Writer, conn net.Conn) {
		f := readRequest(t, r)
		// A HaveReply with the wrong group count: invalid but whole.
		conn.Write(rawFrame(varintField(1, f.ID), field(3, append(varintField(1, 10), varintField(2, 2)...))))
		f = readRequest(t, r)
		conn.Write(rawFrame(varintField(1, f.ID), field(99, []byte("from the future"))))
		f = readRequest(t, r)
		w.WriteFrame(Frame{ID: f.ID, Msg: HaveReply{Size: 10, Complete: true}})
		r.ReadFrame()
	})
	for range 2 {
		if _, err := p.Have(context.Background(), EmptyRoot); !errors.Is(err, ErrBadReply) {
			t.Fatalf("bad HaveReply: %v", err)
		}
	}
	if h, err := p.Have(context.Background(), EmptyRoot); err != nil || h.Size != 10 {
		t.Errorf("Have after a bad reply: %+v, %v", h, err)
	}
}

func TestPeerStreamBreaks(t *testing.T) {
	noLeaks(t)
	const n = 5
	p := fakeServer(t, func(r *Reader, w *Writer, conn net.Conn) {
		for range n {
			readRequest(t, r)
		}
		// Return: the stream closes with every request pending.
	})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := p.Have(context.Background(), EmptyRoot); !errors.Is(err, ErrPeerClosed) {
				t.Errorf("pending Have: %v", err)
			}
		})
	}
	wg.Wait()
	if _, _, err := p.GetRange(context.Background(), EmptyRoot, 1, 0, 1, nil); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("later GetRange: %v", err)
	}
	if p.Err() == nil {
		t.Error("Err() = nil on a broken stream")
	}
}

func TestPeerClose(t *testing.T) {
	noLeaks(t)
	p := fakeServer(t, func(r *Reader, w *Writer, conn net.Conn) {
		readRequest(t, r)
		r.ReadFrame() // never answer; wait for the close
	})
	errc := make(chan error, 1)
	go func() {
		_, err := p.Browse(context.Background(), "", 0)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrPeerClosed) {
		t.Errorf("pending Browse: %v", err)
	}
	if _, err := p.Have(context.Background(), EmptyRoot); !errors.Is(err, ErrPeerClosed) {
		t.Errorf("Have after Close: %v", err)
	}
	if _, _, err := p.GetRange(context.Background(), EmptyRoot, 10, 0, 2, nil); !errors.Is(err, ErrBadRange) {
		t.Errorf("bad range: %v", err)
	}
}

// resetConn is a pipe end that records Reset, as a libp2p stream has it.
type resetConn struct {
	net.Conn
	resets, closes atomic.Int32
}

func (c *resetConn) Reset() error { c.resets.Add(1); return c.Conn.Close() }
func (c *resetConn) Close() error { c.closes.Add(1); return c.Conn.Close() }

// TestPeerAbortResets: Abort fails a request in flight like Close, but
// resets the stream instead of closing it, so that the source (and every
// relay of a tunnel) stops sending the replies it still owes.
func TestPeerAbortResets(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	go func() {
		r := NewReader(server)
		for {
			if _, err := r.ReadFrame(); err != nil {
				return
			}
		}
	}()
	rc := &resetConn{Conn: client}
	p := NewPeer(rc)
	errc := make(chan error, 1)
	go func() {
		_, _, err := p.GetRange(context.Background(), EmptyRoot, 4*GroupSize, 0, 2, make([]byte, 2*(GroupSize+MaxGroupProofSize)))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := p.Abort(); err != nil {
		t.Errorf("Abort: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrPeerClosed) {
		t.Errorf("request in flight: %v, want ErrPeerClosed", err)
	}
	if r, c := rc.resets.Load(), rc.closes.Load(); r != 1 || c != 0 {
		t.Errorf("Abort: %d resets and %d closes of the stream, want 1 and 0", r, c)
	}
	if err := p.Close(); err != nil || rc.closes.Load() != 0 {
		t.Errorf("Close after Abort: %v, %d closes; want nothing done", err, rc.closes.Load())
	}
}
