package tunnels

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// chainBenchBytes is what each iteration of the chain benchmarks moves end
// to end.
const chainBenchBytes = 64 << 20

const rawChainProto = "/kith/bench/rawchain/1"

// chainSink reads n-byte messages (an 8-byte length, then the bytes) and answers
// each with one byte, until the stream ends.
func chainSink(rw io.ReadWriter) {
	buf := make([]byte, 256<<10)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(rw, hdr[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(hdr[:]))
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(rw, n), buf); err != nil {
			return
		}
		if _, err := rw.Write([]byte{1}); err != nil {
			return
		}
	}
}

// pumpChain sends one message of chainBenchBytes through rw and waits for the ack.
func pumpChain(b *testing.B, rw io.ReadWriter, chunk []byte) {
	if _, err := rw.Write(binary.BigEndian.AppendUint64(nil, chainBenchBytes)); err != nil {
		b.Fatal(err)
	}
	for sent := 0; sent < chainBenchBytes; sent += len(chunk) {
		if _, err := rw.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := io.ReadFull(rw, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChain compares, for 1 to 3 relays on real hosts (127.0.0.1
// TCP, Noise, yamux), a kith tunnel (router setup, splices, end-to-end
// Noise) with the baseline: a chain of raw libp2p streams between the same
// hosts, spliced with a plain io.Copy at each hop.
func BenchmarkChain(b *testing.B) {
	for _, relays := range []int{1, 2, 3} {
		n := relays + 2
		share := &fakeShare{name: "bench.bin", root: [32]byte(randBytes(32)), size: chainBenchBytes}
		incoming := make(chan *Tunnel, 1)
		nodes := newNet(b, n, chainEdges(n), func(i int, c *RouterConfig) {
			c.Tap = nil // the tests' recorder would cost more than the tunnel
			if i == n-1 {
				holderTunnels(share, incoming)(c)
			}
		})
		// The raw baseline: each relay splices an inbound stream with one
		// it opens to the next node; the last node is the sink.
		for i := 1; i < n; i++ {
			i := i
			nodes[i].h.SetStreamHandler(rawChainProto, func(s network.Stream) {
				if i == n-1 {
					chainSink(s)
					s.Close()
					return
				}
				next, err := nodes[i].h.NewStream(context.Background(), nodes[i+1].h.ID(), rawChainProto)
				if err != nil {
					s.Reset()
					return
				}
				done := make(chan struct{})
				go func() { io.Copy(next, s); next.CloseWrite(); close(done) }()
				io.Copy(s, next)
				s.CloseWrite()
				<-done
			})
		}
		chunk := make([]byte, 1<<20)

		b.Run(fmt.Sprintf("raw-relays-%d", relays), func(b *testing.B) {
			s, err := nodes[0].h.NewStream(context.Background(), nodes[1].h.ID(), rawChainProto)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(chainBenchBytes)
			for b.Loop() {
				pumpChain(b, s, chunk)
			}
		})
		b.Run(fmt.Sprintf("tunnel-relays-%d", relays), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tn, err := nodes[0].r.OpenTunnel(ctx, share.root)
			if err != nil {
				b.Fatal(err)
			}
			defer tn.Close()
			var holder *Tunnel
			select {
			case holder = <-incoming:
			case <-ctx.Done():
				b.Fatal("no tunnel at the holder")
			}
			go chainSink(holder)
			defer holder.Close()
			b.SetBytes(chainBenchBytes)
			for b.Loop() {
				pumpChain(b, tn, chunk)
			}
		})
		b.Run(fmt.Sprintf("setup-relays-%d", relays), func(b *testing.B) {
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				tn, err := nodes[0].r.OpenTunnel(ctx, share.root)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				tn.Close()
				select {
				case h := <-incoming:
					h.Close()
				case <-time.After(5 * time.Second):
					b.Fatal("no tunnel at the holder")
				}
			}
		})
	}
}
