package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"kith/node/api"
)

// getFolder is `kith get FOLDERLINK`: the daemon fetches the folder's
// manifest (which may take up to a minute, friends are asked in turn),
// makes the folder and downloads every file; this follows it with the
// progress in total and a line per file as it completes.
func getFolder(c *api.Client, link, to string, anonymous, detach, asJSON bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	info, err := c.AddFolder(ctx, api.FolderRequest{Link: link, To: to, Anonymous: anonymous})
	cancel()
	if err != nil {
		return peerError(err)
	}
	switch {
	case detach && asJSON:
		return printJSON(info)
	case detach:
		fmt.Printf("queued folder %s (%d files, %s) into %s\n", safe(info.Name), len(info.Files), api.FormatSize(info.Size), safe(info.Dir))
		return nil
	}
	if !asJSON {
		fmt.Fprintf(os.Stderr, "folder %s: %d files, %s, into %s\n", safe(info.Name), len(info.Files), api.FormatSize(info.Size), safe(info.Dir))
	}
	reported := map[string]bool{}
	started := time.Now()
	for {
		for _, f := range info.Files {
			if f.State == api.StateDone && !reported[f.Path] {
				reported[f.Path] = true
				if !asJSON {
					fmt.Fprintf(os.Stderr, "\r\033[K  done %s (%s)\n", safe(f.Path), api.FormatSize(f.Size))
				}
			}
		}
		if !asJSON {
			fmt.Fprintf(os.Stderr, "\r\033[K%s [%s]: %d/%d files, %s of %s", safe(info.Name), info.State, info.FilesDone, len(info.Files),
				api.FormatSize(info.Done), api.FormatSize(info.Size))
		}
		switch info.State {
		case api.StateDone:
			if asJSON {
				return printJSON(info)
			}
			secs := time.Since(started).Seconds()
			fmt.Fprintln(os.Stderr)
			fmt.Printf("done: %s (%d files, %s, %.1f MB/s), every file's BLAKE3 root verified\n",
				safe(info.Dir), len(info.Files), api.FormatSize(info.Size), float64(info.Size)/1e6/max(secs, 0.001))
			return nil
		case api.StateFailed:
			fmt.Fprintln(os.Stderr)
			if asJSON {
				printJSON(info)
			}
			return fmt.Errorf("folder download failed: %s", safe(info.Error))
		}
		time.Sleep(250 * time.Millisecond)
		ctx, cancel := apiContext()
		next, err := c.Folder(ctx, info.Root)
		cancel()
		if err != nil {
			return peerError(err)
		}
		info = next
	}
}

// printFolderLinks prints the link of every folder of the shares, for
// `kith share ls --links`.
func printFolderLinks(ctx context.Context, c *api.Client) error {
	fs, err := c.ShareFolders(ctx, "")
	if err != nil {
		return err
	}
	for _, f := range fs {
		fmt.Println(safe(f.Link))
	}
	return nil
}

// cancelFolder is `kith downloads cancel FOLDERLINK`.
func cancelFolder(ctx context.Context, c *api.Client, link string) error {
	if _, err := c.CancelFolder(ctx, link); err != nil {
		return err
	}
	fmt.Println("cancelled the folder; files already done stay")
	return nil
}

// isFolderLink reports whether s is a kith://folder/ link.
func isFolderLink(s string) bool { return api.IsFolderLink(s) }
