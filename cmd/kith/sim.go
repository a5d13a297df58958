package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kith/internal/sim"
)

// newSimCmd is `kith sim`: many kith routers on an in-process mocknet.
func newSimCmd() *cobra.Command {
	cfg := sim.DefaultConfig()
	var (
		bandwidth  string
		asJSON     bool
		outDir     string
		quiet      bool
		timeout    time.Duration
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "simulate a friend network of many kith nodes and report search, tunnel, lobby and privacy figures",
		Long: "kith sim starts one in-process libp2p host, one real kith router and one real lobby service\n" +
			"per node on a mocknet whose links are the friendships of a generated graph, runs searches,\n" +
			"tunnel setups, probing friends and a chat lobby, and reports reach, latency, messages,\n" +
			"duplicates, tunnel success, lobby delivery, what adversaries learn about search origins and\n" +
			"about which files a friend holds, and cost. The same --seed gives the same graph and workload.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bw, err := parseBandwidth(bandwidth)
			if err != nil {
				return usageError{err}
			}
			cfg.Bandwidth = bw
			scaleDefaults(cmd.Flags().Changed, &cfg, &timeout)
			if outDir != "" {
				// Before the run, so that a bad folder does not cost its results.
				if err := os.MkdirAll(outDir, 0o755); err != nil {
					return fmt.Errorf("making the --out folder: %w", err)
				}
			}
			if !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			tuneGC()
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("making the --cpuprofile file: %w", err)
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return fmt.Errorf("starting the CPU profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			ctx, cancel2 := context.WithTimeout(ctx, timeout)
			defer cancel2()
			rep, err := sim.Run(ctx, cfg)
			if err != nil {
				return fmt.Errorf("simulating: %w", err)
			}
			if outDir != "" {
				if err := rep.WriteFiles(outDir); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, rep)
			}
			return rep.WriteTable(out)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of nodes")
	f.IntVar(&cfg.Degree, "degree", cfg.Degree, "average number of friends per node (even)")
	f.StringVar(&cfg.Graph, "graph", cfg.Graph, "friend graph: smallworld (Watts–Strogatz), scalefree (Barabási–Albert) or ring")
	f.Float64Var(&cfg.Rewire, "rewire", cfg.Rewire, "small-world rewiring probability")
	f.DurationVar(&cfg.Latency, "latency", cfg.Latency, "one-way latency of every friend link")
	f.StringVar(&bandwidth, "bandwidth", "10MB/s", "bandwidth of every friend link, e.g. 10MB/s, 512KiB/s, or 0 for unlimited")
	f.IntVar(&cfg.Searches, "searches", cfg.Searches, "number of searches")
	f.Float64Var(&cfg.SearchRate, "rate", cfg.SearchRate, "searches started per second across the network (at most the routers' per-friend limit)")
	f.DurationVar(&cfg.SearchEvery, "search-every", cfg.SearchEvery, "load the traffic figures are given for: one search per node per this long")
	f.DurationVar(&cfg.SearchWindow, "window", cfg.SearchWindow, "how long each search collects results")
	f.Float64Var(&cfg.TargetShare, "target-share", cfg.TargetShare, "share of searches for the file held by a single node")
	f.IntVar(&cfg.Files, "files", cfg.Files, "number of distinct files (file 0 has one holder, the others Zipf replicas)")
	f.IntVar(&cfg.Tunnels, "tunnels", cfg.Tunnels, "number of tunnels opened to the single holder, one at a time")
	f.DurationVar(&cfg.TunnelTimeout, "tunnel-timeout", cfg.TunnelTimeout, "how long each tunnel setup may take")
	f.IntVar(&cfg.Probers, "probers", cfg.Probers, "number of probing friends, each asking its neighbour whether it holds a file (0: no probing phase)")
	f.DurationVar(&cfg.ProbeWindow, "probe-window", cfg.ProbeWindow, "how long probing friends wait for the last answers")
	f.DurationVar(&cfg.HolderDelay, "holder-delay", cfg.HolderDelay, "longest delay before a holder answers a search or tunnel request (the routers' HolderDelay)")
	f.BoolVar(&cfg.Lobby, "lobby", cfg.Lobby, "run the lobby phase: one public lobby, its members joining, then messages")
	f.Float64Var(&cfg.LobbyMembers, "lobby-members", cfg.LobbyMembers, "share of nodes in the lobby, nearest its creator first (0 to 1)")
	f.IntVar(&cfg.LobbyMessages, "lobby-messages", cfg.LobbyMessages, "number of lobby messages, each from a random member")
	f.Float64Var(&cfg.LobbyMessageRate, "lobby-rate", cfg.LobbyMessageRate, "lobby messages sent per second (at most the lobby's per-friend limit)")
	f.Float64Var(&cfg.LobbyJoinRate, "lobby-join-rate", cfg.LobbyJoinRate, "most members joining per second (at most the lobby's per-friend limit)")
	f.BoolVar(&cfg.LobbyEstablished, "lobby-established", cfg.LobbyEstablished, "start in a lobby that exists: all members but --lobby-joiners start as members that joined it before, knowing its size, and say no JOIN")
	f.IntVar(&cfg.LobbyJoiners, "lobby-joiners", cfg.LobbyJoiners, "with --lobby-established, how many members join it live")
	f.DurationVar(&cfg.LobbyHold, "lobby-hold", cfg.LobbyHold, "keep the lobby up this long after its messages, counting keep-alives")
	f.Float64Var(&cfg.LobbyPresenceRate, "lobby-presence-rate", cfg.LobbyPresenceRate, "presence budget of each lobby link, keep-alives, joins and leaves a second (0: chat's, a quarter of the friend rate)")
	f.BoolVar(&cfg.LobbyEachVerifies, "lobby-each-verifies", cfg.LobbyEachVerifies, "every node computes each lobby signature check itself (N^2 at N members in one process); default: one verifier shared by all nodes remembers the answers")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the graph, identities, placement, workload and depth randomness")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&outDir, "out", "", "also write CSV files and SVG charts to this folder")
	f.BoolVar(&quiet, "quiet", false, "do not print progress to stderr")
	f.DurationVar(&timeout, "timeout", 15*time.Minute, "give up after this long")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	f.StringVar(&cfg.HeapProfile, "memprofile", "", "write a heap profile to this file at the end of the lobby phase, its services still up (go tool pprof)")
	return cmd
}

// simScaleNodes is the network size above which `kith sim` scales down
// the defaults that would not fit two cores (flags given are kept): the
// search rate, in proportion, since a search costs about three messages
// per node; the lobby, to simScaleNodes members nearest its creator (each
// join is a message on every member link); the timeout grows to
// simScaleTimeout; and the search window and tunnel timeout grow to
// simScaleWindow and simScaleTunnelTimeout, since one process on two
// cores runs a 10,000-node network several times slower than real time
// (a search there costs 3-5 s of CPU, all relays together), so answers
// that a real network would deliver within 5 s arrive later.
const (
	simScaleNodes         = 1000
	simScaleTimeout       = 40 * time.Minute
	simScaleWindow        = 20 * time.Second
	simScaleTunnelTimeout = 30 * time.Second
)

// scaleDefaults applies simScaleNodes to the flags not given (changed
// reports those given).
func scaleDefaults(changed func(flag string) bool, cfg *sim.Config, timeout *time.Duration) {
	if cfg.Nodes <= simScaleNodes {
		return
	}
	share := float64(simScaleNodes) / float64(cfg.Nodes)
	if !changed("rate") {
		cfg.SearchRate *= share
	}
	if !changed("lobby-members") {
		cfg.LobbyMembers = min(cfg.LobbyMembers, share)
	}
	if !changed("timeout") {
		*timeout = simScaleTimeout
	}
	if !changed("window") {
		cfg.SearchWindow = max(cfg.SearchWindow, simScaleWindow)
	}
	if !changed("tunnel-timeout") {
		cfg.TunnelTimeout = max(cfg.TunnelTimeout, simScaleTunnelTimeout)
	}
}

// simGCPercent and simMemoryLimit are the garbage collector's settings
// for a run unless GOGC or GOMEMLIMIT say otherwise: the simulator's heap
// is mostly long-lived (hosts, links, routers), so collecting at 100%
// growth spent about an eighth of the CPU of a 2,000-node run on marking
// it again (go tool pprof of --cpuprofile: 13%); at 300% the collector
// runs a third as often for the same live heap, and the soft limit makes
// it work harder again before the process passes it (10,000 nodes with
// GOGC 300: 5.1 GiB at most at 0.08 searches a second; at the default
// 0.4 a second the process fell behind, its goroutines' stacks and
// queues grew to 8 GiB, and near the limit the collector takes up to
// half the CPU, Go's cap).
const (
	simGCPercent   = 300
	simMemoryLimit = 12 << 30
)

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(simGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(simMemoryLimit)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := jsonEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseBandwidth reads "10MB/s", "512KiB/s", "1e6" or "0" as bytes per
// second. KB, MB and GB are powers of 1000; KiB, MiB and GiB of 1024.
func parseBandwidth(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad --bandwidth %q: give bytes per second such as 10MB/s, 512KiB/s or 0 for unlimited", s)
	}
	return v * mult, nil
}
