package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kith/internal/logging"
	"kith/internal/store"
	"kith/internal/version"
	"kith/node"
	"kith/node/api"
)

func newInitCmd(g *globals) *cobra.Command {
	var (
		name        string
		newIdentity bool
		port        int
	)
	cmd := &cobra.Command{
		Use:   "init [--name NICK] [--port PORT]",
		Short: "create a node: identity key, database and listen port",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 0 || port > 65535 {
				return usageError{fmt.Errorf("--port %d: want 1-65535", port)}
			}
			s, err := node.Init(g.home, name, node.InitOptions{NewIdentity: newIdentity, Port: port})
			if err != nil {
				return err
			}
			if newIdentity {
				fmt.Printf("made a new identity for the kith node in %s\n", g.home)
				fmt.Println("your friends know your old one: send them your new invite (`kith id`) to add")
			} else {
				fmt.Printf("created a kith node in %s\n", g.home)
			}
			if s.Name != "" {
				fmt.Printf("name:  %s\n", s.Name)
			}
			fmt.Printf("port:  %d (TCP and QUIC)\n", s.Port)
			fmt.Println("next:  run `kith up`, then give `kith id` to a friend")
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "your nickname, shown to friends")
	cmd.Flags().BoolVar(&newIdentity, "new-identity", false, "make a new identity for a home whose identity.key was lost (friends must add the new invite)")
	cmd.Flags().IntVar(&port, "port", 0, "listen port for TCP and QUIC, e.g. one forwarded on your router (default: a free one)")
	return cmd
}

func newRepairCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "repair [--json]",
		Short: "copy what can be read of a damaged kith.db into a new one (the daemon must be stopped)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := node.Repair(g.home)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(rep)
			}
			fmt.Printf("repaired %s/%s: %d keys in %d buckets saved\n", g.home, api.DBFile, rep.Keys, rep.Buckets)
			if rep.BadPages > 0 || len(rep.Damage) > 0 {
				fmt.Printf("lost: %d damaged pages and what hung below them\n", rep.BadPages)
				for _, d := range rep.Damage {
					fmt.Printf("  %s\n", d)
				}
			}
			fmt.Printf("the damaged file is kept as %s\n", rep.Damaged)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newUpCmd(g *globals) *cobra.Command {
	var (
		listen      []string
		noMDNS      bool
		logLevel    string
		logFormat   string
		maxUpload   string
		maxDownload string
		downloads   string
		announce    []string
		relayRate   string
		noRelay     bool
		noPortMap   bool
		webAddr     string
		noWeb       bool
	)
	cmd := &cobra.Command{
		Use:   "up [--listen MULTIADDR ...]",
		Short: "run the node in the foreground",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				level slog.Level
				err   error
			)
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			cfg := node.DefaultConfig(g.home)
			cfg.ListenAddrs = listen
			cfg.MDNS = !noMDNS
			if cfg.MaxUpload, err = rateFlag(cmd, "max-upload", maxUpload); err != nil {
				return err
			}
			if cfg.MaxDownload, err = rateFlag(cmd, "max-download", maxDownload); err != nil {
				return err
			}
			if downloads != "" {
				if cfg.DownloadDir, err = filepath.Abs(downloads); err != nil {
					return err
				}
			}
			cfg.Announce, cfg.NoRelay, cfg.NoPortMap = announce, noRelay, noPortMap
			if cfg.Web, cfg.WebAddr = !noWeb, webAddr; noWeb && webAddr != "" {
				return usageError{fmt.Errorf("--web and --no-web do not go together")}
			}
			if cfg.RelayRate, err = rateFlag(cmd, "relay-rate", relayRate); err != nil {
				return err
			}
			if cfg.Log, err = logging.New(os.Stderr, logFormat, level); err != nil {
				return usageError{fmt.Errorf("--log-format: %w", err)}
			}
			logging.CaptureLibraries(cfg.Log.Handler(), level)
			n, err := node.Start(cfg)
			if err != nil {
				return err
			}
			st := n.Status()
			fmt.Printf("kith up: %s (%s)\n", st.PeerID, st.Name)
			fmt.Printf("listening on:\n  %s\n", strings.Join(st.ListenAddrs, "\n  "))
			fmt.Printf("friends: %d; API: %s/%s\n", st.FriendsTotal, g.home, api.SocketFile)
			printWebUp(n)
			if st.Reach != nil && st.Reach.Relay == nil {
				fmt.Println("relaying for friends: off (--no-relay)")
			} else if st.Reach != nil {
				fmt.Printf("relaying for friends: up to %s, %d circuits\n", rateText(st.Reach.Relay.Rate), st.Reach.Relay.MaxCircuits)
			}
			sdNotify("READY=1\nSTATUS=up, " + st.PeerID)
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			s := <-sig
			signal.Stop(sig)
			fmt.Printf("kith: %s, shutting down\n", s)
			sdNotify("STOPPING=1")
			done := make(chan error, 1)
			go func() { done <- n.Close() }()
			select {
			case err := <-done:
				return err
			case <-time.After(15 * time.Second):
				// Show what hangs, for a bug report.
				pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
				return fmt.Errorf("shutdown took longer than 15s; exiting anyway")
			}
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", nil, "multiaddr to listen on (repeatable); default: all interfaces on the port chosen at init")
	cmd.Flags().BoolVar(&noMDNS, "no-mdns", false, "do not announce or look for friends on the LAN")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (also for libp2p's and the DHT's logs)")
	cmd.Flags().StringVar(&logFormat, "log-format", logging.FormatText, "text or json")
	cmd.Flags().StringVar(&maxUpload, "max-upload", "", "cap uploads, bytes per second (e.g. 64MiB, 10MB); default: none")
	cmd.Flags().StringVar(&maxDownload, "max-download", "", "cap downloads, bytes per second (e.g. 10MB); default: none")
	cmd.Flags().StringVar(&downloads, "downloads", "", "downloads folder (default: HOME/downloads)")
	cmd.Flags().StringArrayVar(&announce, "announce", nil, "address friends should dial, e.g. a forwarded port: /ip4/PUBLIC-IP/tcp/PORT (repeatable)")
	cmd.Flags().StringVar(&relayRate, "relay-rate", "", "cap relaying for friends, bytes per second, all circuits together (default 1MiB; 0: none)")
	cmd.Flags().BoolVar(&noRelay, "no-relay", false, "do not relay for friends that cannot reach each other directly")
	cmd.Flags().BoolVar(&noPortMap, "no-port-map", false, "do not ask the router for a port mapping (UPnP, NAT-PMP)")
	cmd.Flags().StringVar(&webAddr, "web", "", "serve the web UI on this loopback host:port (default: the address chosen at init, `kith config get web`)")
	cmd.Flags().BoolVar(&noWeb, "no-web", false, "do not serve the web UI")
	return cmd
}

// rateText prints a rate in bytes per second.
func rateText(bps int64) string {
	if bps <= 0 {
		return "no cap"
	}
	return humanBytes(bps) + "/s"
}

// humanBytes prints a byte count in binary units.
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

func newIDCmd(g *globals) *cobra.Command {
	var (
		asJSON    bool
		introduce bool
		expires   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "id [--introduce [--expires 24h]] [--json]",
		Short: "print this node's invite, to give to a friend",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires < 0 || (cmd.Flags().Changed("expires") && !introduce) {
				return usageError{fmt.Errorf("--expires goes with --introduce, and is a positive duration")}
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				var (
					inv api.InviteInfo
					err error
				)
				if introduce {
					inv, err = c.Introduce(ctx, expires)
				} else {
					inv, err = c.Invite(ctx)
				}
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(inv)
				}
				fmt.Println(inv.Invite)
				if introduce {
					fmt.Fprintf(os.Stderr, "one-step invite: whoever adds it first becomes your friend on both sides; it works once, until %s.\n",
						inv.Expires.Local().Format(time.DateTime))
					fmt.Fprintln(os.Stderr, "it is a secret: send it to one friend only, privately")
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&introduce, "introduce", false, "make a one-step invite: whoever adds it becomes your friend at once (once, until it expires)")
	cmd.Flags().DurationVar(&expires, "expires", 24*time.Hour, "how long a --introduce invite works (at most 720h)")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "show what the node is doing",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(st)
				}
				fmt.Printf("peer ID:   %s\n", st.PeerID)
				fmt.Printf("name:      %s\n", st.Name)
				fmt.Printf("friends:   %d online of %d\n", st.FriendsOnline, st.FriendsTotal)
				fmt.Printf("uptime:    %s\n", (time.Duration(st.UptimeSeconds) * time.Second).String())
				fmt.Printf("transfer:  %s/s up, %s/s down; tunnels relayed for friends %d, served %d\n",
					api.FormatSize(int64(st.UploadRate)), api.FormatSize(int64(st.DownloadRate)), st.TunnelsRelayed, st.TunnelsServed)
				fmt.Printf("listening: %s\n", strings.Join(st.ListenAddrs, "\n           "))
				printReach(st.Reach)
				if st.ClockSkewed {
					d, how := time.Duration(st.ClockBehindMs)*time.Millisecond, "behind"
					if d < 0 {
						d, how = -d, "ahead of"
					}
					fmt.Printf("clock:     %s %s most friends' clocks: set this computer's clock (lobby messages more than %s off are dropped)\n",
						d.Round(time.Second), how, api.LobbyMaxSkew)
				}
				fmt.Printf("version:   %s, database schema %d\n", st.Version, st.Schema)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// rateFlag reads a rate flag of `kith up`: 0 if not given (the stored
// setting applies), -1 for an explicit 0 (no cap, whatever is stored).
func rateFlag(cmd *cobra.Command, name, v string) (int64, error) {
	if !cmd.Flags().Changed(name) {
		return 0, nil
	}
	r, err := node.ParseRate(v)
	if err != nil {
		return 0, usageError{fmt.Errorf("--%s: %w", name, err)}
	}
	if r == 0 {
		return -1, nil
	}
	return r, nil
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "print the build: version, VCS revision, Go version and database schema",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{Info: version.Get(), Schema: store.SchemaVersion}
			if asJSON {
				return printJSON(v)
			}
			fmt.Printf("kith %s, database schema %d\n", v.Info, v.Schema)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// versionInfo is what `kith version --json` prints.
type versionInfo struct {
	version.Info
	Schema uint64 `json:"schema"`
}

// printWebUp tells, as `kith up` starts, where the web UI is.
func printWebUp(n *node.Node) {
	if u := n.WebURL(); u != "" {
		fmt.Printf("web UI: %s (`kith web` prints a login link)\n", u)
	}
}
