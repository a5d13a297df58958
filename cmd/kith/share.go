package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"kith/internal/peertext"
	"kith/node/api"
)

// Everything printed here that a peer could have chosen (file and folder
// names from a friend's shares, names in links, download names and errors
// that carry a peer's words) goes through peertext.Line; so do local names
// and paths, which may hold names that came from peers.

// safe makes s, which may hold text from a peer, safe to print on a line.
func safe(s string) string { return peertext.Line(s) }

// safeError is an error whose text may hold text from a peer, printed
// through peertext.Line; errors.Is and errors.As still see the error.
type safeError struct{ err error }

func (e safeError) Error() string { return peertext.Line(e.err.Error()) }
func (e safeError) Unwrap() error { return e.err }

// peerError wraps err, if any, as a safeError.
func peerError(err error) error {
	if err == nil {
		return nil
	}
	return safeError{err}
}

func newShareCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "share",
		Short: "share folders with friends (browsable) and through tunnels (anonymous)",
		Args:  args(cobra.NoArgs),
	}
	cmd.AddCommand(newShareAddCmd(g), newShareLsCmd(g), newShareRmCmd(g), newShareRescanCmd(g), newShareFindCmd(g))
	return cmd
}

func newShareAddCmd(g *globals) *cobra.Command {
	var browsable, anonymous, asJSON bool
	cmd := &cobra.Command{
		Use:   "add DIR [--browsable] [--anonymous] [--json]",
		Short: "share a folder (browsable by friends unless --anonymous alone is given)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(a[0])
			if err != nil {
				return err
			}
			if !browsable && !anonymous {
				browsable = true
			}
			if !asJSON {
				fmt.Printf("indexing %s …\n", safe(dir))
			}
			res, err := c.AddShare(context.Background(), api.AddShareRequest{Dir: dir, Browsable: browsable, Anonymous: anonymous})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(res)
			}
			fmt.Printf("shared %s as %q (%s): %d files, %s; hashed %d in %v\n",
				safe(res.Share.Dir), res.Share.Name, flagsText(res.Share), res.Share.Files, api.FormatSize(res.Share.Bytes),
				res.Scan.Hashed, res.Scan.Duration.Round(time.Millisecond))
			if res.Scan.Skipped > 0 {
				fmt.Printf("skipped %d entries that cannot be shared (see the daemon's log)\n", res.Scan.Skipped)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&browsable, "browsable", false, "friends may list and fetch it directly")
	cmd.Flags().BoolVar(&anonymous, "anonymous", false, "anyone reachable through tunnels may find it by search")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the share made and its first scan as JSON")
	return cmd
}

func flagsText(s api.ShareInfo) string {
	var f []string
	if s.Browsable {
		f = append(f, "browsable")
	}
	if s.Anonymous {
		f = append(f, "anonymous")
	}
	if len(f) == 0 {
		return "private"
	}
	return strings.Join(f, ", ")
}

func newShareLsCmd(g *globals) *cobra.Command {
	var asJSON, links bool
	cmd := &cobra.Command{
		Use:   "ls [--json] [--links]",
		Short: "list shared folders, or with --links every shared file's and folder's link",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				if links {
					fs, err := c.ShareFiles(ctx, "")
					if err != nil {
						return err
					}
					if asJSON {
						return printJSON(fs)
					}
					for _, f := range fs {
						fmt.Println(safe(f.Link))
					}
					return printFolderLinks(ctx, c) // folder.go
				}
				ss, err := c.Shares(ctx)
				if err != nil {
					return err
				}
				return printList(ss, asJSON, "nothing shared yet: `kith share add DIR`",
					"NAME\tFOLDER\tFLAGS\tFILES\tSIZE\tSCANNED", func(s api.ShareInfo) string {
						return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s", safe(s.Name), safe(s.Dir), flagsText(s), s.Files, api.FormatSize(s.Bytes), ago(s.LastScan))
					})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&links, "links", false, "print a kith:// link for every shared file and folder")
	return cmd
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func newShareRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm DIR",
		Short: "stop sharing a folder",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(a[0])
			if err != nil {
				return err
			}
			ctx, cancel := apiContext()
			defer cancel()
			s, err := c.RemoveShare(ctx, dir)
			if err != nil {
				return err
			}
			fmt.Printf("stopped sharing %s\n", safe(s.Dir))
			return nil
		},
	}
}

func newShareRescanCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rescan",
		Short: "look for new, changed and removed files in every share now",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Rescan(context.Background())
			if err != nil {
				return err
			}
			fmt.Printf("%d files: %d hashed, %d unchanged, %d removed, %d skipped, in %v\n",
				st.Files, st.Hashed, st.Unchanged, st.Removed, st.Skipped, st.Duration.Round(time.Millisecond))
			return nil
		},
	}
}

func newShareFindCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "find WORDS...",
		Short: "search your own shared files by name",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				fs, err := c.Find(ctx, strings.Join(a, " "))
				if err != nil {
					return err
				}
				return printList(fs, asJSON, "no match", "", func(f api.FileInfo) string {
					return fmt.Sprintf("%s\t%s\t%s", safe(f.Name), api.FormatSize(f.Size), safe(f.Link))
				})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newBrowseCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "browse FRIEND [PATH] [--json]",
		Short: "list a friend's browsable shares",
		Args:  args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			path := ""
			if len(a) == 2 {
				path = a[1]
			}
			ctx, cancel := apiContext()
			defer cancel()
			var all []api.BrowseEntry
			var l api.BrowseListing
			for offset := 0; ; offset += len(l.Entries) {
				l, err = c.Browse(ctx, a[0], path, offset)
				if err != nil {
					return peerError(err)
				}
				all = append(all, l.Entries...)
				if !l.More || len(l.Entries) == 0 || len(all) >= 100000 {
					break
				}
			}
			l.Entries = all
			if asJSON {
				return printJSON(l)
			}
			if len(all) == 0 {
				fmt.Println("(empty)")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			for _, e := range all {
				if e.Dir {
					fmt.Fprintf(tw, "%s/\t\t%s\n", safe(e.Name), safe(e.Link))
				} else {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", safe(e.Name), api.FormatSize(e.Size), safe(e.Link))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGetCmd(g *globals) *cobra.Command {
	var (
		to        string
		detach    bool
		anonymous bool
		again     bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "get LINK|ROOT|FOLDERLINK [--to DIR] [--detach] [--anonymous] [--again] [--json]",
		Short: "download a file (or a whole kith://folder/) from every friend that has it (and through tunnels), verified",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if to != "" {
				if to, err = filepath.Abs(to); err != nil {
					return err
				}
			}
			if isFolderLink(a[0]) {
				return getFolder(c, a[0], to, anonymous, detach, asJSON) // folder.go
			}
			ctx, cancel := apiContext()
			info, err := c.AddDownload(ctx, api.GetRequest{Link: a[0], To: to, Anonymous: anonymous, Again: again})
			cancel()
			if err != nil {
				return peerError(err)
			}
			switch {
			case detach && asJSON:
				return printJSON(info)
			case detach:
				fmt.Printf("queued %s (%s); follow it with `kith downloads`\n", safe(info.Name), safe(info.Root))
				return nil
			}
			return followDownload(c, info, asJSON)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "folder to put the file in (default: the daemon's downloads folder)")
	cmd.Flags().BoolVar(&detach, "detach", false, "return at once; the daemon downloads in the background")
	cmd.Flags().BoolVar(&anonymous, "anonymous", false, "download through tunnels only; friends are not asked")
	cmd.Flags().BoolVar(&again, "again", false, "download even if you have the file already (in a share, or downloaded to the same folder)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the download as JSON: at once with --detach, else when it ends")
	return cmd
}

// followDownload shows a progress bar until the download ends, and the
// reason when it becomes paused or without a source. The bar is drawn again when
// the size changes (a link's size is only a claim until a source proves
// it). With asJSON the download's last state is printed as JSON. It asks
// for the download's state every followPoll, and at once when the event
// stream says the download ended, so that the wait after the last byte is
// not a poll's.
func followDownload(c *api.Client, info api.DownloadInfo, asJSON bool) error {
	ended := make(chan struct{}, 1)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go watchDownloadEnd(ctx, c, info.Root, ended)
	var bar *progressbar.ProgressBar
	barSize := int64(-1)
	var lastState api.DownloadState
	started := time.Now()
	for {
		if bar != nil && info.Size != barSize {
			bar.Clear()
			bar = nil
		}
		if bar == nil && info.Size >= 0 {
			barSize = info.Size
			bar = progressbar.NewOptions64(max(info.Size, 1),
				progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionShowElapsedTimeOnFinish(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionFullWidth(),
			)
		}
		if bar != nil {
			live := 0
			for _, s := range info.Sources {
				if s.Dropped == "" {
					live++
				}
			}
			bar.Describe(fmt.Sprintf("%s [%s, %d source(s)]", safe(info.Name), info.State, live))
			bar.Set64(info.Done)
		}
		if info.Reason != "" && info.State != lastState {
			fmt.Fprintf(os.Stderr, "\n%s: %s\n", info.State, safe(info.Reason))
		}
		lastState = info.State
		switch info.State {
		case api.StateDone:
			if bar != nil {
				bar.Finish()
			}
			fmt.Fprintln(os.Stderr)
			if asJSON {
				return printJSON(info)
			}
			secs := time.Since(started).Seconds()
			fmt.Printf("done: %s (%s, %.1f MB/s), BLAKE3 root verified: %s\n",
				safe(info.Path), api.FormatSize(info.Size), float64(info.Size)/1e6/max(secs, 0.001), safe(info.Root))
			return nil
		case api.StateFailed:
			fmt.Fprintln(os.Stderr)
			if asJSON {
				printJSON(info)
			}
			return fmt.Errorf("download failed: %s", safe(info.Error))
		}
		select {
		case <-ended:
		case <-time.After(followPoll):
		}
		ctx, cancel := apiContext()
		next, err := c.Download(ctx, info.Root)
		cancel()
		if errors.Is(err, api.ErrNoSuchDownload) {
			return errors.New("download was cancelled")
		}
		if err != nil {
			return peerError(err)
		}
		info = next
	}
}

// followPoll is how often followDownload asks for a download's state.
const followPoll = 200 * time.Millisecond

// watchDownloadEnd follows the daemon's event stream until ctx ends and
// signals ended (without blocking) for every done or failed event of the
// download root. A stream that breaks is not retried: the caller's polls
// go on.
func watchDownloadEnd(ctx context.Context, c *api.Client, root string, ended chan<- struct{}) {
	c.Events(ctx, func(ev api.Event) error {
		if ev.Type != api.EventDownloadDone && ev.Type != api.EventDownloadFailed {
			return nil
		}
		var d api.DownloadInfo
		if ev.Decode(&d) != nil || d.Root != root {
			return nil
		}
		select {
		case ended <- struct{}{}:
		default:
		}
		return nil
	})
}

func newDownloadsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "downloads [--json]",
		Short: "list downloads and their state",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				ds, err := c.Downloads(ctx)
				if err != nil {
					return err
				}
				if !asJSON {
					// Folders first: each stands for many of the files below.
					fs, err := c.Folders(ctx)
					if err != nil {
						return err
					}
					if len(fs) > 0 {
						if err := printFolders(fs, false); err != nil {
							return err
						}
						fmt.Println()
					}
				}
				return printList(ds, asJSON, "no downloads", "NAME\tSTATE\tPROGRESS\tRATE\tSOURCES\tROOT\tWHY", func(d api.DownloadInfo) string {
					pct := 100.0
					if d.Size > 0 {
						pct = 100 * float64(d.Done) / float64(d.Size)
					}
					why := d.Reason
					if d.State == api.StateFailed {
						why = d.Error
					}
					return fmt.Sprintf("%s\t%s\t%.1f%% of %s\t%s/s\t%d\t%s\t%s", safe(d.Name), d.State, pct, api.FormatSize(d.Size),
						api.FormatSize(int64(d.Rate)), len(d.Sources), safe(d.Root), safe(why))
				})
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cancel := &cobra.Command{
		Use:   "cancel ROOT|FOLDERLINK",
		Short: "stop a download (or a folder's) and delete its partial data",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				if isFolderLink(a[0]) {
					return cancelFolder(ctx, c, a[0]) // folder.go
				}
				if _, err := c.CancelDownload(ctx, a[0]); err != nil {
					return err
				}
				fmt.Println("cancelled")
				return nil
			})
		},
	}
	var foldersJSON bool
	folders := &cobra.Command{
		Use:   "folders [--json]",
		Short: "list folder downloads and their progress",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.call(func(ctx context.Context, c *api.Client) error {
				fs, err := c.Folders(ctx)
				if err != nil {
					return err
				}
				return printFolders(fs, foldersJSON)
			})
		},
	}
	folders.Flags().BoolVar(&foldersJSON, "json", false, "print JSON")
	cmd.AddCommand(cancel, folders)
	return cmd
}

// printFolders lists folder downloads: one row each, with the files done.
func printFolders(fs []api.FolderDownload, asJSON bool) error {
	return printList(fs, asJSON, "no folder downloads", "FOLDER\tSTATE\tPROGRESS\tFILES\tROOT\tWHY", func(f api.FolderDownload) string {
		pct := 100.0
		if f.Size > 0 {
			pct = 100 * float64(f.Done) / float64(f.Size)
		}
		return fmt.Sprintf("%s/\t%s\t%.1f%% of %s\t%d of %d\t%s\t%s", safe(f.Name), f.State, pct, api.FormatSize(f.Size),
			f.FilesDone, len(f.Files), safe(f.Root), safe(f.Error))
	})
}
