package tunnels

import (
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

const benchWrite = 64 << 10

// pump writes b.N chunks of benchWrite bytes to w and half-closes it,
// while the caller's goroutine reads them all from r with a 64 KiB buffer.
func pump(b *testing.B, w io.WriteCloser, r io.Reader) {
	b.Helper()
	b.SetBytes(benchWrite)
	msg := randBytes(benchWrite)
	werr := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := w.Write(msg); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	buf := make([]byte, 64<<10)
	for want := b.N * benchWrite; want > 0; {
		n, err := r.Read(buf)
		want -= n
		if err != nil {
			b.Fatalf("read: %v (%d bytes left)", err, want)
		}
	}
	b.StopTimer()
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkRawTCPThroughput(b *testing.B) {
	x, y := tcpPair(b)
	pump(b, x, y)
}

func BenchmarkSessionThroughput(b *testing.B) {
	x, y := tcpPair(b)
	i, r, errI, errR := fileSessions(b, x, y, testRoot, testRoot)
	if errI != nil || errR != nil {
		b.Fatal(errI, errR)
	}
	pump(b, i, r)
	i.Close()
	r.Close()
}

// relayChain is a chain of TCP links joined by relays running join; it
// returns the two ends and a function that closes everything and waits.
func relayChain(b *testing.B, relays int, join func(x, y net.Conn)) (net.Conn, net.Conn, func()) {
	var links [][2]*net.TCPConn
	for range relays + 1 {
		x, y := tcpPair(b)
		links = append(links, [2]*net.TCPConn{x, y})
	}
	done := make(chan struct{}, relays)
	for i := range relays {
		go func() { join(links[i][1], links[i+1][0]); done <- struct{}{} }()
	}
	return links[0][0], links[relays][1], func() {
		for _, l := range links {
			l[0].Close()
			l[1].Close()
		}
		for range relays {
			<-done
		}
	}
}

// ioCopyJoin is the baseline relay: a plain io.Copy each way. Between two
// *net.TCPConn, io.Copy uses splice(2) and copies nothing in user space;
// libp2p streams, which relays really join, have no such path.
func ioCopyJoin(x, y net.Conn) {
	done := make(chan struct{})
	go func() { io.Copy(y, x); y.Close(); close(done) }()
	io.Copy(x, y)
	x.Close()
	<-done
}

func spliceJoin(x, y net.Conn) { Splice(x, y, 0) }

func BenchmarkSplice1Hop(b *testing.B) {
	x, y, stop := relayChain(b, 1, spliceJoin)
	pump(b, x, y)
	stop()
}

func BenchmarkRawIOCopy1Hop(b *testing.B) {
	x, y, stop := relayChain(b, 1, ioCopyJoin)
	pump(b, x, y)
	stop()
}

// BenchmarkTunnel measures a file session over relays that Splice,
// against the baseline of raw links joined by io.Copy.
func BenchmarkTunnel(b *testing.B) {
	for _, relays := range []int{1, 3} {
		b.Run("baseline-iocopy-"+string(rune('0'+relays)), func(b *testing.B) {
			x, y, stop := relayChain(b, relays, ioCopyJoin)
			pump(b, x, y)
			stop()
		})
		b.Run("session-iocopy-"+string(rune('0'+relays)), func(b *testing.B) {
			x, y, stop := relayChain(b, relays, ioCopyJoin)
			i, r, errI, errR := fileSessions(b, x, y, testRoot, testRoot)
			if errI != nil || errR != nil {
				b.Fatal(errI, errR)
			}
			pump(b, i, r)
			stop()
		})
		b.Run("session-splice-"+string(rune('0'+relays)), func(b *testing.B) {
			x, y, stop := relayChain(b, relays, spliceJoin)
			i, r, errI, errR := fileSessions(b, x, y, testRoot, testRoot)
			if errI != nil || errR != nil {
				b.Fatal(errI, errR)
			}
			pump(b, i, r)
			stop()
		})
	}
}

func BenchmarkFileHandshake(b *testing.B) {
	for range b.N {
		x, y := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan struct{})
		go func() { AcceptFileSession(ctx, y, testRoot); close(done) }()
		OpenFileSession(ctx, x, testRoot)
		<-done
		cancel()
		x.Close()
		y.Close()
	}
}

// BenchmarkIdleSpliceMemory reports the heap and stack held by each idle
// relayed tunnel: two Splice goroutines waiting on in-memory pipes.
func BenchmarkIdleSpliceMemory(b *testing.B) {
	const tunnels = 1000
	for range b.N {
		b.StopTimer()
		before := memInUse()
		var ends []net.Conn
		done := make(chan struct{}, tunnels)
		for range tunnels {
			a, ra := net.Pipe()
			rb, c := net.Pipe()
			ends = append(ends, a, c)
			go func() { Splice(ra, rb, 0); done <- struct{}{} }()
		}
		time.Sleep(100 * time.Millisecond) // let the goroutines block
		after := memInUse()
		b.ReportMetric(float64(after-before)/tunnels, "B/tunnel")
		for _, e := range ends {
			e.Close()
		}
		for range tunnels {
			<-done
		}
	}
}

func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
