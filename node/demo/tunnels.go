package demo

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"kith/node"
	"kith/share"
	"kith/tunnels"
)

// tunnelFileSize is the size of the file shared anonymously in the demo.
const tunnelFileSize = 16 << 20

// relayTap records every byte a relay's router moved: control messages and
// relayed tunnel data.
type relayTap struct {
	mu   sync.Mutex
	ctrl bytes.Buffer
	data bytes.Buffer
}

// reset forgets what was recorded.
func (r *relayTap) reset() {
	r.mu.Lock()
	r.ctrl.Reset()
	r.data.Reset()
	r.mu.Unlock()
}

func (r *relayTap) tap() *tunnels.Tap {
	return &tunnels.Tap{
		Control: func(_ peer.ID, _ bool, b []byte) {
			r.mu.Lock()
			r.ctrl.Write(b)
			r.mu.Unlock()
		},
		Data: func(_ int, b []byte) {
			r.mu.Lock()
			r.data.Write(b)
			r.mu.Unlock()
		},
	}
}

// startTapped starts a node like StartNode, with tap on its router.
func (d *Demo) startTapped(name string, tap *tunnels.Tap) (*node.Node, error) {
	home := filepath.Join(d.dir, name)
	if _, err := node.Init(home, name); err != nil {
		return nil, err
	}
	cfg := d.config(name)
	cfg.TunnelTap = tap
	return node.Start(cfg)
}

func tunnelDemo(ctx context.Context, d *Demo) error {
	chain := []string{"ana", "ben", "cai", "dan", "eli"}
	taps := map[string]*relayTap{}
	nodes := make([]*node.Node, len(chain))
	for i, name := range chain {
		var tap *tunnels.Tap
		if i > 0 && i < len(chain)-1 {
			taps[name] = &relayTap{}
			tap = taps[name].tap()
		}
		d.taps = taps
		n, err := d.startTapped(name, tap)
		if err != nil {
			return err
		}
		d.Nodes[name] = n // stopped with the others at the end
		nodes[i] = n
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := d.befriend(chain[i], chain[i+1]); err != nil {
			return err
		}
	}
	t0 := time.Now()
	for i := 0; i+1 < len(chain); i++ {
		a, b := nodes[i], nodes[i+1]
		err := WaitFor(ctx, 20*time.Second, "the router link "+chain[i]+"-"+chain[i+1], func() bool {
			return slices.Contains(a.Router().Links(), b.ID()) && slices.Contains(b.Router().Links(), a.ID())
		})
		if err != nil {
			return err
		}
	}
	d.Say("chain %s: router links up after %v", strings.Join(chain, " - "), time.Since(t0).Round(time.Millisecond))

	ana, eli := nodes[0], nodes[len(nodes)-1]
	dir := filepath.Join(d.dir, "eli-share", "anon")
	file := filepath.Join(dir, "Night Train to Porto.mkv")
	if err := writeRandomFile(file, tunnelFileSize); err != nil {
		return err
	}
	if _, err := eli.Index().AddShare(dir, share.ShareFlags{Anonymous: true}); err != nil {
		return err
	}
	if _, err := eli.Index().RescanShare(ctx, dir); err != nil {
		return err
	}
	d.Say("eli shares %s ANONYMOUSLY (not browsable): %s", dir, share.FormatSize(tunnelFileSize))

	// Depths are random (see package tunnels): a search reaches four hops
	// almost always, and ana asks again if no answer came back.
	var hit tunnels.Result
	found := false
	for try := 1; try <= 15 && !found; try++ {
		// Holders answer after a delay of their own (tunnels.DefaultHolderDelay).
		sctx, cancel := context.WithTimeout(ctx, tunnels.DefaultHolderDelay+2*time.Second)
		results, err := ana.Search(sctx, tunnels.Query{Keywords: "night train"})
		if err != nil {
			cancel()
			return err
		}
		for r := range results {
			if !found {
				hit, found = r, true
				d.Say("ana searches \"night train\" (try %d) and finds: %s  %s", try, r.Name, share.FormatSize(r.Size))
				cancel()
			}
		}
		cancel()
	}
	if !found {
		return errors.New("ana's searches found nothing")
	}
	link := share.Link{Root: hit.Root, Name: hit.Name, Size: hit.Size}
	d.Say("link: %s", link)

	start := time.Now()
	if _, err := ana.AddDownload(link, "", true); err != nil {
		return err
	}
	var (
		info       share.DownloadInfo
		firstBytes time.Time
	)
	err := WaitFor(ctx, 60*time.Second, "the tunnelled download", func() bool {
		info, _ = ana.Downloads().Info(link.Root)
		if firstBytes.IsZero() && info.Done > 0 {
			firstBytes = time.Now()
		}
		return info.State == share.StateDone || info.State == share.StateFailed
	})
	if err != nil {
		return err
	}
	if info.State != share.StateDone {
		return fmt.Errorf("tunnelled download failed: %s", info.Error)
	}
	end := time.Now()
	if firstBytes.IsZero() {
		firstBytes = end
	}
	for _, s := range info.Sources {
		if !strings.HasPrefix(s.Name, "tunnel") {
			return fmt.Errorf("anonymous download used %s, not a tunnel", s.Name)
		}
		d.Say("  from %-9s %s", s.Name, share.FormatSize(s.Bytes))
	}
	secs := end.Sub(start).Seconds()
	d.Say("ana downloaded %s through a 4-hop tunnel (tunnels only) in %.2fs: %.1f MB/s overall; first bytes after %v (tunnel setup), then about %.0f MB/s",
		share.FormatSize(info.Size), secs, float64(info.Size)/1e6/secs, firstBytes.Sub(start).Round(time.Millisecond),
		float64(info.Size)/1e6/max(end.Sub(firstBytes).Seconds(), 0.001))
	t, err := share.HashFile(info.Path)
	if err != nil {
		return err
	}
	if t.Root != link.Root {
		return errors.New("downloaded file does not match its root")
	}
	d.Say("BLAKE3 root of %s matches the link: %x…", filepath.Base(info.Path), t.Root[:8])

	content, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	rootHex := []byte(hex.EncodeToString(link.Root[:]))
	for _, name := range chain[1 : len(chain)-1] {
		tp := taps[name]
		tp.mu.Lock()
		ctrl, data := tp.ctrl.Bytes(), tp.data.Bytes()
		for _, seen := range [][]byte{ctrl, data} {
			if bytes.Contains(seen, link.Root[:]) || bytes.Contains(seen, rootHex) {
				tp.mu.Unlock()
				return fmt.Errorf("relay %s saw the file's root", name)
			}
		}
		// A 64-byte window of the file at every MiB.
		for off := 0; off+64 <= len(content); off += 1 << 20 {
			if bytes.Contains(data, content[off:off+64]) || bytes.Contains(ctrl, content[off:off+64]) {
				tp.mu.Unlock()
				return fmt.Errorf("relay %s saw the file's content at offset %d", name, off)
			}
		}
		if bytes.Contains(ctrl, []byte(hit.Name)) {
			tp.mu.Unlock()
			return fmt.Errorf("relay %s saw the search answer in clear", name)
		}
		d.Say("relay %s forwarded %s of tunnel data and %s of control messages: never the root, the content or the answer",
			name, share.FormatSize(int64(len(data))), share.FormatSize(int64(len(ctrl))))
		tp.mu.Unlock()
	}
	return nil
}
