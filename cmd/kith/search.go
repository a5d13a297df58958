package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kith/internal/peertext"
	"kith/node/api"
)

func newSearchCmd(g *globals) *cobra.Command {
	var (
		timeout time.Duration
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "search WORDS...|LINK [--timeout D] [--json]",
		Short: "search anonymous shares through friends of friends; results print as they arrive",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if timeout <= 0 || timeout > api.MaxSearchTimeout {
				return usageError{fmt.Errorf("--timeout must be between 0 and %v", api.MaxSearchTimeout)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
			defer cancel()
			enc := json.NewEncoder(os.Stdout)
			files := 0
			err = c.Search(ctx, strings.Join(a, " "), timeout, func(h api.SearchHit) error {
				if asJSON {
					return enc.Encode(h)
				}
				// Names come from anyone reachable through tunnels: shown
				// through peertext, so controls and bidi overrides read
				// as escapes. The link is URL-encoded; --json stays raw.
				name := peertext.Line(h.Name)
				if h.Sources == 1 {
					files++
					fmt.Printf("%s  %s  %s\n", name, api.FormatSize(h.Size), h.Link)
				} else {
					fmt.Printf("  %s: %d sources\n", name, h.Sources)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(os.Stderr, "%d file(s) found in %v\n", files, timeout)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", api.DefaultSearchTimeout, "how long to wait for results")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per result line")
	return cmd
}
