package tunnels

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// chain connects two ends through relays splicing 127.0.0.1 TCP
// connections. links[i] are the two ends of link i; link 0 starts at the
// first end. The returned channel yields each relay's Splice result.
type chain struct {
	a, b  *net.TCPConn
	links [][2]*net.TCPConn
	done  chan error
}

func newChain(t testing.TB, relays int, opts func(relay int) []SpliceOption) *chain {
	t.Helper()
	c := &chain{done: make(chan error, relays)}
	for range relays + 1 {
		x, y := tcpPair(t)
		c.links = append(c.links, [2]*net.TCPConn{x, y})
	}
	for i := range relays {
		var o []SpliceOption
		if opts != nil {
			o = opts(i)
		}
		go func() { c.done <- Splice(c.links[i][1], c.links[i+1][0], 0, o...) }()
	}
	c.a, c.b = c.links[0][0], c.links[relays][1]
	return c
}

func (c *chain) wait(t testing.TB) []error {
	t.Helper()
	var errs []error
	for range len(c.links) - 1 {
		select {
		case err := <-c.done:
			errs = append(errs, err)
		case <-time.After(5 * time.Second):
			t.Fatal("splice did not return")
		}
	}
	return errs
}

func TestSpliceBothWays(t *testing.T) {
	for _, relays := range []int{1, 3} {
		c := newChain(t, relays, nil)
		up, down := randBytes(4<<20), randBytes(3<<20+5)
		var wg sync.WaitGroup
		var gotUp, gotDown []byte
		var errUp, errDown error
		wg.Add(2)
		go func() {
			defer wg.Done()
			c.a.Write(up)
			c.a.CloseWrite()
			gotDown, errDown = io.ReadAll(c.a)
		}()
		go func() {
			defer wg.Done()
			c.b.Write(down)
			c.b.CloseWrite()
			gotUp, errUp = io.ReadAll(c.b)
		}()
		wg.Wait()
		if errUp != nil || errDown != nil || !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
			t.Fatalf("%d relays: %v, %v, %d/%d, %d/%d bytes", relays, errUp, errDown, len(gotUp), len(up), len(gotDown), len(down))
		}
		for _, err := range c.wait(t) {
			if err != nil {
				t.Errorf("%d relays: splice: %v", relays, err)
			}
		}
	}
}

// TestSpliceHalfClose: a request, its end, then the response, through two
// relays: the end of one direction does not end the other.
func TestSpliceHalfClose(t *testing.T) {
	c := newChain(t, 2, nil)
	c.a.Write([]byte("request"))
	c.a.CloseWrite()
	req, err := io.ReadAll(c.b)
	if err != nil || string(req) != "request" {
		t.Fatalf("request: %q, %v", req, err)
	}
	time.Sleep(20 * time.Millisecond) // the response direction is still open
	c.b.Write([]byte("response"))
	c.b.CloseWrite()
	resp, err := io.ReadAll(c.a)
	if err != nil || string(resp) != "response" {
		t.Fatalf("response: %q, %v", resp, err)
	}
	for _, err := range c.wait(t) {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestSpliceBrokenLink: when the middle link of a tunnel breaks, both ends
// see the tunnel end and both relays return an error.
func TestSpliceBrokenLink(t *testing.T) {
	c := newChain(t, 2, nil)
	c.a.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c.b, buf); err != nil {
		t.Fatal(err)
	}
	mid := c.links[1][0]
	mid.SetLinger(0)
	mid.Close() // the link between the relays resets
	for _, end := range []*net.TCPConn{c.a, c.b} {
		end.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := end.Read(buf); err == nil || isTimeout(err) {
			t.Errorf("end still open: %d, %v", n, err)
		}
	}
	for _, err := range c.wait(t) {
		if err == nil {
			t.Error("relay returned nil after a broken link")
		}
	}
}

// TestSpliceWithoutHalfClose: streams without CloseWrite end as a whole.
func TestSpliceWithoutHalfClose(t *testing.T) {
	a, ra := net.Pipe()
	rb, b := net.Pipe()
	done := make(chan error)
	go func() { done <- Splice(ra, rb, 4096) }()
	go func() { a.Write([]byte("bye")); a.Close() }()
	got, _ := io.ReadAll(b)
	if string(got) != "bye" {
		t.Fatalf("got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("splice: %v", err)
	}
	b.Close()
}

// TestTunnelPrivacy: a file session over two relays; what the relays
// forward holds neither the content nor the root.
func TestTunnelPrivacy(t *testing.T) {
	var mu sync.Mutex
	seen := make([]bytes.Buffer, 2)
	c := newChain(t, 2, func(relay int) []SpliceOption {
		return []SpliceOption{WithObserver(func(dir int, p []byte) {
			mu.Lock()
			seen[relay].Write(p)
			mu.Unlock()
		})}
	})
	content := bytes.Repeat([]byte("secret file content, 64-byte windows must not leak. "), 20_000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res)
	go func() { s, err := AcceptFileSession(ctx, c.b, testRoot); ch <- res{s, err} }()
	down, err := OpenFileSession(ctx, c.a, testRoot)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	go func() { r.s.Write(content); r.s.Close() }()
	got, err := io.ReadAll(down)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	down.Close()
	c.wait(t)
	for i := range seen {
		b := seen[i].Bytes()
		if len(b) < len(content) {
			t.Errorf("relay %d forwarded only %d bytes", i, len(b))
		}
		if bytes.Contains(b, content[:64]) || bytes.Contains(b, testRoot[:]) {
			t.Errorf("relay %d saw plaintext or the root", i)
		}
	}
}

// brokenStream fails every Write and blocks Reads until closed.
type brokenStream struct {
	once   sync.Once
	closed chan struct{}
}

var errBroken = errors.New("broken")

func (s *brokenStream) Read([]byte) (int, error)  { <-s.closed; return 0, net.ErrClosed }
func (s *brokenStream) Write([]byte) (int, error) { return 0, errBroken }
func (s *brokenStream) Close() error              { s.once.Do(func() { close(s.closed) }); return nil }

func TestSpliceErrorWhenWriteFails(t *testing.T) {
	a, ra := net.Pipe()
	done := make(chan error)
	go func() { done <- Splice(ra, &brokenStream{closed: make(chan struct{})}, 0) }()
	a.Write([]byte("x"))
	if err := <-done; !errors.Is(err, errBroken) {
		t.Fatalf("got %v", err)
	}
	// The other end was closed by the failure.
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("other end still open")
	}
}
