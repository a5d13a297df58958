package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"kith/internal/peertext"
	"kith/node/api"
)

// searchIdle is how long `kith search` waits for a new file once one came
// before it stops early: past the longest holder delay (1.5 s) and the
// per-hop search delays of a few hops, answers from further away have
// come by then.
const searchIdle = 2 * time.Second

// Why a search stopped.
const (
	searchStopTimeout = "timeout"
	searchStopMax     = "max"
	searchStopIdle    = "idle"
)

func newSearchCmd(g *globals) *cobra.Command {
	var (
		timeout, idle time.Duration
		maxFiles      int
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use: "search WORDS...|LINK [--timeout D] [--max N] [--idle D] [--json]",
		Short: "search anonymous shares through friends of friends; results print as they arrive; " +
			"stops at --max files, or --idle after the last new file, or at --timeout",
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if timeout <= 0 || timeout > api.MaxSearchTimeout {
				return usageError{fmt.Errorf("--timeout must be between 0 and %v", api.MaxSearchTimeout)}
			}
			if maxFiles < 0 || idle < 0 {
				return usageError{fmt.Errorf("--max and --idle must not be negative")}
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
			defer cancel()
			// stop ends the search early: the daemon stops it when the
			// client goes.
			sctx, stop := context.WithCancel(ctx)
			defer stop()
			var (
				mu     sync.Mutex
				reason = searchStopTimeout
				idler  *time.Timer
			)
			stopFor := func(why string) {
				mu.Lock()
				if reason == searchStopTimeout {
					reason = why
				}
				mu.Unlock()
				stop()
			}
			defer func() {
				mu.Lock()
				if idler != nil {
					idler.Stop()
				}
				mu.Unlock()
			}()
			began := time.Now()
			enc := jsonEncoder(os.Stdout)
			files := 0
			err = c.Search(sctx, strings.Join(a, " "), timeout, func(h api.SearchHit) error {
				if h.Sources == 1 {
					files++
				}
				if asJSON {
					if err := enc.Encode(h); err != nil {
						return err
					}
				} else {
					// Names come from anyone reachable through tunnels:
					// shown through peertext, so controls and bidi
					// overrides read as escapes. The link is
					// URL-encoded; --json stays raw.
					name := peertext.Line(h.Name)
					if h.Sources == 1 {
						fmt.Printf("%s  %s  %s\n", name, api.FormatSize(h.Size), h.Link)
					} else {
						fmt.Printf("  %s: %d sources\n", name, h.Sources)
					}
				}
				if h.Sources != 1 {
					return nil
				}
				if maxFiles > 0 && files >= maxFiles {
					stopFor(searchStopMax)
					return nil
				}
				if idle > 0 {
					mu.Lock()
					if idler == nil {
						idler = time.AfterFunc(idle, func() { stopFor(searchStopIdle) })
					} else {
						idler.Reset(idle)
					}
					mu.Unlock()
				}
				return nil
			})
			mu.Lock()
			why := reason
			mu.Unlock()
			if err != nil && !(why != searchStopTimeout && errors.Is(err, context.Canceled)) {
				return err
			}
			took := time.Since(began).Round(100 * time.Millisecond)
			switch why {
			case searchStopMax:
				fmt.Fprintf(os.Stderr, "%d file(s) found; stopped after %v: the %d wanted (--max) came\n", files, took, maxFiles)
			case searchStopIdle:
				fmt.Fprintf(os.Stderr, "%d file(s) found; stopped after %v: no new file for %v (--idle)\n", files, took, idle)
			default:
				fmt.Fprintf(os.Stderr, "%d file(s) found in %v (--timeout)\n", files, timeout)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", api.DefaultSearchTimeout, "how long to wait for results at most")
	cmd.Flags().IntVar(&maxFiles, "max", 0, "stop once this many files were found (0: no limit)")
	cmd.Flags().DurationVar(&idle, "idle", searchIdle, "stop when no new file came for this long after one did (0: wait the whole --timeout)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per result line")
	return cmd
}
