package node

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kith/share"
)

// BenchmarkTunnelDownload downloads a 64 MiB file anonymously through a
// chain with 1, 2 and 3 relays (tunnels only).
func BenchmarkTunnelDownload(b *testing.B) {
	const size = 64 << 20
	for _, relays := range []int{1, 3} {
		b.Run(fmt.Sprintf("relays-%d", relays), func(b *testing.B) {
			names := []string{"origin"}
			for i := range relays {
				names = append(names, fmt.Sprintf("relay%d", i))
			}
			names = append(names, "holder")
			var edges [][2]int
			for i := 0; i+1 < len(names); i++ {
				edges = append(edges, [2]int{i, i + 1})
			}
			nodes := tunnelNet(b, names, edges, func(_ int, c *Config) {
				c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} // as BenchmarkRawStream
			})
			holder, origin := nodes[len(nodes)-1], nodes[0]
			dir := filepath.Join(b.TempDir(), "anon")
			tree := writeRandomFile(b, filepath.Join(dir, "f.bin"), size, 5)
			shareDir(b, holder, dir, share.ShareFlags{Anonymous: true})
			link := share.Link{Root: tree.Root, Name: "f.bin", Size: size}
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				to := b.TempDir()
				if _, err := origin.AddDownload(link, to, true); err != nil {
					b.Fatal(err)
				}
				info := waitDownload(b, origin, link.Root, time.Minute)
				if info.State != share.StateDone {
					b.Fatalf("%+v", info)
				}
				b.StopTimer()
				os.Remove(info.Path)
				origin.Downloads().Cancel(link.Root)
				b.StartTimer()
			}
		})
	}
}
