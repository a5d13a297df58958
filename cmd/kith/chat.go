package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kith/internal/peertext"
	"kith/node/api"
)

func newChatCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chat",
		Short: "chat with friends: an interactive window, or send and log",
		Long: "Without a subcommand, `kith chat` opens an interactive chat window:\n" +
			"the friends list, the conversation, live messages and typing.",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runChatTUI(g) },
	}
	cmd.AddCommand(newChatSendCmd(g), newChatLogCmd(g), newChatClearCmd(g))
	return cmd
}

// messageText joins the words of a message and checks it before it goes
// to the daemon, so bad input gets a clear error at once.
func messageText(words []string) (string, error) {
	text := strings.Join(words, " ")
	if text == "-" {
		b, err := readAllLimited(os.Stdin, api.MaxTextSize+1)
		if err != nil {
			return "", fmt.Errorf("reading the message from stdin: %w", err)
		}
		text = strings.TrimRight(string(b), "\n")
	}
	if err := api.CheckText(text); err != nil {
		return "", err
	}
	return text, nil
}

func newChatSendCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "send FRIEND TEXT...",
		Short: "send a message to a friend (delivered when they are online; TEXT - reads stdin)",
		Args:  args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			text, err := messageText(a[1:])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				m, err := sendOnce(ctx, c, a[0], text)
				if err != nil {
					return err
				}
				conv, online := sentTo(ctx, c, a[0], m)
				name := a[0]
				if conv.Name != "" {
					name = conv.Name
				}
				name = peertext.Line(name)
				if !online {
					fmt.Printf("sent %s (waits in the outbox until %s is online)\n", m.ID, name)
					return nil
				}
				if waitDelivered(ctx, c, a[0], m) {
					fmt.Printf("delivered %s to %s\n", m.ID, name)
					return nil
				}
				fmt.Printf("sent %s; %s is online but did not acknowledge it within %v: it waits in the outbox until they do\n",
					m.ID, name, sendAckWait)
				return nil
			})
		},
	}
}

const (
	// sendAckWait bounds how long `kith chat send` waits for an online
	// friend's acknowledgement before it says the message waits in the
	// outbox (a friend online on loopback acks in milliseconds).
	sendAckWait = 3 * time.Second
	// sendAckPoll is how often it looks meanwhile.
	sendAckPoll = 50 * time.Millisecond
	// sendTries bounds the times `kith chat send` asks the daemon when
	// its answer was lost (not an answer of the daemon, nor no daemon):
	// each try carries the same idempotency key, so the daemon stores the
	// message once.
	sendTries = 3
)

// sendOnce sends text to friend with an idempotency key made for this
// invocation, asking again with the same key while the answer is lost.
func sendOnce(ctx context.Context, c *api.Client, friend, text string) (api.Message, error) {
	req := api.SendRequest{Text: text, IdempotencyKey: api.NewIdempotencyKey()}
	var apiErr *api.Error
	for try := 1; ; try++ {
		m, err := c.ChatSendRequest(ctx, friend, req)
		if err == nil || try == sendTries || errors.As(err, &apiErr) || errors.Is(err, api.ErrNoDaemon) || ctx.Err() != nil {
			return m, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sentTo finds the conversation m was sent in (its last message is m, or
// it is the friend's by name or peer ID) and whether the friend is online.
func sentTo(ctx context.Context, c *api.Client, friend string, m api.Message) (api.Conversation, bool) {
	convs, err := c.Conversations(ctx)
	if err != nil {
		return api.Conversation{}, false
	}
	for _, cv := range convs {
		if cv.Last != nil && cv.Last.ID == m.ID {
			return cv, cv.Online
		}
	}
	for _, cv := range convs {
		if cv.Name == friend || cv.PeerID == friend {
			return cv, cv.Online
		}
	}
	return api.Conversation{}, false
}

// waitDelivered reports whether friend acknowledged m within sendAckWait.
func waitDelivered(ctx context.Context, c *api.Client, friend string, m api.Message) bool {
	if m.Delivered || m.Seq == 0 {
		return m.Delivered // a retry's answer: acked already, or no longer in the history
	}
	deadline := time.Now().Add(sendAckWait)
	for {
		ms, err := c.ChatLog(ctx, friend, m.Seq-1, time.Time{}, 1)
		if err != nil {
			return false
		}
		if len(ms) == 1 && ms[0].ID == m.ID && ms[0].Delivered {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(sendAckPoll):
		}
	}
}

func newChatLogCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		since  string
	)
	cmd := &cobra.Command{
		Use:   "log FRIEND [--since T] [--json]",
		Short: "print the history with a friend and mark it read",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			from, err := parseSince(since)
			if err != nil {
				return usageError{err}
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				err := printMessagePages(asJSON, "me", a[0], func(after uint64) ([]api.Message, error) {
					return c.ChatLog(ctx, a[0], after, from, 0)
				})
				if err != nil {
					return err
				}
				if err := c.ChatRead(ctx, a[0]); err != nil {
					return err
				}
				if asJSON {
					return nil
				}
				convs, err := c.Conversations(ctx)
				if err != nil {
					return err
				}
				for _, cv := range convs {
					if (cv.PeerID == a[0] || cv.Name == a[0]) && cv.Trimmed > 0 {
						fmt.Printf("(%d older messages were deleted: a conversation keeps at most %d MiB)\n",
							cv.Trimmed, api.HistoryBudget>>20)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&since, "since", "", "only messages that reached this computer (or were written here) since T, by its clock, not the author's: a time (RFC 3339, 2006-01-02 or 15:04) or a duration ago (1h)")
	return cmd
}

func newChatClearCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "clear FRIEND",
		Short: "delete the history with a friend (messages not delivered yet stay)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				if err := c.ChatClear(ctx, a[0]); err != nil {
					return err
				}
				fmt.Printf("deleted the history with %s\n", peertext.Line(a[0]))
				return nil
			})
		},
	}
}

// printMessagePages prints a history page by page as page(after) gives
// it, so that neither the daemon's answers nor this process grow with
// the history: JSON (one array), or one line per message with its time,
// author and text (made safe to show); outgoing messages not delivered
// yet are marked.
func printMessagePages(asJSON bool, me, them string, page func(after uint64) ([]api.Message, error)) error {
	var after uint64
	n := 0
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if asJSON {
		out.WriteString("[")
	}
	for {
		ms, err := page(after)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			if asJSON {
				b, err := marshalJSON(m)
				if err != nil {
					return err
				}
				if n > 0 {
					out.WriteString(",")
				}
				out.WriteString("\n  ")
				out.Write(b)
			} else {
				who, mark := them, ""
				if m.Out {
					who = me
					if !m.Delivered {
						mark = "  (not delivered yet)"
					}
				}
				fmt.Fprintf(out, "%s  %s: %s%s\n", m.Time.Local().Format("2006-01-02 15:04:05"), peertext.Line(who), peertext.Text(m.Text), mark)
			}
			n++
		}
		after = ms[len(ms)-1].Seq
	}
	switch {
	case asJSON && n > 0:
		out.WriteString("\n]\n")
	case asJSON:
		out.WriteString("]\n")
	case n == 0:
		out.WriteString("no messages\n")
	}
	return nil
}

// parseSince reads --since: empty, a duration ago, an RFC 3339 time, a
// date, or a time of day today.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if t, err := time.ParseInLocation("15:04", s, time.Local); err == nil {
		now := time.Now()
		return time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, time.Local), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a time (RFC 3339, 2006-01-02, 15:04) or a duration (1h30m)", s)
}

func newIdentityCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "pseudonymous chat identities (for lobbies and distant chat)",
		Args:  args(cobra.NoArgs),
	}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls [--json]",
		Short: "list your chat identities",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				ids, err := c.Identities(ctx)
				if err != nil {
					return err
				}
				return printList(ids, asJSON, "no chat identities yet: `kith identity new NICK`",
					"NICK\tCHAT ID\tCREATED", func(i api.IdentityInfo) string {
						return fmt.Sprintf("%s\t%s\t%s", peertext.Line(i.Nick), i.ChatID, i.Created.Local().Format("2006-01-02 15:04"))
					})
			})
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var newJSON bool
	newCmd := &cobra.Command{
		Use:   "new NICK [--json]",
		Short: "make a chat identity with a fresh key; prints its chat id to give out",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				i, err := c.NewIdentity(ctx, a[0])
				if err != nil {
					return err
				}
				if newJSON {
					return printJSON(i)
				}
				fmt.Printf("%s\t%s\n", peertext.Line(i.Nick), i.ChatID)
				return nil
			})
		},
	}
	newCmd.Flags().BoolVar(&newJSON, "json", false, "print the identity made as JSON")
	cmd.AddCommand(ls, newCmd)
	return cmd
}

// readAllLimited reads r to its end, or n bytes if it is longer.
func readAllLimited(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, n))
}

func newDistantCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "distant",
		Short: "chat with a chat identity that is not a friend, through anonymous tunnels",
		Args:  args(cobra.NoArgs),
	}
	var as string
	send := &cobra.Command{
		Use:   "send CHATID TEXT... [--as IDENTITY]",
		Short: "send a message to a chat id (it waits until a tunnel reaches it; TEXT - reads stdin)",
		Args:  args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			text, err := messageText(a[1:])
			if err != nil {
				return err
			}
			return g.call(func(ctx context.Context, c *api.Client) error {
				m, err := c.DistantSend(ctx, a[0], as, text)
				if err != nil {
					return err
				}
				fmt.Printf("sent %s (waits in the outbox until a tunnel reaches %s)\n", m.ID, a[0][:12])
				return nil
			})
		},
	}
	send.Flags().StringVar(&as, "as", "", "your chat identity to write as (default: your first)")
	var (
		asJSON bool
		logAs  string
	)
	log := &cobra.Command{
		Use:   "log CHATID [--as IDENTITY] [--json]",
		Short: "print the history with a chat id",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				return printMessagePages(asJSON, "me", a[0][:12], func(after uint64) ([]api.Message, error) {
					return c.DistantLog(ctx, a[0], logAs, after, 0)
				})
			})
		},
	}
	log.Flags().StringVar(&logAs, "as", "", "your chat identity (default: your first)")
	log.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(send, log, newDistantLsCmd(g, false), newDistantLsCmd(g, true), newDistantAcceptCmd(g), newDistantRmCmd(g))
	return cmd
}

// newDistantLsCmd is `kith distant ls` (accepted conversations) or, with
// requests, `kith distant requests` (those from identities you have not
// answered nor accepted).
func newDistantLsCmd(g *globals, requests bool) *cobra.Command {
	var asJSON bool
	use, short := "ls [--json]", "list your distant conversations"
	empty := "no distant conversations: `kith distant send CHATID TEXT` starts one"
	if requests {
		use, short = "requests [--json]", "list messages from chat ids you have not answered: accept or delete them"
		empty = "no requests"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				all, err := c.DistantList(ctx)
				if err != nil {
					return err
				}
				var list []api.DistantConversation
				others := 0
				for _, d := range all {
					if d.Request == requests {
						list = append(list, d)
					} else {
						others++
					}
				}
				err = printList(list, asJSON, empty, "CHAT ID\tAS\tMESSAGES\tUNREAD\tLAST", func(d api.DistantConversation) string {
					last := ""
					if d.Last != nil {
						last = d.Last.Stored.Local().Format("2006-01-02 15:04") + "  " + truncateText(peertext.Line(d.Last.Text), 40)
					}
					return fmt.Sprintf("%s\t%s\t%d\t%d\t%s", d.Remote, peertext.Line(d.LocalNick), d.Messages, d.Unread, last)
				})
				if err != nil || asJSON {
					return err
				}
				if !requests && others > 0 {
					fmt.Printf("\n%d requests from chat ids you have not answered: `kith distant requests`\n", others)
				}
				if requests && len(list) > 0 {
					fmt.Printf("\n`kith distant accept CHATID` lets one in; `kith distant rm CHATID` deletes it\n")
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// truncateText cuts s to n runes, ending it with "…" when cut.
func truncateText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func newDistantAcceptCmd(g *globals) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "accept CHATID [--as IDENTITY]",
		Short: "accept a request: its messages come in in full from now on",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				if err := c.DistantAccept(ctx, a[0], as); err != nil {
					return err
				}
				fmt.Printf("accepted %s\n", a[0])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "your chat identity it wrote to (default: your first)")
	return cmd
}

func newDistantRmCmd(g *globals) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "rm CHATID [--as IDENTITY]",
		Short: "delete a distant conversation or request; if it writes again, that is a new request",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				if err := c.DistantDelete(ctx, a[0], as); err != nil {
					return err
				}
				fmt.Printf("deleted the conversation with %s\n", a[0])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "your chat identity (default: your first)")
	return cmd
}
