package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

func encode(t testing.TB, msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = Append(b, wrapperspb.String(m), 4<<20); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, 1<<20)
	big := string(bytes.Repeat([]byte("x"), 100<<10))
	for _, m := range []string{"", "hello, a frame larger than the next", "hi", big} {
		if err := w.WriteMsg(wrapperspb.String(m)); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf, 1<<20, Options{})
	for _, want := range []string{"", "hello, a frame larger than the next", "hi", big} {
		var got wrapperspb.StringValue
		if err := r.ReadMsg(&got); err != nil {
			t.Fatal(err)
		}
		if got.Value != want {
			t.Fatalf("got %d bytes, want %d", len(got.Value), len(want))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestErrors(t *testing.T) {
	long := binary.AppendUvarint(nil, 2<<20)
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"too large", long, ErrTooLarge},
		{"overflow", bytes.Repeat([]byte{0xff}, 11), ErrMalformed},
		{"not minimal", []byte{0x80, 0x00}, ErrMalformed},
		{"cut in length", []byte{0x80}, io.ErrUnexpectedEOF},
		{"cut in body", append(binary.AppendUvarint(nil, 10), 1, 2, 3), io.ErrUnexpectedEOF},
		{"garbage body", append(binary.AppendUvarint(nil, 3), 0xff, 0xff, 0xff), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := NewReader(bytes.NewReader(c.in), 1<<20, Options{}).ReadMsg(new(wrapperspb.StringValue))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if IsPeerFault(err) != (c.want == ErrTooLarge || c.want == ErrMalformed) {
				t.Fatalf("IsPeerFault(%v) wrong", err)
			}
		})
	}
	if _, err := Append(nil, wrapperspb.String("toolong"), 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append over the cap: %v", err)
	}
}

// A peer that announces a large frame and sends part of it holds a buffer
// the size of what it sent, not of what it announced: the reader allocates
// as bytes arrive.
func TestSlowFrameHoldsLittle(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	mem := &countingScope{}
	r := NewReader(b, 8<<20, Options{Memory: mem})
	done := make(chan error, 1)
	go func() { _, err := r.Next(); done <- err }()
	a.Write(binary.AppendUvarint(nil, 4<<20))
	a.Write(make([]byte, 100))
	time.Sleep(20 * time.Millisecond)
	if m := mem.peak(); m > 0 {
		t.Fatalf("%d bytes charged for 100 received", m)
	}
	a.Write(make([]byte, 300<<10))
	time.Sleep(20 * time.Millisecond)
	if m := mem.peak(); m == 0 || m > 2*(300<<10) {
		t.Fatalf("%d bytes charged for 300 KiB received of a 4 MiB frame", m)
	}
	a.Close()
	if err := <-done; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v", err)
	}
}

// A large frame is charged to the memory scope before it is allocated,
// released by the next read, and refused when the scope says no.
func TestMemoryAccounting(t *testing.T) {
	big := string(bytes.Repeat([]byte("y"), 1<<20))
	in := encode(t, big, "small")
	mem := &countingScope{}
	r := NewReader(bytes.NewReader(in), 2<<20, Options{Memory: mem})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if mem.used < 1<<20 {
		t.Fatalf("%d bytes charged for a 1 MiB frame", mem.used)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if mem.used != 0 {
		t.Fatalf("%d bytes still charged after a small frame", mem.used)
	}
	mem = &countingScope{limit: 256 << 10}
	r = NewReader(bytes.NewReader(in), 2<<20, Options{Memory: mem})
	if _, err := r.Next(); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("over the scope's limit: %v", err)
	}
	if mem.used > mem.limit {
		t.Fatalf("%d bytes charged over a limit of %d", mem.used, mem.limit)
	}
	r.Close()
	if mem.used != 0 {
		t.Fatalf("%d bytes charged after Close", mem.used)
	}
}

func TestFrameTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r := NewReader(b, 1<<20, Options{FrameTimeout: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() { _, err := r.Next(); done <- err }()
	a.Write(binary.AppendUvarint(nil, 1000))
	a.Write([]byte{1, 2, 3})
	select {
	case err := <-done:
		if !errors.Is(err, ErrSlow) || !IsPeerFault(err) {
			t.Fatalf("got %v, want ErrSlow", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a slow frame did not time out")
	}
}

func TestIdleTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r := NewReader(b, 1<<20, Options{IdleTimeout: 30 * time.Millisecond, FrameTimeout: time.Second})
	_, err := r.Next()
	if !os.IsTimeout(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if IsPeerFault(err) {
		t.Fatal("an idle stream counted as the peer's fault")
	}
	// Between frames, a frame that comes in time is read.
	go a.Write(encode(t, "late but fine"))
	r = NewReader(b, 1<<20, Options{IdleTimeout: 5 * time.Second, FrameTimeout: 5 * time.Second})
	var m wrapperspb.StringValue
	if err := r.ReadMsg(&m); err != nil || m.Value != "late but fine" {
		t.Fatalf("got %q, %v", m.Value, err)
	}
}

type countingScope struct {
	mu        sync.Mutex
	limit     int
	used, max int
}

func (s *countingScope) peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

func (s *countingScope) ReserveMemory(n int, _ uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit > 0 && s.used+n > s.limit {
		return errors.New("limit")
	}
	s.used += n
	s.max = max(s.max, s.used)
	return nil
}

func (s *countingScope) ReleaseMemory(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= n
}

func FuzzReader(f *testing.F) {
	f.Add(encode(f, "a", "bc"))
	f.Add([]byte{0x80, 0x00})
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(binary.AppendUvarint(nil, 1<<30))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 64<<10, Options{})
		for i := 0; i < 100; i++ {
			b, err := r.Next()
			if err != nil {
				return
			}
			if len(b) > 64<<10 {
				t.Fatalf("frame of %d bytes over the cap", len(b))
			}
			var m wrapperspb.StringValue
			_ = Unmarshal(b, &m)
		}
	})
}
