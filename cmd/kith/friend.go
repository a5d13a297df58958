package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kith/internal/peertext"
	"kith/node/api"
)

func newFriendCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "friend",
		Short: "add, list and remove friends",
		Args:  args(cobra.NoArgs),
	}
	cmd.AddCommand(newFriendAddCmd(g), newFriendLsCmd(g), newFriendRmCmd(g),
		newFriendRequestsCmd(g), newFriendApproveCmd(g), newFriendRejectCmd(g))
	return cmd
}

func newFriendAddCmd(g *globals) *cobra.Command {
	var (
		name   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "add INVITE [--name N] [--json]",
		Short: "add a friend from their invite (they must add yours too)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				f, err := c.AddFriend(ctx, a[0], name)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(f)
				}
				switch {
				case f.Updated:
					fmt.Printf("updated the addresses of %s (%s); dialling them now\n", displayName(f.Name), f.PeerID)
				case f.Introduction == "accepted":
					fmt.Printf("added %s (%s), who added you too: you are friends now\n", displayName(f.Name), f.PeerID)
				case f.Introduction == "pending":
					fmt.Printf("added %s (%s); they approve introductions first: the connection opens once they do\n", displayName(f.Name), f.PeerID)
				default:
					fmt.Printf("added %s (%s)\n", displayName(f.Name), f.PeerID)
					fmt.Println("the connection opens once they add your invite too (`kith id`)")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "what to call this friend (default: their nickname)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the friend added as JSON")
	return cmd
}

// clockText says how far a friend's clock is from this computer's: "ok"
// within api.LobbyClockWarn, else by how much it is ahead or behind,
// "-" when not known.
func clockText(ms *int64) string {
	if ms == nil {
		return "-"
	}
	d := time.Duration(*ms) * time.Millisecond
	switch {
	case d.Abs() <= api.LobbyClockWarn:
		return "ok"
	case d > 0:
		return d.Round(time.Second).String() + " ahead"
	default:
		return (-d).Round(time.Second).String() + " behind"
	}
}

func newFriendLsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls [--json]",
		Short: "list friends and who is online",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				fs, err := c.Friends(ctx)
				if err != nil {
					return err
				}
				err = printList(fs, asJSON, "no friends yet: `kith friend add INVITE`",
					"NAME\tPEER ID\tSTATUS\tLAST SEEN\tPATH\tCLOCK\tADDRESSES", func(f api.FriendInfo) string {
						state, seen := "offline", "never"
						if f.Online {
							state, seen = "online", "now"
						} else if !f.LastSeen.IsZero() {
							seen = time.Since(f.LastSeen).Round(time.Second).String() + " ago"
						}
						return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", displayName(f.Name), f.PeerID, state, seen, friendPath(f), clockText(f.ClockOffsetMs), strings.Join(f.Addrs, " "))
					})
				if err != nil || asJSON {
					return err
				}
				for _, f := range fs {
					if f.Reason != "" {
						fmt.Printf("%s is offline: %s\n", displayName(f.Name), peertext.Line(f.Reason))
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newFriendRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm PEER|NAME",
		Short: "remove a friend and close its connections",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				f, err := c.RemoveFriend(ctx, a[0])
				if err != nil {
					return err
				}
				fmt.Printf("removed %s (%s)\n", displayName(f.Name), f.PeerID)
				return nil
			})
		},
	}
}

// displayName is a friend's or a peer's name made safe to print.
func displayName(n string) string {
	if n == "" {
		return "(no name)"
	}
	return peertext.Line(n)
}

func newFriendRequestsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "requests [--json]",
		Short: "list introductions waiting for your approval (config approve-introductions)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				rs, err := c.Introductions(ctx)
				if err != nil {
					return err
				}
				return printList(rs, asJSON, "no introduction waits for approval", "NAME\tPEER ID\tSINCE", func(r api.IntroRequestInfo) string {
					return fmt.Sprintf("%s\t%s\t%s ago", displayName(r.Name), r.PeerID, time.Since(r.At).Round(time.Second))
				})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newFriendApproveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "approve PEER|NAME",
		Short: "add the node of a waiting introduction as a friend",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				f, err := c.ApproveIntroduction(ctx, a[0])
				if err != nil {
					return err
				}
				fmt.Printf("added %s (%s): you are friends now\n", displayName(f.Name), f.PeerID)
				return nil
			})
		},
	}
}

func newFriendRejectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reject PEER|NAME",
		Short: "drop a waiting introduction",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				r, err := c.RejectIntroduction(ctx, a[0])
				if err != nil {
					return err
				}
				fmt.Printf("dropped the introduction of %s (%s)\n", displayName(r.Name), r.PeerID)
				return nil
			})
		},
	}
}
