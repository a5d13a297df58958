// Command kith is the command-line interface of a kith node: `kith up` runs
// the daemon, every other command (except init and demo) asks the running
// daemon through its local API. This package parses arguments and prints
// answers; everything else lives in package node.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kith/internal/peertext"
	"kith/internal/version"
	"kith/node/api"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks an error in how kith was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// globals are the flags every command shares.
type globals struct {
	home string
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command") {
		err = usageError{err} // cobra's own, for `kith bogus`
	}
	// An error may quote what a peer sent (a name, a path): print it safe.
	fmt.Fprintf(os.Stderr, "kith: %s\n", peertext.Line(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "see `%s --help`\n", cmd.CommandPath())
		return exitUsage
	}
	return exitError
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "kith",
		Short: "kith: a friend-to-friend network node",
		Long: "kith shares files and carries chat among friends only.\n" +
			"Start with `kith init --name NICK`, then `kith up`; exchange `kith id` with a friend and `kith friend add` theirs.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", api.DefaultHome(), "node home folder (env "+api.HomeEnv+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newInitCmd(g), newUpCmd(g), newIDCmd(g), newStatusCmd(g),
		newFriendCmd(g), newShareCmd(g), newBrowseCmd(g), newGetCmd(g), newStreamCmd(g), newSearchCmd(g), newDownloadsCmd(g),
		newChatCmd(g), newIdentityCmd(g), newLobbyCmd(g), newDistantCmd(g), newSimCmd(), newDemoCmd(),
		newVersionCmd(), newRepairCmd(g), newConfigCmd(g), newWebCmd(g),
	)
	root.Version = version.Get().String()
	root.SetVersionTemplate("kith {{.Version}}\n")
	groupsNeedCommand(root)
	return root
}

// groupsNeedCommand makes every command that only groups others (`kith
// friend`) a usage error without one of them: an unknown subcommand, or
// none, exits 2 with the group's help on stderr, where cobra would exit 0.
func groupsNeedCommand(c *cobra.Command) {
	for _, sub := range c.Commands() {
		groupsNeedCommand(sub)
	}
	if c.Runnable() || !c.HasSubCommands() || !c.HasParent() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, a []string) error {
		cmd.SetOut(os.Stderr)
		cmd.Help()
		if len(a) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %q", a[0], cmd.CommandPath())}
		}
		return usageError{fmt.Errorf("%q needs a command", cmd.CommandPath())}
	}
}

// args wraps a cobra argument validator so its errors are usage errors.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// client returns an API client for the home after checking it exists.
func (g *globals) client() (*api.Client, error) {
	if err := api.CheckHome(g.home); err != nil {
		return nil, err
	}
	return api.NewClient(g.home), nil
}

// call runs fn with a client for the home's daemon and a context that
// bounds the request.
func (g *globals) call(fn func(ctx context.Context, c *api.Client) error) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := apiContext()
	defer cancel()
	return fn(ctx, c)
}

// apiContext bounds one CLI request to the daemon.
func apiContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// printList prints a listing: JSON with asJSON, else the empty message when
// there is nothing, else an aligned table with an optional header line and a
// tab-separated row per item.
func printList[T any](items []T, asJSON bool, empty, header string, row func(T) string) error {
	if asJSON {
		if items == nil {
			items = []T{}
		}
		return printJSON(items)
	}
	if len(items) == 0 {
		fmt.Println(empty)
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if header != "" {
		fmt.Fprintln(tw, header)
	}
	for _, it := range items {
		fmt.Fprintln(tw, cleanRow(row(it)))
	}
	return tw.Flush()
}

// cleanRow makes every cell of a tab-separated row safe to print: most
// listings show names that came from peers.
func cleanRow(row string) string {
	cells := strings.Split(row, "\t")
	for i, c := range cells {
		cells[i] = peertext.Line(c)
	}
	return strings.Join(cells, "\t")
}

// printJSON prints v as indented JSON. Text stays as it came (scripts read
// it), with no HTML escaping: a link's & stays &.
func printJSON(v any) error {
	enc := jsonEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonEncoder is how the CLI writes JSON, everywhere: without HTML
// escaping (a link's & stays &, not \u0026).
func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// marshalJSON is json.Marshal without HTML escaping.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := jsonEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
