package yamux

// kith: the regression test of the patch in sendWindowUpdate (see
// KITH-PATCH.md).

import (
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestWindowGrowthKeepsCredit: once a stream's receive window has grown
// and everything sent was read, the sender's credit is the whole window
// the receiver holds room for. Before the patch each doubling of the
// window lost the credit of the update it rode on, so the sender was
// left with about half the window.
func TestWindowGrowthKeepsCredit(t *testing.T) {
	conf := testConfNoKeepAlive()
	conf.MaxStreamWindowSize = 4 << 20
	client, server := testClientServerConfig(conf)
	defer client.Close()
	defer server.Close()
	// A round trip long enough that every update is "too soon": the
	// receiver doubles the window at each one, up to the maximum.
	atomic.StoreInt64(&server.rtt, int64(time.Hour))

	const total = 32 << 20
	done := make(chan *Stream, 1)
	go func() {
		s, err := server.AcceptStream()
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		buf := make([]byte, 16<<10)
		for n := 0; n < total; {
			k, err := s.Read(buf)
			if err != nil && err != io.EOF {
				t.Error(err)
				break
			}
			n += k
		}
		done <- s
	}()
	c, err := client.OpenStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for n := 0; n < total; n += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	s := <-done
	if s == nil {
		t.FailNow()
	}

	window := s.recvWindow // the reader is done: <-done ordered its writes
	if window != conf.MaxStreamWindowSize {
		t.Fatalf("receive window grew to %d, want %d (the test did not exercise growth)", window, conf.MaxStreamWindowSize)
	}
	// Credit the receiver holds room for: its free capacity, nothing being
	// buffered or in flight.
	s.recvBuf.bm.Lock()
	room := s.recvBuf.cap
	s.recvBuf.bm.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for atomic.LoadUint32(&c.sendWindow) != room && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := atomic.LoadUint32(&c.sendWindow); got != room {
		t.Fatalf("sender's credit %d, receiver's room %d: %d bytes of window lost", got, room, room-got)
	}
}
