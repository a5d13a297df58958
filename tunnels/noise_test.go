package tunnels

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flynn/noise"
)

var testRoot = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}

// fileSessions runs a file handshake over a and b at once.
func fileSessions(t testing.TB, a, b io.ReadWriteCloser, rootA, rootB [32]byte) (*Session, *Session, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var r *Session
	var errR error
	done := make(chan struct{})
	go func() { defer close(done); r, errR = AcceptFileSession(ctx, b, rootB) }()
	i, errI := OpenFileSession(ctx, a, rootA)
	<-done
	return i, r, errI, errR
}

func mustFileSessions(t testing.TB) (*Session, *Session) {
	t.Helper()
	a, b := tcpPair(t)
	i, r, errI, errR := fileSessions(t, a, b, testRoot, testRoot)
	if errI != nil || errR != nil {
		t.Fatalf("handshake: %v, %v", errI, errR)
	}
	t.Cleanup(func() { i.Close(); r.Close() })
	return i, r
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// readAllSmall reads r to the end with reads of at most chunk bytes.
func readAllSmall(r io.Reader, chunk int) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

func TestFileSessionBothWays(t *testing.T) {
	sizes := []int{1, 100, MaxFramePayload - 1, MaxFramePayload, MaxFramePayload + 1, 64 << 10,
		SessionWriteBatch*MaxFramePayload + 7, 1 << 20}
	for _, chunk := range []int{1 << 20, 64 << 10, 1000, 7} {
		i, r := mustFileSessions(t)
		var want bytes.Buffer
		for _, n := range sizes {
			want.Write(randBytes(n))
		}
		back := randBytes(300_000)
		var wg sync.WaitGroup
		wg.Add(2)
		var werr, rerr error
		var gotBack []byte
		go func() { // initiator writes in varied sizes, then reads the reply
			defer wg.Done()
			p := want.Bytes()
			for _, n := range sizes {
				if _, werr = i.Write(p[:n]); werr != nil {
					return
				}
				p = p[n:]
			}
			if _, werr = i.Write(nil); werr != nil {
				return
			}
			if werr = i.CloseWrite(); werr != nil {
				return
			}
			gotBack, werr = readAllSmall(i, chunk)
		}()
		var got []byte
		go func() { // responder writes its reply while reading
			defer wg.Done()
			if _, rerr = r.Write(back); rerr != nil {
				return
			}
			if rerr = r.CloseWrite(); rerr != nil {
				return
			}
			got, rerr = readAllSmall(r, chunk)
		}()
		wg.Wait()
		if werr != nil || rerr != nil {
			t.Fatalf("chunk %d: %v, %v", chunk, werr, rerr)
		}
		if !bytes.Equal(got, want.Bytes()) || !bytes.Equal(gotBack, back) {
			t.Fatalf("chunk %d: data differs (%d/%d, %d/%d bytes)", chunk, len(got), want.Len(), len(gotBack), len(back))
		}
		if _, err := i.Write([]byte("x")); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("write after CloseWrite: %v", err)
		}
		if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Fatalf("read after EOF: %d, %v", n, err)
		}
	}
}

func TestFileSessionWrongRoot(t *testing.T) {
	for _, pipe := range []bool{true, false} {
		var a, b io.ReadWriteCloser
		if pipe {
			a, b = net.Pipe()
		} else {
			a, b = tcpPair(t)
		}
		other := testRoot
		other[31] ^= 1
		_, _, errI, errR := fileSessions(t, a, b, testRoot, other)
		if !errors.Is(errR, ErrHandshake) {
			t.Errorf("responder: %v, want ErrHandshake", errR)
		}
		if !errors.Is(errI, ErrHandshake) {
			t.Errorf("initiator: %v, want ErrHandshake", errI)
		}
		t.Logf("pipe=%v: responder: %v; initiator: %v", pipe, errR, errI)
	}
}

func chatSessions(t testing.TB, local, respKey noise.DHKey, remote [32]byte) (*Session, *Session, error, error) {
	t.Helper()
	a, b := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var r *Session
	var errR error
	done := make(chan struct{})
	go func() { defer close(done); r, errR = AcceptChatSession(ctx, b, respKey) }()
	i, errI := OpenChatSession(ctx, a, local, remote)
	<-done
	return i, r, errI, errR
}

func TestChatSession(t *testing.T) {
	alice, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := GenerateKey()
	i, r, errI, errR := chatSessions(t, alice, bob, [32]byte(bob.Public))
	if errI != nil || errR != nil {
		t.Fatal(errI, errR)
	}
	defer i.Close()
	defer r.Close()
	if !bytes.Equal(r.PeerStatic(), alice.Public) {
		t.Errorf("responder sees %x, want %x", r.PeerStatic(), alice.Public)
	}
	if !bytes.Equal(i.PeerStatic(), bob.Public) {
		t.Errorf("initiator sees %x, want %x", i.PeerStatic(), bob.Public)
	}
	go func() { i.Write([]byte("hello bob")); i.Close() }()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "hello bob" {
		t.Fatalf("got %q, %v", got, err)
	}

	// Asking for another key than the responder's fails on both sides.
	carol, _ := GenerateKey()
	_, _, errI, errR = chatSessions(t, alice, bob, [32]byte(carol.Public))
	if !errors.Is(errI, ErrHandshake) || !errors.Is(errR, ErrHandshake) {
		t.Fatalf("wrong responder key: %v, %v", errI, errR)
	}
}

func TestSessionKindsDoNotMix(t *testing.T) {
	a, b := tcpPair(t)
	bob, _ := GenerateKey()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error)
	go func() { _, err := AcceptChatSession(ctx, b, bob); done <- err }()
	_, errI := OpenFileSession(ctx, a, testRoot)
	if errR := <-done; !errors.Is(errR, ErrHandshake) || !errors.Is(errI, ErrHandshake) {
		t.Fatalf("file initiator to chat responder: %v, %v", errI, errR)
	}
}

// noDeadline hides the deadline methods of a stream.
type noDeadline struct{ io.ReadWriteCloser }

func TestHandshakeTimeout(t *testing.T) {
	for _, deadlines := range []bool{true, false} {
		a, b := net.Pipe()
		var rw io.ReadWriteCloser = a
		if !deadlines {
			rw = noDeadline{a}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		// b reads the first message and never answers.
		go io.Copy(io.Discard, b)
		_, err := OpenFileSession(ctx, rw, testRoot)
		cancel()
		if !errors.Is(err, ErrHandshake) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("deadlines=%v: %v", deadlines, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("deadlines=%v: took %v", deadlines, d)
		}
		b.Close()
		a.Close()
	}
}

func TestHandshakeCancel(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := AcceptFileSession(ctx, a, testRoot) // nobody writes
	if !errors.Is(err, ErrHandshake) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestHandshakeOversizeMessage(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go b.Write([]byte{0xff, 0xff})
	_, err := AcceptFileSession(context.Background(), a, testRoot)
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("got %v", err)
	}
}

func TestSessionTruncated(t *testing.T) {
	i, r := mustFileSessions(t)
	if _, err := i.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	i.rw.Close() // a link drops: no end-of-stream mark
	got, err := io.ReadAll(r)
	if string(got) != "partial" || !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestSessionCloseSendsEnd(t *testing.T) {
	i, r := mustFileSessions(t)
	i.Write([]byte("all"))
	i.Close()
	got, err := io.ReadAll(r)
	if string(got) != "all" || err != nil {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := i.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// flipper corrupts one byte of what passes through at offset at.
type flipper struct {
	io.ReadWriteCloser
	at, seen int
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.ReadWriteCloser.Read(p)
	if f.at >= f.seen && f.at < f.seen+n {
		p[f.at-f.seen] ^= 0x40
	}
	f.seen += n
	return n, err
}

func TestSessionTampered(t *testing.T) {
	for _, at := range []int{0, 1, 2, 30, 1000 + 17} {
		i, r := mustFileSessions(t)
		r.rw = &flipper{ReadWriteCloser: r.rw, at: at}
		go func() { i.Write(randBytes(1000)); i.Write(randBytes(1000)); i.CloseWrite() }()
		_, err := io.ReadAll(r)
		if !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrTruncated) {
			t.Errorf("flip at %d: %v", at, err)
		}
		if _, err2 := r.Read(make([]byte, 1)); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("flip at %d: error not sticky: %v then %v", at, err, err2)
		}
	}
}

func TestSessionNonceLimit(t *testing.T) {
	i, r := mustFileSessions(t)
	i.send.n = MaxSessionFrames - 1
	r.recv.n = MaxSessionFrames - 1
	go i.Write([]byte("last"))
	buf := make([]byte, 10)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "last" {
		t.Fatalf("last frame: %q, %v", buf[:n], err)
	}
	if _, err := i.Write([]byte("one too many")); !errors.Is(err, ErrSessionExhausted) {
		t.Fatalf("write past the limit: %v", err)
	}
	if _, err := i.Write([]byte("again")); !errors.Is(err, ErrSessionExhausted) {
		t.Fatalf("error not sticky: %v", err)
	}
}

func TestSessionRekeyLockstep(t *testing.T) {
	i, r := mustFileSessions(t)
	i.send.n = RekeyInterval - 3
	r.recv.n = RekeyInterval - 3
	aead := i.send.aead
	want := randBytes(10 * MaxFramePayload)
	go func() { i.Write(want); i.CloseWrite() }()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("across a rekey: %d bytes, %v", len(got), err)
	}
	if i.send.aead == aead {
		t.Fatal("key did not change")
	}
}

// memPipe is a one-way in-memory stream for allocation counts.
type memPipe struct{ bytes.Buffer }

func (*memPipe) Close() error { return nil }

// sessionsOver makes a connected pair of sessions sharing one buffer, with
// the keys of a real handshake.
func sessionsOver(t testing.TB, rw io.ReadWriteCloser) (send, recv *Session) {
	t.Helper()
	i, r := mustFileSessions(t)
	send = &Session{rw: rw, send: i.send}
	recv = &Session{rw: rw, recv: r.recv}
	return send, recv
}

func TestSessionNoAllocs(t *testing.T) {
	var pipe memPipe
	pipe.Grow(1 << 20)
	w, r := sessionsOver(t, &pipe)
	msg := randBytes(256 << 10)
	in := make([]byte, len(msg))
	small := make([]byte, 1000)
	round := func(p []byte) {
		pipe.Reset()
		if _, err := w.Write(msg); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(msg); {
			n, err := r.Read(p)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}
	round(in) // buffers are allocated on first use
	if a := testing.AllocsPerRun(20, func() { round(in) }); a != 0 {
		t.Errorf("large reads: %v allocations per 256 KiB", a)
	}
	if a := testing.AllocsPerRun(5, func() { round(small) }); a != 0 {
		t.Errorf("small reads: %v allocations per 256 KiB", a)
	}
}

func TestSessionConcurrentUse(t *testing.T) {
	i, r := mustFileSessions(t)
	want := randBytes(2 << 20)
	var wg sync.WaitGroup
	for _, s := range []*Session{i, r} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for p := want; len(p) > 0; p = p[min(len(p), 12345):] {
				if _, err := s.Write(p[:min(len(p), 12345)]); err != nil {
					t.Error(err)
					return
				}
			}
			s.CloseWrite()
		}()
		go func() {
			defer wg.Done()
			got, err := io.ReadAll(s)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("read %d bytes, %v", len(got), err)
			}
		}()
	}
	wg.Wait()
}

func TestSessionCloseUnblocks(t *testing.T) {
	i, _ := mustFileSessions(t)
	done := make(chan error)
	go func() { _, err := i.Read(make([]byte, 10)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	i.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSessionClosed) {
			t.Errorf("blocked read after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

func TestSessionDeadlines(t *testing.T) {
	i, r := mustFileSessions(t)
	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
		t.Fatalf("read with deadline: %v", err)
	}
	// A timed-out read may be retried.
	r.SetReadDeadline(time.Time{})
	go i.Write([]byte("late"))
	buf := make([]byte, 10)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("retry: %q, %v", buf[:n], err)
	}
	var nd Session
	nd.rw = noDeadline{}
	if err := nd.SetDeadline(time.Now()); !errors.Is(err, ErrNoDeadline) {
		t.Fatalf("no deadlines: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestFrameCipherMatchesNoise: frameCipher is flynn/noise's CipherState
// without the allocations, including Rekey.
func TestFrameCipherMatchesNoise(t *testing.T) {
	key := [32]byte(randBytes(32))
	cs := noise.UnsafeNewCipherState(suite, key, 5)
	fc := newFrameCipherKey(key, 5)
	for round := range 3 {
		msg := randBytes(1000 + round)
		want, err := cs.Encrypt(nil, nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fc.seal(nil, msg)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("round %d: ciphertexts differ (%v)", round, err)
		}
		cs.Rekey()
		fc.rekey()
	}
	// open decrypts what CipherState encrypts, in place.
	dec := newFrameCipherKey(key, 0)
	enc := noise.UnsafeNewCipherState(suite, key, 0)
	ct, _ := enc.Encrypt(nil, nil, []byte("in place"))
	if pt, err := dec.open(ct[:0], ct); err != nil || string(pt) != "in place" {
		t.Fatalf("open: %q, %v", pt, err)
	}
}
