package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"kith/share"
)

// demoFileSize is the size of the file shared in the demo.
const demoFileSize = 64 << 20

// writeRandomFile writes size random bytes to path.
func writeRandomFile(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func shareAndDownload(ctx context.Context, d *Demo) error {
	bob := d.Nodes["bob"]
	carolDir := filepath.Join(d.dir, "carol-share", "films")
	aliceDir := filepath.Join(d.dir, "alice-share", "films")
	file := filepath.Join(carolDir, "Holiday in Lisbon.mkv")
	if err := writeRandomFile(file, demoFileSize); err != nil {
		return err
	}
	if err := os.MkdirAll(aliceDir, 0o700); err != nil {
		return err
	}
	if err := os.Link(file, filepath.Join(aliceDir, "Holiday in Lisbon.mkv")); err != nil {
		return err
	}
	for _, sh := range []struct{ who, dir string }{{"carol", carolDir}, {"alice", aliceDir}} {
		n := d.Nodes[sh.who]
		if _, err := n.Index().AddShare(sh.dir, share.ShareFlags{Browsable: true}); err != nil {
			return err
		}
		st, err := n.Index().RescanShare(ctx, sh.dir)
		if err != nil {
			return err
		}
		d.Say("%s shares %s (browsable): %d file(s) hashed in %v", sh.who, sh.dir, st.Hashed, st.Duration.Round(time.Millisecond))
	}
	top, err := bob.Browse(ctx, "carol", "", 0)
	if err != nil {
		return err
	}
	if len(top.Entries) == 0 {
		return errors.New("carol's browsable shares look empty to bob")
	}
	d.Say("bob browses carol and sees the folder %q", top.Entries[0].Name+"/")
	inside, err := bob.Browse(ctx, "carol", top.Entries[0].Name, 0)
	if err != nil {
		return err
	}
	var link string
	for _, e := range inside.Entries {
		if !e.Dir {
			link = e.Link
			d.Say("  %s  %s", e.Name, share.FormatSize(e.Size))
		}
	}
	if link == "" {
		return errors.New("no file in carol's folder")
	}
	d.Say("link: %s", link)
	l, err := share.ParseLink(link)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := bob.Downloads().Add(l, ""); err != nil {
		return err
	}
	var info share.DownloadInfo
	err = WaitFor(ctx, 60*time.Second, "the download", func() bool {
		info, _ = bob.Downloads().Info(l.Root)
		return info.State == share.StateDone || info.State == share.StateFailed
	})
	if err != nil {
		return err
	}
	if info.State != share.StateDone {
		return fmt.Errorf("download failed: %s", info.Error)
	}
	secs := time.Since(t0).Seconds()
	for _, s := range info.Sources {
		d.Say("  from %-6s %s", s.Name, share.FormatSize(s.Bytes))
	}
	d.Say("bob downloaded %s from %d sources in %.2fs: %.0f MB/s", share.FormatSize(info.Size), len(info.Sources), secs, float64(info.Size)/1e6/secs)
	t, err := share.HashFile(info.Path)
	if err != nil {
		return err
	}
	if t.Root != l.Root {
		return errors.New("downloaded file does not match its root")
	}
	d.Say("BLAKE3 root of %s matches the link: %x…", filepath.Base(info.Path), t.Root[:8])
	return nil
}
