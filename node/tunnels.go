package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"lukechampine.com/blake3"

	"kith/chat"
	"kith/share"
	"kith/tunnels"
)

const (
	// tunnelSources is how many sources a download wants before it stops
	// asking for tunnels: friends found count first.
	tunnelSources = 2
	// tunnelOpenTimeout bounds one request for tunnels made by a download.
	tunnelOpenTimeout = 10 * time.Second
	// tunnelTopUpTimeout bounds it when friends already gave a source. It
	// covers a holder's delay before its TunnelOK
	// (tunnels.DefaultHolderDelay) and the setup.
	tunnelTopUpTimeout = 3 * time.Second
	// anonCacheMaxAge is how long the map of anonymous files is kept when
	// the anonymous shares do not change.
	anonCacheMaxAge = time.Minute
	// searchAnswerLimit bounds the files one search is answered with.
	searchAnswerLimit = tunnels.MaxFilesPerResult * 4
)

// tunnelService wires the turtle router into the node: it answers tunnel
// requests and searches from the anonymous shares, serves the share
// protocol on tunnels opened to this node, and opens tunnels for downloads.
type tunnelService struct {
	n      *Node
	router *tunnels.Router

	ctx    context.Context
	cancel context.CancelFunc
	wgMu   sync.Mutex // guards closing and wg.Add
	closed bool
	wg     sync.WaitGroup

	mu          sync.Mutex
	byTarget    map[[32]byte][32]byte                           // TargetForRoot(root) -> root
	bySearch    map[[tunnels.SearchHashLen]byte]share.FoundFile // SearchHash(root) -> file
	fingerprint string                                          // anonFingerprint of the shares mapped
	refreshed   time.Time
	active      map[[32]byte]int // tunnel sources in use, by root

	nextKey atomic.Uint64
	// chat, once set, ends the tunnels to the node's chat identities.
	chat atomic.Pointer[chat.Service]
}

// AcceptsTarget reports whether target is one of the node's chat
// identities; the router asks it for targets no shared file matches.
func (s *tunnelService) AcceptsTarget(target [32]byte) bool {
	c := s.chat.Load()
	return c != nil && c.AcceptsTarget(target)
}

// ServeTunnel hands a tunnel to a chat identity to the chat service.
func (s *tunnelService) ServeTunnel(target [32]byte, rw io.ReadWriteCloser) {
	c := s.chat.Load()
	if c == nil {
		rw.Close()
		return
	}
	c.ServeTunnel(target, rw)
}

func startTunnels(n *Node) (*tunnelService, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &tunnelService{n: n, ctx: ctx, cancel: cancel, active: make(map[[32]byte]int)}
	cfg := tunnels.DefaultRouterConfig()
	cfg.Holder = s
	cfg.Searcher = s
	cfg.OnTunnel = s.serve
	cfg.Endpoint = s
	cfg.Log = n.log
	cfg.Rand = n.cfg.TunnelRand
	cfg.Tap = n.cfg.TunnelTap
	secret, err := routerSecret(n.key)
	if err != nil {
		cancel()
		return nil, err
	}
	cfg.Secret = secret
	r, err := tunnels.NewRouter(n.host, n.friends, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	s.router = r
	return s, nil
}

// routerSecretContext derives the router's secret from the node key.
const routerSecretContext = "kith 2026 router secret v1"

// routerSecret derives the secret that keys the router's fixed random
// choices (tunnels.RouterConfig.Secret) from the node key, so that they
// stay the same across restarts: a friend that probes again after one
// learns nothing new.
func routerSecret(key crypto.PrivKey) ([32]byte, error) {
	var out [32]byte
	raw, err := key.Raw()
	if err != nil {
		return out, fmt.Errorf("deriving the router secret: %w", err)
	}
	blake3.DeriveKey(out[:], routerSecretContext, raw)
	return out, nil
}

// close stops the router and every tunnel this node serves, and waits.
func (s *tunnelService) close() error {
	s.cancel()
	s.wgMu.Lock()
	s.closed = true
	s.wgMu.Unlock()
	err := s.router.Close()
	s.wg.Wait()
	return err
}

// serve answers the share protocol, anonymous shares only, on a tunnel
// opened to this node. The router calls it in its own goroutine.
func (s *tunnelService) serve(t *tunnels.Tunnel) {
	s.wgMu.Lock()
	if s.closed {
		s.wgMu.Unlock()
		t.Close()
		return
	}
	s.wg.Add(1)
	s.wgMu.Unlock()
	defer s.wg.Done()
	defer t.Close()
	if err := s.n.share.server.Serve(s.ctx, t, share.ScopeAnonymous); err != nil {
		s.n.log.Debug("tunnel share stream ended", slog.Any("err", err))
	}
}

// anonFingerprint summarises the anonymous shares as of their last scans:
// it changes when one is added, removed or rescanned.
func anonFingerprint(shares []share.ShareInfo) string {
	var b strings.Builder
	for _, sh := range shares {
		if sh.Anonymous {
			fmt.Fprintf(&b, "%s\x00%d\x00%d\x00%d\n", sh.Dir, sh.Files, sh.Bytes, sh.LastScan.UnixNano())
		}
	}
	return b.String()
}

// currentLocked makes the maps of anonymous files, rebuilt from the index when
// the anonymous shares changed since the last build (or anonCacheMaxAge
// passed). s.mu is held.
func (s *tunnelService) currentLocked() {
	shares := s.n.share.index.Shares()
	fp := anonFingerprint(shares)
	if s.byTarget != nil && fp == s.fingerprint && time.Since(s.refreshed) < anonCacheMaxAge {
		return
	}
	byTarget := make(map[[32]byte][32]byte)
	bySearch := make(map[[tunnels.SearchHashLen]byte]share.FoundFile)
	for _, sh := range shares {
		if !sh.Anonymous {
			continue
		}
		files, err := s.n.share.index.Files(sh.Dir)
		if err != nil {
			continue
		}
		for _, f := range files {
			byTarget[tunnels.TargetForRoot(f.Root)] = f.Root
			bySearch[tunnels.SearchHash(f.Root)] = f
		}
	}
	s.byTarget, s.bySearch, s.fingerprint, s.refreshed = byTarget, bySearch, fp, time.Now()
}

// HoldsTarget implements tunnels.Holder over the anonymous shares.
func (s *tunnelService) HoldsTarget(target [32]byte) ([32]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.currentLocked()
	if root, ok := s.byTarget[target]; ok {
		return root, true
	}
	return s.n.share.holdsPartial(target) // swarm.go
}

// Search implements tunnels.Searcher over the anonymous shares.
func (s *tunnelService) Search(q tunnels.Query) []tunnels.Result {
	if q.Keywords == "" {
		s.mu.Lock()
		s.currentLocked()
		f, ok := s.bySearch[q.RootHash]
		s.mu.Unlock()
		if !ok {
			return nil
		}
		return []tunnels.Result{{Name: f.Name, Size: f.Size, Root: f.Root}}
	}
	fs, err := s.n.share.index.Find(q.Keywords, share.ScopeAnonymous, searchAnswerLimit)
	if err != nil {
		return nil
	}
	out := make([]tunnels.Result, 0, len(fs))
	for _, f := range fs {
		out = append(out, tunnels.Result{Name: f.Name, Size: f.Size, Root: f.Root})
	}
	return out
}

// findSources opens up to want tunnels to holders of root and offers each
// as a download source. With a claimed size (share.FindRequest.ClaimedSize),
// the first tunnel is asked for the group that proves it together with
// its Have: a round trip less of set-up over a long path.
func (s *tunnelService) findSources(ctx context.Context, root [32]byte, claimed int64, want int, wait time.Duration) []*share.Source {
	s.mu.Lock()
	want -= s.active[root]
	s.mu.Unlock()
	if want <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// Each tunnel's handshake rides with its first requests (HaveAndLast).
	began := time.Now()
	ts, err := s.router.StartTunnels(ctx, root, want)
	setUp := time.Since(began)
	if err != nil {
		s.n.log.Debug("no tunnel for download", slog.String("root", fmt.Sprintf("%x", root[:8])), slog.Any("err", err))
		return nil
	}
	// The tunnels' Haves go out at once: each is a round trip of its path.
	found := make([]*share.Source, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() {
			p := share.NewPeer(t)
			c := int64(share.UnknownSize)
			if i == 0 {
				c = claimed
			}
			have, f, err := p.HaveAndLast(ctx, root, c)
			if err != nil || (!have.Complete && len(have.Bitmap) == 0) {
				p.Close()
				return
			}
			found[i] = s.tunnelSource(root, p, f, have)
		})
	}
	wg.Wait()
	var out []*share.Source
	for _, src := range found {
		if src != nil {
			out = append(out, src)
		}
	}
	s.n.log.Debug("tunnel sources", slog.String("root", fmt.Sprintf("%x", root[:8])), slog.Int("tunnels", len(ts)),
		slog.Int("sources", len(out)), slog.Duration("set_up", setUp), slog.Duration("have", time.Since(began)-setUp))
	return out
}

// tunnelSource makes the download source of a tunnel to root, whose
// share stream is p (fetched through f), and counts it as active until it
// is closed.
func (s *tunnelService) tunnelSource(root [32]byte, p *share.Peer, f share.Fetcher, have share.HaveReply) *share.Source {
	n := s.nextKey.Add(1)
	s.mu.Lock()
	s.active[root]++
	s.mu.Unlock()
	var once sync.Once
	return &share.Source{
		Key: fmt.Sprintf("tunnel:%d", n), Name: fmt.Sprintf("tunnel %d", n),
		Fetcher: f, Have: have,
		// A tunnel is a long path: its first ranges go out with the
		// proof of the size, not after it.
		Speculate: true,
		Close: func() error {
			once.Do(func() {
				s.mu.Lock()
				if s.active[root]--; s.active[root] <= 0 {
					delete(s.active, root)
				}
				s.mu.Unlock()
			})
			return p.Abort() // the relays stop carrying what the holder still owes
		},
	}
}

// Search floods a search through the friends' routers and returns the
// results as they arrive, until ctx ends.
func (n *Node) Search(ctx context.Context, q tunnels.Query) (<-chan tunnels.Result, error) {
	s := n.tun.Load()
	if s == nil {
		return nil, tunnels.ErrRouterClosed
	}
	return s.router.Search(ctx, q)
}

// Router is the node's turtle router (nil before Start finished).
func (n *Node) Router() *tunnels.Router {
	if s := n.tun.Load(); s != nil {
		return s.router
	}
	return nil
}

// AddDownload queues a download of link into dir (the downloads folder if
// empty). An anonymous download uses tunnels only: friends are never
// asked; the download manager keeps the mark with the download, so it
// survives restarts.
func (n *Node) AddDownload(link share.Link, dir string, anonymous bool) (share.DownloadInfo, error) {
	return n.share.manager.AddWith(link, dir, share.AddOptions{Anonymous: anonymous})
}
