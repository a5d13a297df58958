package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"kith/node/api"
	"kith/share"
)

// TestAnonymousStreamAndSwarm: on a chain f-a-b-c-d, d shares a video
// anonymously and uploads at most 1 MiB/s. a downloads it anonymously,
// through tunnels with two relays (b, c), and a player (ffprobe, if
// installed) reads its duration and streams from a's stream URL while the
// download runs. Then f, a's friend, downloads it anonymously too: a,
// which shares nothing, answers f's tunnel as a holder would and serves
// it verified groups, while on a direct friend stream a tells f nothing
// of the file.
func TestAnonymousStreamAndSwarm(t *testing.T) {
	nodes := tunnelNet(t, []string{"a", "b", "c", "d", "f"}, [][2]int{{0, 1}, {1, 2}, {2, 3}, {4, 0}},
		func(i int, c *Config) {
			if i == 3 {
				c.MaxUpload = 1 << 20
			}
		})
	a, d, f := nodes[0], nodes[3], nodes[4]
	dir := filepath.Join(t.TempDir(), "anon")
	src := filepath.Join(dir, "clip.mp4")
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	haveFF := err1 == nil && err2 == nil
	if haveFF {
		os.MkdirAll(dir, 0o700)
		gen := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=10:size=640x480:rate=25",
			"-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-vf", "noise=alls=50:allf=t+u",
			"-c:v", "mpeg4", "-b:v", "4M", "-c:a", "aac", "-shortest", src)
		if out, err := gen.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v: %s", err, out)
		}
	} else {
		t.Log("no ffmpeg/ffprobe: the stream is read without a player (Debian: apt-get install ffmpeg)")
		writeRandomFile(t, src, 5<<20, 9)
	}
	tree, err := share.HashFile(src)
	if err != nil {
		t.Fatal(err)
	}
	shareDir(t, d, dir, share.ShareFlags{Anonymous: true})
	link := share.Link{Root: tree.Root, Name: "clip.mp4", Size: tree.Size}

	c := api.NewClient(a.cfg.Home)
	si, err := c.StreamURL(context.Background(), api.StreamRequest{Link: link.String(), Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if haveFF {
		start := time.Now()
		out, err := exec.Command(ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", si.URL).Output()
		if err != nil {
			t.Fatalf("ffprobe: %v", err)
		}
		info, _ := a.Downloads().Info(tree.Root)
		var res struct {
			Format  struct{ Duration string } `json:"format"`
			Streams []struct{}                `json:"streams"`
		}
		json.Unmarshal(out, &res)
		dur, _ := strconv.ParseFloat(res.Format.Duration, 64)
		t.Logf("ffprobe through 2 relays: duration %.2fs, %d streams, in %v, with %d of %d groups verified", dur, len(res.Streams), time.Since(start), info.Received, info.Groups)
		if dur < 9 || dur > 11 || len(res.Streams) != 2 {
			t.Fatalf("ffprobe read %q and %d streams", res.Format.Duration, len(res.Streams))
		}
		if info.State == share.StateDone {
			t.Fatal("the download was done before ffprobe finished: the test proves nothing")
		}
	}
	for _, info := range a.Downloads().List() {
		for _, s := range info.Sources {
			if s.Name == "d" || s.Name == "b" {
				t.Fatalf("the anonymous download used a friend: %+v", info.Sources)
			}
		}
	}

	// f asks a directly, as a friend: a tells it nothing.
	p, err := f.share.openPeer(context.Background(), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Have(context.Background(), tree.Root)
	p.Close()
	var er share.ErrorReply
	if !errors.As(err, &er) || er.Code != share.CodeNotFound {
		t.Fatalf("a answered its friend's Have for an anonymous download: %v", err)
	}
	before := a.share.server.Stats().Ranges
	if _, err := f.AddDownload(link, "", true); err != nil {
		t.Fatal(err)
	}
	info := waitDownload(t, f, tree.Root, 2*time.Minute)
	if info.State != share.StateDone {
		t.Fatalf("f's download: %+v", info)
	}
	served := a.share.server.Stats().Ranges - before
	t.Logf("f's sources: %+v; a served %d ranges through tunnels", info.Sources, served)
	if served == 0 {
		t.Fatal("a served nothing of the file it was downloading")
	}
	got, err := share.HashFile(info.Path)
	if err != nil || got.Root != tree.Root {
		t.Fatalf("f's copy: %x, %v", got.Root, err)
	}
}

// TestSwarmBetweenFriends: o shares a file and uploads at most 2 MiB/s; x
// and y, friends of o and of each other, download it at once and fetch
// part of it from each other. With the setting swarm off, z (a friend of x)
// asking x for the file while x downloads it learns nothing.
func TestSwarmBetweenFriends(t *testing.T) {
	nodes := tunnelNet(t, []string{"o", "x", "y"}, [][2]int{{0, 1}, {0, 2}, {1, 2}}, func(i int, c *Config) {
		if i == 0 {
			c.MaxUpload = 2 << 20
		}
	})
	o, x, y := nodes[0], nodes[1], nodes[2]
	dir := filepath.Join(t.TempDir(), "films")
	tree := writeRandomFile(t, filepath.Join(dir, "film.mkv"), 16<<20, 5)
	shareDir(t, o, dir, share.ShareFlags{Browsable: true})
	link := share.Link{Root: tree.Root, Name: "film.mkv", Size: tree.Size}
	for _, n := range []*Node{x, y} {
		if _, err := n.AddDownload(link, "", false); err != nil {
			t.Fatal(err)
		}
	}
	fromPeers := int64(0)
	for _, n := range []*Node{x, y} {
		info := waitDownload(t, n, tree.Root, 2*time.Minute)
		if info.State != share.StateDone {
			t.Fatalf("%s: %+v", n.Name(), info)
		}
		got, err := share.HashFile(info.Path)
		if err != nil || got.Root != tree.Root {
			t.Fatalf("%s's copy: %v", n.Name(), err)
		}
		for _, s := range info.Sources {
			if s.Name != "o" {
				fromPeers += s.Bytes
			}
		}
		t.Logf("%s: sources %+v", n.Name(), info.Sources)
	}
	if fromPeers == 0 {
		t.Fatal("x and y fetched nothing from each other")
	}
}

// TestNoSwarmSetting: with swarm off, a node downloading a file tells a
// friend that asks for it nothing.
func TestNoSwarmSetting(t *testing.T) {
	nodes := tunnelNet(t, []string{"o", "x", "z"}, [][2]int{{0, 1}, {1, 2}}, func(i int, c *Config) {
		switch i {
		case 0:
			c.MaxUpload = 1 << 20
		case 1:
			c.NoSwarm = true
		}
	})
	o, x, z := nodes[0], nodes[1], nodes[2]
	dir := filepath.Join(t.TempDir(), "films")
	tree := writeRandomFile(t, filepath.Join(dir, "film.mkv"), 8<<20, 6)
	shareDir(t, o, dir, share.ShareFlags{Browsable: true})
	if _, err := x.AddDownload(share.Link{Root: tree.Root, Name: "film.mkv", Size: tree.Size}, "", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "x has verified groups", func() bool {
		info, _ := x.Downloads().Info(tree.Root)
		return info.Received > 2
	})
	p, err := z.share.openPeer(context.Background(), x.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Have(context.Background(), tree.Root)
	var er share.ErrorReply
	if !errors.As(err, &er) || er.Code != share.CodeNotFound {
		t.Fatalf("x, with swarm off, answered Have for what it downloads: %v", err)
	}
}
