package sim

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"time"

	"kith/chat"
	"kith/tunnels"
)

// Config describes one simulation run. The zero value is not usable;
// start from DefaultConfig.
type Config struct {
	// Nodes is the number of nodes, one libp2p host and router each.
	Nodes int
	// Degree is the average number of friends per node (even).
	Degree int
	// Graph is GraphSmallWorld, GraphScaleFree or GraphRing.
	Graph string
	// Rewire is the small-world rewiring probability.
	Rewire float64
	// Latency is the one-way delay of every friend link.
	Latency time.Duration
	// Bandwidth is every friend link's rate in bytes per second; 0 is
	// unlimited.
	Bandwidth float64
	// Seed makes the graph, the identities, the file placement, the
	// workload and every router's depth randomness repeatable.
	Seed uint64

	// Files is the number of distinct files. File 0 is the rare target,
	// held by exactly one node; file k >= 1 is held by
	// ceil(Nodes*PopularShare/k) nodes (Zipf replication).
	Files int
	// PopularShare is the share of nodes holding file 1.
	PopularShare float64
	// Searches is the number of searches, each from a random origin.
	Searches int
	// TargetShare is the share of searches that look for the rare file
	// 0; the others pick file k >= 1 with probability proportional to 1/k.
	TargetShare float64
	// SearchRate is the number of searches started per second across the
	// whole network. A search crosses a link at most once each way, so
	// this bounds the rate per link: keep it under
	// tunnels.SearchesPerSecond or the routers may drop searches (counted
	// in the report).
	SearchRate float64
	// SearchEvery is the load the traffic figures are given for: one
	// search per node per SearchEvery (the report scales what each node
	// wrote per search of the run to that rate; the run itself searches at
	// SearchRate, which a few cores can simulate in real time).
	SearchEvery time.Duration
	// SearchWindow is how long each search's results are collected.
	SearchWindow time.Duration
	// Tunnels is the number of tunnels opened, one after another, from
	// random origins to the holder of the rare file.
	Tunnels int
	// TunnelTimeout bounds the setup of one tunnel.
	TunnelTimeout time.Duration
	// Colluders are the shares of nodes that collude in the privacy
	// analysis, e.g. 0.01, 0.05, 0.15.
	Colluders []float64
	// HolderDelay is every router's RouterConfig.HolderDelay: the longest
	// delay before a holder answers (see package tunnels).
	HolderDelay time.Duration
	// Probers is the number of probing friends: hosts outside the graph,
	// each befriended by one random node (its neighbour), that ask it
	// about three files each, held by the neighbour, by a friend of it
	// and by a node farther away, with searches and tunnel requests at
	// depth 0 and at MaxDepth, and judge from the answers whether the
	// neighbour holds the file. 0 skips the probing phase.
	Probers int
	// ProbeWindow is how long the last probe's answers are waited for.
	ProbeWindow time.Duration

	// Lobby turns the lobby phase on: a chat lobby service per node, one
	// public lobby, its members joining, then messages.
	Lobby bool
	// LobbyMembers is the share of nodes in the lobby: its creator, a
	// random node, and the nodes nearest it in a breadth-first walk of
	// the friend graph. Fewer than two members skip the phase.
	LobbyMembers float64
	// LobbyMessages is the number of text messages, each from a random
	// member.
	LobbyMessages int
	// LobbyMessageRate is the number of lobby messages sent per second.
	// Every message crosses every link between members, so this is also
	// the load on each link: keep it under chat.LobbyFriendRate, and low
	// enough that the machine keeps up (each message costs every member a
	// signature check and a store).
	LobbyMessageRate float64
	// LobbyJoinRate is the most members that join per second: each JOIN
	// is a lobby message too, so at most chat.LobbyFriendRate.
	LobbyJoinRate float64
	// LobbyJoinWindow is the most JOINs that may be on their way to the
	// members at once; the next member waits (see joinLobby).
	LobbyJoinWindow int
	// LobbyEstablished starts the phase in a lobby that exists already:
	// every member but the last LobbyJoiners (in join order) starts as a
	// member that was in it when it last stopped, knowing its size
	// (chat.StoreJoinedLobby), and says no JOIN; the LobbyJoiners then
	// join it live, paced as the others would be. A lobby of 10,000
	// formed by joins costs every link 10,000 JOINs within its presence
	// budget (over 2,000 s at chat's); established, it is measured as it
	// runs: its messages, keep-alives and a stream of joins.
	LobbyEstablished bool
	// LobbyJoiners is how many members join an established lobby live.
	LobbyJoiners int
	// LobbyWait bounds the wait for the messages to reach every member
	// after the last is sent.
	LobbyWait time.Duration
	// LobbyHold keeps the lobby up this long after its messages, so that
	// keep-alives are counted (LobbyPresence).
	LobbyHold time.Duration
	// LobbyPresenceRate is each lobby link's presence budget
	// (chat.LobbyConfig.PresenceRate); 0 for chat's own.
	LobbyPresenceRate float64
	// LobbyEachVerifies has every node check every lobby signature
	// itself, as separate machines do; false (the default) gives all
	// nodes one verifier that remembers its answers (sigCache), so a
	// signature N members check is computed about once in the process.
	// Each node still asks for every check; the report counts both.
	LobbyEachVerifies bool
	// HeapProfile, if set, is a file the lobby phase writes a heap
	// profile to once its messages are done, every service still up:
	// what a lobby's members hold (go tool pprof).
	HeapProfile string

	// LinkWait bounds the wait for every router link to come up.
	LinkWait time.Duration
	// ConnectWorkers is how many connections are made at once.
	ConnectWorkers int
	// Rand, if set, gives node i's depth randomness instead of a PCG
	// seeded from Seed and i. Tests use it for deterministic depths.
	Rand func(i int) mrand.Source
	// Progress, if set, receives one line per phase.
	Progress io.Writer
}

// DefaultConfig returns the configuration of `kith sim` without flags:
// 200 nodes of degree 8 in a small world with 20 ms links.
func DefaultConfig() Config {
	return Config{
		Nodes:         200,
		Degree:        8,
		Graph:         GraphSmallWorld,
		Rewire:        DefaultRewire,
		Latency:       20 * time.Millisecond,
		Bandwidth:     10e6,
		Seed:          1,
		Files:         20,
		PopularShare:  0.05,
		Searches:      100,
		TargetShare:   0.5,
		SearchRate:    4,
		SearchEvery:   10 * time.Minute,
		SearchWindow:  5 * time.Second,
		Tunnels:       10,
		TunnelTimeout: 5 * time.Second,
		Colluders:     []float64{0.01, 0.05, 0.15, 0.25},
		HolderDelay:   tunnels.DefaultHolderDelay,
		Probers:       20,
		ProbeWindow:   4 * time.Second,

		Lobby:            true,
		LobbyMembers:     1,
		LobbyMessages:    20,
		LobbyMessageRate: 2,
		LobbyJoinRate:    0.9 * chat.LobbyFriendRate,
		LobbyJoinWindow:  20,
		LobbyWait:        15 * time.Second,

		LinkWait: 2 * time.Minute,
	}
}

func (c *Config) check() error {
	switch {
	case c.Nodes < 3:
		return fmt.Errorf("need at least 3 nodes, got %d", c.Nodes)
	case c.Files < 1:
		return fmt.Errorf("need at least 1 file, got %d", c.Files)
	case c.Searches < 0 || c.Tunnels < 0:
		return fmt.Errorf("searches and tunnels cannot be negative")
	case c.Searches > 0 && c.SearchRate <= 0:
		return fmt.Errorf("search rate must be positive, got %v", c.SearchRate)
	case c.Searches > 0 && c.SearchEvery <= 0:
		return fmt.Errorf("search-every must be positive, got %v", c.SearchEvery)
	case c.SearchRate > tunnels.SearchesPerSecond:
		return fmt.Errorf("search rate %v/s is above the routers' per-friend limit of %d/s: a search may cross any link, so they could drop searches",
			c.SearchRate, tunnels.SearchesPerSecond)
	case c.SearchWindow <= 0 || c.TunnelTimeout <= 0:
		return fmt.Errorf("search window and tunnel timeout must be positive")
	case c.HolderDelay < 0:
		return fmt.Errorf("holder delay cannot be negative")
	case c.Probers < 0 || (c.Probers > 0 && c.ProbeWindow <= 0):
		return fmt.Errorf("probers cannot be negative, and their window must be positive")
	}
	if c.Lobby {
		switch {
		case c.LobbyMembers < 0 || c.LobbyMembers > 1:
			return fmt.Errorf("lobby members is a share of the nodes, from 0 to 1, got %v", c.LobbyMembers)
		case c.LobbyMessages < 0:
			return fmt.Errorf("lobby messages cannot be negative")
		case c.LobbyMessageRate <= 0 || c.LobbyJoinRate <= 0 || c.LobbyWait <= 0:
			return fmt.Errorf("lobby message rate, join rate and wait must be positive")
		case c.LobbyMessageRate > chat.LobbyFriendRate:
			return fmt.Errorf("lobby message rate %v/s is above the lobby's per-friend limit of %d/s: every lobby message crosses every link between members, so relays would drop them",
				c.LobbyMessageRate, chat.LobbyFriendRate)
		case c.LobbyJoinRate > chat.LobbyFriendRate:
			return fmt.Errorf("lobby join rate %v/s is above the lobby's per-friend limit of %d/s: every JOIN crosses every link between members, so relays would drop them",
				c.LobbyJoinRate, chat.LobbyFriendRate)
		}
		if c.LobbyJoiners < 0 {
			return fmt.Errorf("lobby joiners cannot be negative")
		}
		if c.LobbyJoinWindow <= 0 {
			c.LobbyJoinWindow = 20
		}
	}
	if c.ConnectWorkers <= 0 {
		c.ConnectWorkers = 8
	}
	if c.LinkWait <= 0 {
		c.LinkWait = 2 * time.Minute
	}
	return nil
}
