package main

import (
	"context"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"kith/node/api"
)

// webLoginFile is where `kith web` writes the page that sends a browser on
// to the login link, so that the token never stands in a command line
// (which other users of the machine can read) when it opens a browser.
const webLoginFile = "web-login.html"

func newWebCmd(g *globals) *cobra.Command {
	var (
		noOpen bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "web [--no-open] [--json]",
		Short: "print a link that logs a browser in to the web UI once (and open a browser)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				login, err := c.WebLogin(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(login)
				}
				fmt.Println(login.URL)
				fmt.Fprintf(os.Stderr, "open it in a browser on this machine: it logs in once, until %s\n", login.Expires.Local().Format(time.TimeOnly))
				if !noOpen {
					if opened := openBrowser(g.home, login.URL); opened != "" {
						fmt.Fprintf(os.Stderr, "opened it with %s\n", opened)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&noOpen, "no-open", false, "only print the link; do not open a browser")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// openBrowser opens url in the user's browser when there is one (a
// desktop session), through a file in the home that redirects to it; it
// returns the opener's name, or "" if none was run.
func openBrowser(home, url string) string {
	var opener string
	switch {
	case runtime.GOOS == "darwin":
		opener = "open"
	case os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "":
		opener = "xdg-open"
	default:
		return ""
	}
	bin, err := exec.LookPath(opener)
	if err != nil {
		return ""
	}
	page := filepath.Join(home, webLoginFile)
	u := html.EscapeString(url)
	body := `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=` + u + `">` +
		`<title>kith</title><p><a href="` + u + `">Open kith</a></p>` + "\n"
	if err := os.WriteFile(page, []byte(body), 0o600); err != nil {
		return ""
	}
	c := exec.Command(bin, "file://"+page)
	if err := c.Start(); err != nil {
		return ""
	}
	go c.Wait()
	time.Sleep(100 * time.Millisecond) // let the opener start before kith exits
	return opener
}
