package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"kith/share"
)

// benchFileSize is the size of the file moved by the transfer benchmarks.
var benchFileSize = int64(benchSizeMiB()) << 20

const rawBenchProto = "/kith/bench/raw/1"

// benchTuning lets an experiment change the engine's knobs (zero: defaults).
var benchTuning share.Tuning

// benchPair starts two befriended nodes on loopback TCP only (the transport
// both benchmarks share), the first sharing a benchFileSize file.
func benchPair(b *testing.B) (src, dst *Node, link share.Link) {
	b.Helper()
	start := func(name string) *Node {
		home := filepath.Join(b.TempDir(), name)
		if _, err := Init(home, name); err != nil {
			b.Fatal(err)
		}
		cfg := testConfig(home)
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.NoAPI = true
		cfg.DownloadTuning = benchTuning
		n, err := Start(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		return n
	}
	src, dst = start("src"), start("dst")
	for _, p := range [][2]*Node{{src, dst}, {dst, src}} {
		inv, _ := p[1].Invite()
		if _, err := p[0].AddFriend(inv, p[1].Name()); err != nil {
			b.Fatal(err)
		}
	}
	dir := filepath.Join(b.TempDir(), "share")
	tree := writeRandomFile(b, filepath.Join(dir, "bench.bin"), benchFileSize, 9)
	shareDir(b, src, dir, share.ShareFlags{Browsable: true})
	deadline := time.Now().Add(10 * time.Second)
	for !isOnline(dst, src) {
		if time.Now().After(deadline) {
			b.Fatal("friends did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return src, dst, share.Link{Root: tree.Root, Name: "bench.bin", Size: benchFileSize}
}

// BenchmarkRawStream is the baseline: benchFileSize bytes over one raw
// libp2p stream between the same kind of hosts, no hashing, no disk.
func BenchmarkRawStream(b *testing.B) {
	src, dst, _ := benchPair(b)
	buf := make([]byte, 1<<20)
	src.Host().SetStreamHandler(rawBenchProto, func(s network.Stream) {
		defer s.Close()
		var hdr [8]byte
		if _, err := io.ReadFull(s, hdr[:]); err != nil {
			return
		}
		for n := int64(binary.BigEndian.Uint64(hdr[:])); n > 0; n -= int64(len(buf)) {
			if _, err := s.Write(buf[:min(n, int64(len(buf)))]); err != nil {
				return
			}
		}
	})
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for b.Loop() {
		s, err := dst.Host().NewStream(context.Background(), src.ID(), rawBenchProto)
		if err != nil {
			b.Fatal(err)
		}
		s.Write(binary.BigEndian.AppendUint64(nil, uint64(benchFileSize)))
		n, err := io.Copy(io.Discard, s)
		if err != nil || n != benchFileSize {
			b.Fatal(n, err)
		}
		s.Close()
	}
}

// BenchmarkDirectDownload is a whole kith download of the same bytes between
// the same kind of hosts: share protocol, Bao verification of every group,
// writes and syncs of the partial file, the whole-file check and the move
// into place.
func BenchmarkDirectDownload(b *testing.B) {
	benchmarkDownload(b)
}

func benchmarkDownload(b *testing.B) {
	_, dst, link := benchPair(b)
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for b.Loop() {
		to := b.TempDir()
		if _, err := dst.Downloads().Add(link, to); err != nil {
			b.Fatal(err)
		}
		info := waitDownload(b, dst, link.Root, time.Minute)
		if info.State != share.StateDone {
			b.Fatalf("download failed: %+v", info)
		}
		b.StopTimer()
		os.Remove(info.Path)
		dst.Downloads().Cancel(link.Root)
		b.StartTimer()
	}
}

// BenchmarkDownloadTuning tries other request sizes and windows.
func BenchmarkDownloadTuning(b *testing.B) {
	for _, t := range []share.Tuning{{RangeGroups: 1, Window: 16}, {RangeGroups: 4, Window: 4}, {RangeGroups: 16, Window: 4}, {RangeGroups: 16, Window: 2}, {RangeGroups: 64, Window: 2}} {
		b.Run(fmt.Sprintf("range%d-window%d", t.RangeGroups, t.Window), func(b *testing.B) {
			benchTuning = t
			defer func() { benchTuning = share.Tuning{} }()
			benchmarkDownload(b)
		})
	}
}

// benchSizeMiB is the size of the benchmarks' file: 256 MiB, or
// KITH_BENCH_MIB.
func benchSizeMiB() int {
	if n, err := strconv.Atoi(os.Getenv("KITH_BENCH_MIB")); err == nil && n > 0 {
		return n
	}
	return 256
}
