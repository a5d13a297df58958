package tunnels

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingRW counts the bytes and writes that go through to the stream.
type countingRW struct {
	io.ReadWriteCloser
	bytes, writes atomic.Int64
}

func (c *countingRW) Write(p []byte) (int, error) {
	c.writes.Add(1)
	c.bytes.Add(int64(len(p)))
	return c.ReadWriteCloser.Write(p)
}

// acceptAsync runs AcceptFileSession on b for root in the background.
func acceptAsync(t *testing.T, b io.ReadWriteCloser, root [32]byte) <-chan *Session {
	t.Helper()
	out := make(chan *Session, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := AcceptFileSession(ctx, b, root)
		if err != nil {
			out <- nil
			return
		}
		out <- r
	}()
	return out
}

// TestStartFileSessionEarlyData: the first Write rides in the handshake's
// first message (one write of that message's size, before the holder has
// answered anything), the holder reads it first, and both ways work after.
func TestStartFileSessionEarlyData(t *testing.T) {
	a, b := tcpPair(t)
	wire := &countingRW{ReadWriteCloser: a}
	i, err := StartFileSession(wire, testRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	if wire.writes.Load() != 0 {
		t.Fatal("StartFileSession wrote before the first Write")
	}
	early := []byte("have + the last group")
	wrote := make(chan error, 1)
	go func() { _, err := i.Write(early); wrote <- err }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("first Write: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the first Write waited for the holder: it did not ride in the handshake")
	}
	// One handshake message: length, ephemeral key, payload and tag.
	if w, n := wire.writes.Load(), wire.bytes.Load(); w != 1 || n != int64(2+32+len(early)+16) {
		t.Fatalf("the first Write made %d writes of %d bytes, want one handshake message of %d", w, n, 2+32+len(early)+16)
	}
	r := <-acceptAsync(t, b, testRoot)
	if r == nil {
		t.Fatal("the holder's handshake failed")
	}
	defer r.Close()
	got := make([]byte, len(early))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, early) {
		t.Fatalf("holder read %q, %v; want the early data", got, err)
	}
	reply := randBytes(100 << 10)
	go r.Write(reply)
	back := make([]byte, len(reply))
	if _, err := io.ReadFull(i, back); err != nil || !bytes.Equal(back, reply) {
		t.Fatalf("downloader read: %v", err)
	}
	more := randBytes(70 << 10)
	go i.Write(more)
	got = make([]byte, len(more))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, more) {
		t.Fatalf("holder read after the handshake: %v", err)
	}
}

// TestStartFileSessionLongFirstWrite: a first Write over MaxEarlyData
// waits for the handshake and then goes as frames, whole.
func TestStartFileSessionLongFirstWrite(t *testing.T) {
	a, b := tcpPair(t)
	i, err := StartFileSession(a, testRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	rc := acceptAsync(t, b, testRoot)
	long := randBytes(MaxEarlyData + 1)
	werr := make(chan error, 1)
	go func() { _, err := i.Write(long); werr <- err }()
	// The Write waits for the holder's reply, which the first Read reads.
	rerr := make(chan error, 1)
	go func() { _, err := i.Read(make([]byte, 1)); rerr <- err }()
	r := <-rc
	if r == nil {
		t.Fatal("the holder's handshake failed")
	}
	defer r.Close()
	got := make([]byte, len(long))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, long) {
		t.Fatalf("holder read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("long first Write: %v", err)
	}
	r.Write([]byte{1})
	if err := <-rerr; err != nil {
		t.Fatalf("downloader Read: %v", err)
	}
}

// TestStartFileSessionWrongRoot: a holder of another file fails the
// handshake; the downloader's Read and later Writes fail with
// ErrHandshake, and the holder never read the early data.
func TestStartFileSessionWrongRoot(t *testing.T) {
	a, b := tcpPair(t)
	i, err := StartFileSession(a, testRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	if _, err := i.Write([]byte("secret-free request")); err != nil {
		t.Fatal(err)
	}
	if r := <-acceptAsync(t, b, [32]byte{9}); r != nil {
		r.Close()
		t.Fatal("a holder of another root completed the handshake")
	}
	if _, err := i.Read(make([]byte, 8)); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Read after a failed handshake: %v", err)
	}
	if _, err := i.Write([]byte("again")); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Write after a failed handshake: %v", err)
	}
}

// TestStartFileSessionCloseUnblocks: Close wakes a Read waiting for the
// first Write and a Write waiting for the holder.
func TestStartFileSessionCloseUnblocks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write bool
	}{{"read before any write", false}, {"write waiting for the holder", true}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			go io.Copy(io.Discard, b) // a holder that never answers
			i, err := StartFileSession(a, testRoot)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			if tc.write {
				go func() { _, err := i.Write(randBytes(MaxEarlyData + 1)); done <- err }()
			} else {
				go func() { _, err := i.Read(make([]byte, 1)); done <- err }()
			}
			time.Sleep(20 * time.Millisecond)
			i.Close()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("no error after Close")
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not unblock it")
			}
		})
	}
}

// TestStartFileSessionOldHolder: a holder that drops early data (a kith
// from before it: its reply says nothing of it) still gets it, as the
// session's first frame, and once.
func TestStartFileSessionOldHolder(t *testing.T) {
	a, b := tcpPair(t)
	i, err := StartFileSession(a, testRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	early := []byte("have")
	if _, err := i.Write(early); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := handshake(ctx, b, fileConfig(testRoot, false), false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.plain) != 0 {
		t.Fatal("the old holder kept the early data")
	}
	rerr := make(chan error, 1)
	go func() { _, err := io.ReadFull(i, make([]byte, 1)); rerr <- err }()
	got := make([]byte, len(early))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, early) {
		t.Fatalf("old holder read %q, %v; want the early data again", got, err)
	}
	if _, err := i.Write([]byte("next")); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, 4)
	if _, err := io.ReadFull(r, got); err != nil || string(got) != "next" {
		t.Fatalf("old holder read %q, %v after the early data; want it once", got, err)
	}
	r.Write([]byte{1})
	if err := <-rerr; err != nil {
		t.Fatalf("downloader Read: %v", err)
	}
}
