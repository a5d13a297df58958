// Command kith-bench is the baseline of kith's transfer benchmarks: a raw
// libp2p stream between two processes, with the transports kith's hosts use
// (TCP with Noise and yamux, and QUIC), and nothing of kith on top. The
// benchmark scripts (scripts/wan-bench.sh, scripts/daemon-bench.sh) run it
// beside `kith get` between two `kith up` daemons over the same link, so the
// two figures are a ratio taken in one run.
//
//	kith-bench serve --listen MULTIADDR [--listen ...] [--addr-file F]
//	kith-bench send --to MULTIADDR/p2p/ID --bytes N [--for DURATION]
//
// serve accepts any peer (it is a benchmark tool, never run beside a real
// node's data) and, per stream, reads to the end and answers with the
// count; send writes N bytes (or what it can in DURATION), half-closes,
// waits for the count, and prints the rate.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// protocolID is the benchmark's stream protocol.
const protocolID = "/kith/bench/raw/1"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kith-bench serve|send ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kith-bench:", err)
		os.Exit(1)
	}
}

// newHost is a libp2p host with kith's transports, security and muxer.
func newHost(listen []string) (host.Host, error) {
	return libp2p.New(
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(tls.ID, tls.New), // as kith's hosts (f2f.NewHost)
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var listen listFlag
	fs.Var(&listen, "listen", "multiaddr to listen on (repeatable)")
	addrFile := fs.String("addr-file", "", "write the listen addresses (with /p2p/ID) here, one a line")
	fs.Parse(args)
	if len(listen) == 0 {
		listen = listFlag{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	h, err := newHost(listen)
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler(protocolID, func(s network.Stream) {
		defer s.Close()
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			s.Reset()
			return
		}
		s.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
	})
	var lines []string
	for _, a := range h.Addrs() {
		lines = append(lines, a.Encapsulate(ma.StringCast("/p2p/"+h.ID().String())).String())
	}
	out := strings.Join(lines, "\n") + "\n"
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile+".tmp", []byte(out), 0o644); err != nil {
			return err
		}
		if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
			return err
		}
	}
	fmt.Print(out)
	select {} // until killed
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	to := fs.String("to", "", "the server's multiaddr with /p2p/ID")
	size := fs.Int64("bytes", 256<<20, "how many bytes to send")
	limit := fs.Duration("for", 0, "stop writing after this long, if not done (0: no limit); the rate is then of what was sent")
	fs.Parse(args)
	ai, err := peer.AddrInfoFromString(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	h, err := newHost([]string{})
	if err != nil {
		return err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := h.Connect(ctx, *ai); err != nil {
		return err
	}
	s, err := h.NewStream(ctx, ai.ID, protocolID)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	start := time.Now()
	sent := int64(0)
	for sent < *size && (*limit <= 0 || time.Since(start) < *limit) {
		n := min(*size-sent, int64(len(buf)))
		if _, err := s.Write(buf[:n]); err != nil {
			return fmt.Errorf("writing: %w", err)
		}
		sent += n
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	var ack [8]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return fmt.Errorf("reading the count: %w", err)
	}
	el := time.Since(start)
	if got := int64(binary.BigEndian.Uint64(ack[:])); got != sent {
		return errors.New("the server counted a different number of bytes")
	}
	fmt.Printf("%d bytes in %.3f s: %.1f MiB/s\n", sent, el.Seconds(), float64(sent)/(1<<20)/el.Seconds())
	return nil
}
