package sim

import (
	"fmt"
	"io"
	mrand "math/rand/v2"
	"time"

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
	// whole network. Every search may cross every link once each way, so
	// this is also the rate per link: keep it under
	// tunnels.SearchesPerSecond or the routers drop searches (counted in
	// the report).
	SearchRate float64
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
		SearchWindow:  3 * time.Second,
		Tunnels:       10,
		TunnelTimeout: 4 * time.Second,
		Colluders:     []float64{0.01, 0.05, 0.15, 0.25},
		LinkWait:      2 * time.Minute,
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
	case c.SearchRate > tunnels.SearchesPerSecond:
		return fmt.Errorf("search rate %v/s is above the routers' per-friend limit of %d/s: every search crosses most links, so they would drop searches",
			c.SearchRate, tunnels.SearchesPerSecond)
	case c.SearchWindow <= 0 || c.TunnelTimeout <= 0:
		return fmt.Errorf("search window and tunnel timeout must be positive")
	}
	if c.ConnectWorkers <= 0 {
		c.ConnectWorkers = 8
	}
	if c.LinkWait <= 0 {
		c.LinkWait = 2 * time.Minute
	}
	return nil
}
