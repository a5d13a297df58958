package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"kith/node/api"
)

func newStreamCmd(g *globals) *cobra.Command {
	var anonymous, asJSON bool
	cmd := &cobra.Command{
		Use:   "stream LINK|ROOT [--anonymous] [--json]",
		Short: "print a URL a media player can open, to watch or hear a file while it downloads",
		Long: "stream starts the download of LINK if it is not running (or done, or in your shares) and prints\n" +
			"a loopback URL that serves its verified bytes, the part a player reads first fetched first.\n" +
			"Open it with a player, e.g. `mpv $(kith stream LINK)`. Only audio and video are served inline.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				info, err := c.StreamURL(ctx, api.StreamRequest{Link: a[0], Anonymous: anonymous})
				if err != nil {
					return peerError(err)
				}
				if asJSON {
					return printJSON(info)
				}
				fmt.Println(info.URL)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&anonymous, "anonymous", false, "download through tunnels only, if it is not running already")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
