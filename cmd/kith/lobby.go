package main

import (
	"bufio"
	"context"

	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"kith/internal/peertext"
	"kith/node/api"
)

// newLobbyCmd is `kith lobby`: chat lobbies relayed among friends.
func newLobbyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lobby",
		Short: "chat lobbies: group chat relayed friend to friend under a chat identity",
		Long: "A lobby is a group chat carried by friends that are in it. Public lobbies are\n" +
			"announced to your friends (`kith lobby ls`); private ones need an invite.\n" +
			"You speak as a chat identity (`kith identity new NICK`), not as your node.",
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newLobbyCreateCmd(g), newLobbyLsCmd(g), newLobbyJoinCmd(g), newLobbyInviteCmd(g),
		newLobbySendCmd(g), newLobbyLogCmd(g), newLobbyLeaveCmd(g), newLobbyWhoCmd(g))
	return cmd
}

// lobbyIDArg checks a lobby id before it goes to the daemon.
func lobbyIDArg(s string) (string, error) {
	id, err := api.ParseLobbyID(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w (copy it from `kith lobby ls`)", s, err)
	}
	return id, nil
}

func newLobbyCreateCmd(g *globals) *cobra.Command {
	var (
		topic, as       string
		private, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--topic T] [--private] [--as IDENTITY] [--json]",
		Short: "create a lobby and join it; prints its id",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				li, err := c.LobbyCreate(ctx, a[0], topic, private, as)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(li)
				}
				fmt.Println(li.ID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the lobby made as JSON")
	cmd.Flags().StringVar(&topic, "topic", "", "the lobby's topic")
	cmd.Flags().BoolVar(&private, "private", false, "invite only: not announced to friends")
	cmd.Flags().StringVar(&as, "as", "", "chat identity to speak as (nick or chat id; default: your first)")
	return cmd
}

func newLobbyLsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls [--json]",
		Short: "list your lobbies, those friends announce, and invites waiting",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				ls, err := c.LobbyList(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(ls)
				}
				err = printList(ls.Lobbies, false, "no lobbies: `kith lobby create NAME`, or wait for friends to announce theirs",
					"ID\tNAME\tSTATE\tPEOPLE\tAS / ANNOUNCED BY\tTOPIC", func(l api.LobbyInfo) string {
						state, who := "public", lobbyFriends(l.Friends)
						if l.Private {
							state = "private"
						}
						if l.Joined {
							state += ", joined"
							who = l.AsNick
						}
						return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s", l.ID, peertext.Line(l.Name), state, l.Participants,
							peertext.Line(who), peertext.Line(l.Topic))
					})
				if err != nil || len(ls.Invites) == 0 {
					return err
				}
				fmt.Println("\ninvites (join with `kith lobby join ID`):")
				return printList(ls.Invites, false, "", "ID\tNAME\tFROM\tTOPIC", func(i api.LobbyInvite) string {
					kind := ""
					if i.Private {
						kind = " (private)"
					}
					return fmt.Sprintf("%s\t%s%s\t%s as %s\t%s", i.Lobby, peertext.Line(i.Name), kind,
						peertext.Line(displayName(i.FromName)), peertext.Line(i.Nick), peertext.Line(i.Topic))
				})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func lobbyFriends(fs []api.LobbyFriend) string {
	var names []string
	for _, f := range fs {
		names = append(names, displayName(f.Name))
	}
	return strings.Join(names, ", ")
}

func newLobbyJoinCmd(g *globals) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "join ID [--as IDENTITY]",
		Short: "join a lobby a friend announces or invited you into; fetches its recent history",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := lobbyIDArg(a[0])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				li, err := c.LobbyJoin(ctx, id, as)
				if err != nil {
					return err
				}
				fmt.Printf("joined %s (%s) as %s\n", peertext.Line(li.Name), li.ID, peertext.Line(li.AsNick))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "chat identity to speak as (nick or chat id; default: your first)")
	return cmd
}

func newLobbyInviteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "invite ID FRIEND",
		Short: "invite an online friend into a lobby you are in",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := lobbyIDArg(a[0])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				if err := c.LobbyInvite(ctx, id, a[1]); err != nil {
					return err
				}
				fmt.Printf("invited %s\n", a[1])
				return nil
			})
		},
	}
}

func newLobbySendCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "send ID TEXT...",
		Short: "say something in a lobby you are in (TEXT - reads stdin)",
		Args:  args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := lobbyIDArg(a[0])
			if err != nil {
				return err
			}
			text, err := messageText(a[1:])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				m, err := c.LobbySend(ctx, id, text)
				if err != nil {
					return err
				}
				fmt.Printf("sent %s\n", m.ID)
				return nil
			})
		},
	}
}

func newLobbyLogCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "log ID [--json]",
		Short: "print a lobby's history",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := lobbyIDArg(a[0])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				// The whole history, to print it in time order: a joiner
				// stored the history it was sent after its own join.
				// The daemon keeps at most chat.MaxLobbyHistory messages
				// (16 MiB of text) of a lobby.
				all := []api.LobbyMessage{}
				for after := uint64(0); ; {
					ms, err := c.LobbyLog(ctx, id, after, 0)
					if err != nil {
						return err
					}
					if len(ms) == 0 {
						break
					}
					all = append(all, ms...)
					after = ms[len(ms)-1].Seq
				}
				sortLobbyLog(all)
				if asJSON {
					return printJSON(all)
				}
				if len(all) == 0 {
					fmt.Println("no messages")
					return nil
				}
				out := bufio.NewWriter(os.Stdout)
				defer out.Flush()
				for _, m := range all {
					printLobbyMessage(out, m)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// sortLobbyLog puts a lobby's history in time order: by when each
// message was received (api.LobbyMessage.Received: an author's clock ahead
// of the receipt is not believed), in storage order among equals.
func sortLobbyLog(ms []api.LobbyMessage) {
	slices.SortStableFunc(ms, func(a, b api.LobbyMessage) int { return a.Received().Compare(b.Received()) })
}

// printLobbyMessage prints one lobby message on a line, the author's
// nick and text made safe to show.
func printLobbyMessage(w io.Writer, m api.LobbyMessage) {
	at := m.Time.Local().Format("2006-01-02 15:04:05")
	who := fmt.Sprintf("%s (%s)", peertext.Line(m.Nick), peertext.Line(m.Author[:min(len(m.Author), 12)]))
	switch m.Kind {
	case api.LobbyKindJoin:
		fmt.Fprintf(w, "%s  -> %s joined\n", at, who)
	case api.LobbyKindLeave:
		fmt.Fprintf(w, "%s  <- %s left\n", at, who)
	default:
		fmt.Fprintf(w, "%s  %s: %s\n", at, who, peertext.Text(m.Text))
	}
}

func newLobbyLeaveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "leave ID",
		Short: "leave a lobby and forget its history",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := lobbyIDArg(a[0])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				if err := c.LobbyLeave(ctx, id); err != nil {
					return err
				}
				fmt.Println("left", id)
				return nil
			})
		},
	}
}

func newLobbyWhoCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "who ID [--json]",
		Short: "list who was heard in a lobby lately",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := lobbyIDArg(a[0])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				ps, err := c.LobbyParticipants(ctx, id)
				if err != nil {
					return err
				}
				return printList(ps, asJSON, "nobody", "NICK\tCHAT ID", func(p api.LobbyParticipant) string {
					return fmt.Sprintf("%s\t%s", peertext.Line(p.Nick), p.ChatID)
				})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
