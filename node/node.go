package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"kith/chat"
	"kith/f2f"
	"kith/internal/store"
	"kith/internal/version"
	"kith/node/api"
	"kith/share"
	"kith/tunnels"
)

// Config says how to run a node. The zero value of every field but Home is
// usable; DefaultConfig fills in what `kith up` uses.
type Config struct {
	// Home is the node's folder (identity.key, kith.db, api.sock).
	Home string
	// ListenAddrs are multiaddrs to listen on; empty means every interface
	// on the port stored at init (DefaultListenAddrs).
	ListenAddrs []string
	// MDNS announces the node on the LAN and finds friends there. It is
	// never started when every listen address is loopback.
	MDNS bool
	// NoAPI skips the unix-socket API (in-process nodes: demo, tests).
	NoAPI bool
	// Metrics keeps the counters /metrics serves: libp2p's own and the
	// bytes of every stream by protocol.
	Metrics bool
	// DHTAutoRefresh lets the friends DHT refresh its routing table
	// periodically; tests switch it off to observe lookups alone.
	DHTAutoRefresh bool
	// DownloadDir is where downloads go (and their partial files, under
	// .partial); empty means HOME/downloads.
	DownloadDir string
	// MaxUpload and MaxDownload cap share traffic in bytes per second for
	// all friends and tunnels together; zero means the stored setting
	// (none by default), negative means no cap whatever is stored.
	MaxUpload, MaxDownload int64
	// ForceMDNS keeps MDNS on even when the stored settings switch it off.
	ForceMDNS bool
	// NoSwarm stops the node serving the verified parts of files it is
	// still downloading (to friends for a direct download, to tunnels for
	// an anonymous one). Swarming is on by default; it lets a friend who
	// asks learn what you are fetching. The stored setting "swarm" sets it.
	NoSwarm bool
	// DownloadTuning overrides the download engine's defaults.
	DownloadTuning share.Tuning
	// RedialMin and RedialMax override the friend redial backoff.
	RedialMin, RedialMax time.Duration
	// Log receives the node's logs; nil discards them.
	Log *slog.Logger
	// TunnelRand is the randomness of the router's depths; nil means
	// crypto/rand. Tests fix it to reach far ends every time.
	TunnelRand mrand.Source
	// TunnelTap, if set, sees the bytes the router moves (demo and tests).
	TunnelTap *tunnels.Tap
	// Announce are addresses friends should dial besides those the node
	// finds (a forwarded port, a static address); empty means the stored
	// setting.
	Announce []string
	// NoRelay stops the node relaying for friends; NoPortMap stops UPnP /
	// NAT-PMP. The stored settings can switch either off too.
	NoRelay, NoPortMap bool
	// RelayRate caps what the node relays for friends, bytes per second;
	// zero means the stored setting (f2f.DefaultRelayRate by default),
	// negative means no cap.
	RelayRate int64
	// ApproveIntroductions keeps introductions (kith id --introduce) for
	// the owner's approval instead of adding the friend at once.
	ApproveIntroductions bool
	// Web serves the web UI (it needs the API) on WebAddr, a loopback
	// host:port; an empty WebAddr means the stored setting `web`.
	Web     bool
	WebAddr string
}

// DefaultConfig is the configuration of `kith up` for home.
func DefaultConfig(home string) Config {
	return Config{Home: home, MDNS: true, DHTAutoRefresh: true, Metrics: true}
}

// Node is a running kith node: the libp2p host with its friends-only gater,
// the friend connector, the friends DHT and the local API.
type Node struct {
	cfg Config
	log *slog.Logger
	key crypto.PrivKey
	// settingsMu guards settings, which `kith config set` changes.
	settingsMu sync.Mutex
	settings   Settings
	started    time.Time

	db      *bolt.DB
	friends *f2f.Friends
	// logNames names friends in log lines (log goes through it).
	logNames  logNames
	gater     *f2f.Gater
	host      host.Host
	dht       *f2f.FriendDHT
	connector *f2f.Connector
	trav      *f2f.Traversal
	reach     *reachService
	metrics   *prometheus.Registry      // what /metrics serves
	bw        *metrics.BandwidthCounter // bytes by protocol; nil without Config.Metrics
	dlCounts  downloadCounters          // downloads' groups and sources, for /metrics
	transfer  *transferMeter            // upload and download rates for Status; nil without Config.Metrics
	reachable atomic.Pointer[f2f.Reach] // reach.reach, for the connector
	mdns      interface{ Close() error }
	events    *Bus
	share     *shareService
	chat      *chat.Service
	lobbies   *lobbyService
	tun       atomic.Pointer[tunnelService]
	api       *apiServer
	web       *webServer // nil: not running (webErr says why, if it failed)
	webErr    error

	closeOnce sync.Once
	closeErr  error
	pidFile   bool // this node wrote PIDFile
}

// protocolStreams are the per-friend stream caps of kith's protocols, which
// the resource manager enforces besides the handlers' own counts (so a
// stream over the cap is refused before any handler runs). The tunnel
// protocol has only its handler's cap (tunnels.MaxTunnelStreamsPerFriend,
// inbound): the resource manager's would cap outbound streams too, and a
// relay may send many tunnels on to one friend.
func protocolStreams() map[protocol.ID]int {
	return map[protocol.ID]int{
		protocol.ID(chat.ProtocolID):      chat.ChatStreamsPerFriend,
		protocol.ID(chat.LobbyProtocolID): chat.LobbyStreamsPerFriend,
		protocol.ID(share.ProtocolID):     share.MaxShareStreamsPerFriend,
		tunnels.RouterProtocol:            tunnels.MaxRouterStreamsPerFriend,
	}
}

// ErrDaemonRunning means another process already runs this home's node.
var ErrDaemonRunning = errors.New("a kith daemon is already running for this home")

// ErrFriendOffline means a request needs a friend that is not connected.
var ErrFriendOffline = api.ErrFriendOffline

// Start opens the node in cfg.Home and brings it up: store, host, DHT,
// connector, mDNS, sharing, the turtle router and the API. On error
// everything started is stopped.
func Start(cfg Config) (n *Node, err error) {
	if err := CheckHome(cfg.Home); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names := newLogNames(log.Handler())
	log = slog.New(names)
	n = &Node{cfg: cfg, log: log, logNames: names, events: NewBus(), started: time.Now()}
	defer func() {
		if err != nil {
			n.Close()
			n = nil
		}
	}()
	if tightened, err := secureHome(cfg.Home); err != nil {
		return n, err
	} else if tightened {
		log.Warn("home folder was open to other users; set it to 0700", slog.String("home", cfg.Home))
	}
	if n.key, err = loadIdentity(cfg.Home); err != nil {
		return n, err
	}
	n.db, err = store.Open(filepath.Join(cfg.Home, DBFile), store.Options{Writer: version.Get().String()})
	if errors.Is(err, store.ErrLocked) {
		if pid := DaemonPID(cfg.Home); pid > 0 {
			return n, fmt.Errorf("%w (%s, process %d)", ErrDaemonRunning, cfg.Home, pid)
		}
		return n, fmt.Errorf("%w (%s)", ErrDaemonRunning, cfg.Home)
	}
	if err != nil {
		return n, err
	}
	if err := writePID(cfg.Home); err != nil {
		return n, fmt.Errorf("recording the daemon's process: %w", err)
	}
	n.pidFile = true
	if n.settings, err = loadSettings(n.db); errors.Is(err, errNoSettings) {
		// A repaired database may have lost them: start again from the
		// defaults rather than refuse to run.
		port, perr := freePort()
		if perr != nil {
			return n, perr
		}
		n.settings = Settings{Port: port}
		if err = saveSettings(n.db, n.settings); err != nil {
			return n, err
		}
		log.Warn("the node's settings were missing (a repaired database?); made new ones: set your name with `kith config set name NICK`",
			slog.Int("port", port))
	} else if err != nil {
		return n, err
	}
	cfg = applySettings(cfg, n.settings)
	n.cfg = cfg
	id, err := peer.IDFromPrivateKey(n.key)
	if err != nil {
		return n, fmt.Errorf("deriving peer ID: %w", err)
	}
	if n.friends, err = f2f.OpenFriends(n.db, id); err != nil {
		return n, err
	}
	n.logNames.set(n.friends.List())
	n.gater = f2f.NewGater(n.friends, log)
	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = DefaultListenAddrs(n.settings.Port)
	}
	announce, err := parseAnnounce(cfg.Announce)
	if err != nil {
		return n, err
	}
	n.trav = f2f.NewTraversal(announce)
	hc := f2f.HostConfig{Key: n.key, ListenAddrs: listen, Gater: n.gater,
		Traversal: n.trav, PortMap: !cfg.NoPortMap, ProtocolPeerStreams: protocolStreams()}
	n.metrics = newMetrics()
	if cfg.Metrics {
		n.bw = metrics.NewBandwidthCounter()
		hc.Metrics, hc.Bandwidth = n.metrics, n.bw
		n.transfer = startTransferMeter(n.bw)
	}
	if n.host, err = f2f.NewHost(hc); err != nil {
		return n, err
	}
	if n.dht, err = f2f.NewFriendDHT(n.host, n.friends, cfg.DHTAutoRefresh); err != nil {
		return n, err
	}
	n.friends.Watch(n.publishFriendChange)
	n.connector, err = f2f.NewConnector(f2f.ConnectorConfig{
		Host: n.host, Friends: n.friends, DHT: n.dht, Log: log,
		RedialMin: cfg.RedialMin, RedialMax: cfg.RedialMax,
		Reachable: func() bool { rc := n.reachable.Load(); return rc != nil && rc.Public() },
		Private:   func() bool { rc := n.reachable.Load(); return rc != nil && rc.Private() },
		Gater:     n.gater,
		// Downloads and tunnels: a friend met over QUIC alone is moved
		// to TCP only while its connection is young or carries none.
		BulkProtocols: []protocol.ID{share.ProtocolID, tunnels.TunnelProtocol},
		OnAddrs: func(id peer.ID, addrs []ma.Multiaddr, src f2f.AddrSource) {
			n.events.Publish(api.EventFriendAddrs, api.FriendAddrsEvent{PeerID: id.String(), Addrs: addrStrings(addrs), Source: string(src)})
		},
	})
	if err != nil {
		return n, err
	}
	if n.reach, err = startReach(n); err != nil {
		return n, err
	}
	if cfg.MDNS && !allLoopback(n.host.Addrs()) {
		if n.mdns, err = f2f.StartMDNS(n.host, n.connector, log.With("service", "mdns")); err != nil {
			return n, err
		}
	}
	if n.cfg.DownloadDir == "" {
		n.cfg.DownloadDir = filepath.Join(cfg.Home, "downloads")
	}
	if err := os.MkdirAll(n.cfg.DownloadDir, 0o700); err != nil {
		return n, fmt.Errorf("creating downloads folder: %w", err)
	}
	if n.share, err = startShare(n); err != nil {
		return n, err
	}
	t, err := startTunnels(n)
	if err != nil {
		return n, err
	}
	n.tun.Store(t)
	if n.chat, err = startChat(n); err != nil {
		return n, err
	}
	if n.lobbies, err = startLobbies(n); err != nil {
		return n, err
	}
	n.metrics.MustRegister(kithCollector{n: n, bw: n.bw})
	if !cfg.NoAPI {
		if n.api, err = startAPI(n, filepath.Join(cfg.Home, SocketFile)); err != nil {
			return n, err
		}
	}
	if err := n.startWebUI(); err != nil {
		return n, err
	}
	log.Info("node up", slog.String("peer", id.String()), slog.Any("addrs", n.host.Addrs()))
	return n, nil
}

// Close stops the node: API first (and its socket), then the turtle router
// and the tunnels it serves, the share service, friend dialling,
// the DHT, the host (closing every connection) and the database. Safe to call
// more than once and on a partly started node.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.web != nil {
			errs = append(errs, n.web.close())
		}
		if n.api != nil {
			errs = append(errs, n.api.close())
		}
		if n.lobbies != nil {
			errs = append(errs, n.lobbies.close())
		}
		if n.chat != nil {
			errs = append(errs, n.chat.Close())
		}
		if t := n.tun.Load(); t != nil {
			errs = append(errs, t.close())
		}
		if n.share != nil {
			errs = append(errs, n.share.close())
		}
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		if n.reach != nil {
			errs = append(errs, n.reach.close())
		}
		if n.connector != nil {
			errs = append(errs, n.connector.Close())
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.transfer != nil {
			n.transfer.close()
		}
		if n.pidFile {
			os.Remove(filepath.Join(n.cfg.Home, PIDFile))
		}
		if n.db != nil {
			errs = append(errs, n.db.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host is the node's libp2p host (for services built on top of it).
func (n *Node) Host() host.Host { return n.host }

// Friends is the node's friend list.
func (n *Node) Friends() *f2f.Friends { return n.friends }

// Gater is the node's connection gater.
func (n *Node) Gater() *f2f.Gater { return n.gater }

// Connector is the node's friend connector.
func (n *Node) Connector() *f2f.Connector { return n.connector }

// Events is the node's event bus.
func (n *Node) Events() *Bus { return n.events }

// Index is the index of the node's own shares.
func (n *Node) Index() *share.Index { return n.share.index }

// Downloads is the node's download manager.
func (n *Node) Downloads() *share.Manager { return n.share.manager }

// Browse lists a friend's browsable shares at path.
func (n *Node) Browse(ctx context.Context, friend, path string, offset int) (api.BrowseListing, error) {
	return n.share.browse(ctx, friend, path, offset)
}

// Name is the node owner's nickname.
func (n *Node) Name() string {
	n.settingsMu.Lock()
	defer n.settingsMu.Unlock()
	return n.settings.Name
}

// InviteAddrs are the addresses put in invites: every address the node
// advertises (interface addresses, port mappings, --announce, addresses
// friends confirmed, circuit addresses through friends' relays), minus
// loopback ones when there is anything else, minus link-local ones;
// public ones first, then circuits, then private ones, so that the cap
// keeps the useful ones.
func (n *Node) InviteAddrs() []ma.Multiaddr {
	all := n.host.Addrs()
	var out []ma.Multiaddr
	loopbackOnly := allLoopback(all)
	for _, a := range all {
		if manet.IsIP6LinkLocal(a) || (!loopbackOnly && manet.IsIPLoopback(a)) {
			continue
		}
		out = append(out, a)
	}
	rank := func(a ma.Multiaddr) int {
		switch {
		case f2f.IsCircuitAddr(a):
			return 1
		case manet.IsPublicAddr(a):
			return 0
		}
		return 2
	}
	slices.SortStableFunc(out, func(a, b ma.Multiaddr) int { return rank(a) - rank(b) })
	if len(out) > f2f.MaxInviteAddrs {
		out = out[:f2f.MaxInviteAddrs]
	}
	return out
}

// Invite returns the node's signed one-line invite.
func (n *Node) Invite() (string, error) {
	return f2f.NewInvite(n.key, n.InviteAddrs(), n.Name())
}

// AddFriend verifies an invite and adds its node as a friend; an
// existing friend's invite updates its addresses (see addFriendInvite).
func (n *Node) AddFriend(invite, name string) (f2f.Friend, error) {
	fi, err := n.addFriendInvite(context.Background(), invite, name)
	if err != nil {
		return f2f.Friend{}, err
	}
	id, _ := peer.Decode(fi.PeerID)
	f, _ := n.friends.Get(id)
	return f, nil
}

// RemoveFriend removes a friend by peer ID or name and drops its connections.
func (n *Node) RemoveFriend(ref string) (f2f.Friend, error) {
	return n.friends.Remove(ref)
}

// Status reports what the node is doing now.
func (n *Node) Status() api.Status {
	st := api.Status{
		PeerID: n.ID().String(), Name: n.Name(), Home: n.cfg.Home,
		ListenAddrs: addrStrings(n.host.Addrs()),
		Started:     n.started.UTC(), UptimeSeconds: time.Since(n.started).Seconds(),
		Connections: len(n.host.Network().Conns()), Refused: n.gater.Refused(),
		PID: os.Getpid(), Version: version.Get(), Schema: store.SchemaVersion,
		MaxUpload: n.cfg.MaxUpload, MaxDownload: n.cfg.MaxDownload,
	}
	for _, f := range n.friends.List() {
		st.FriendsTotal++
		if f.Online {
			st.FriendsOnline++
		}
	}
	if n.reach != nil {
		st.Reach = n.reach.status()
	}
	if n.transfer != nil {
		st.DownloadRate, st.UploadRate = n.transfer.rates()
	}
	if t := n.tun.Load(); t != nil && t.router != nil {
		rs := t.router.Stats()
		st.TunnelsRelayed, st.TunnelsServed = rs.TunnelsRelayed, rs.TunnelsServed
	}
	if n.lobbies != nil {
		var behind time.Duration
		if st.ClockSkewed, behind = n.lobbies.l.ClockSkewed(); st.ClockSkewed {
			st.ClockBehindMs = behind.Milliseconds()
		}
	}
	return st
}

func (n *Node) publishFriendChange(c f2f.Change) {
	if c.Kind == f2f.FriendAdded || c.Kind == f2f.FriendRemoved {
		n.logNames.set(n.friends.List())
	}
	typ := map[f2f.ChangeKind]api.EventType{
		f2f.FriendAdded: api.EventFriendAdded, f2f.FriendRemoved: api.EventFriendRemoved,
		f2f.FriendOnline: api.EventFriendOnline, f2f.FriendOffline: api.EventFriendOffline,
	}[c.Kind]
	n.events.Publish(typ, friendJSON(c.Friend))
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func allLoopback(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			return false
		}
	}
	return true
}

// isUnixSocketAlive reports whether something answers on a unix socket.
func isUnixSocketAlive(path string) bool {
	c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
