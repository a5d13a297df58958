package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kith/node/api"
	"kith/share"
)

// TestFolderFromTwoFriends: two friends share the same folder (three
// levels); the downloader gets its link from a friend's browse listing,
// fetches it through the API (POST /v1/folders) and gets every file,
// verified, from both friends.
func TestFolderFromTwoFriends(t *testing.T) {
	d, dHome := testNode(t, "downloader")
	orig := filepath.Join(t.TempDir(), "album")
	files := map[string]int64{"cd1/a/01.flac": 3<<20 + 11, "cd1/02.flac": 1 << 20, "cd2/b/c/03.flac": 2<<20 + 5, "cover.jpg": 70000, "empty": 0}
	seed := uint64(1)
	for rel, size := range files {
		writeRandomFile(t, filepath.Join(orig, filepath.FromSlash(rel)), size, seed)
		seed++
	}
	var sources []*Node
	for i := range 2 {
		s, _ := testNode(t, "source"+string(rune('1'+i)))
		befriend(t, d, s)
		dir := filepath.Join(t.TempDir(), "album")
		for rel := range files {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			linkInto(t, filepath.Join(orig, filepath.FromSlash(rel)), filepath.Dir(p))
		}
		shareDir(t, s, dir, share.ShareFlags{Browsable: true})
		waitFor(t, 10*time.Second, "friend online", func() bool { return isOnline(d, s) && isOnline(s, d) })
		sources = append(sources, s)
	}
	c := api.NewClient(dHome)
	ctx := context.Background()
	l, err := c.Browse(ctx, sources[0].ID().String(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 1 || !l.Entries[0].Dir || !strings.HasPrefix(l.Entries[0].Link, "kith://folder/") {
		t.Fatalf("browse: %+v", l.Entries)
	}
	fd, err := c.AddFolder(ctx, api.FolderRequest{Link: l.Entries[0].Link})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for fd.State != api.StateDone {
		if fd.State == api.StateFailed || time.Now().After(deadline) {
			t.Fatalf("folder download: %+v", fd)
		}
		time.Sleep(50 * time.Millisecond)
		if fd, err = c.Folder(ctx, fd.Root); err != nil {
			t.Fatal(err)
		}
	}
	for rel := range files {
		if !sameFile(t, filepath.Join(orig, filepath.FromSlash(rel)), filepath.Join(fd.Dir, filepath.FromSlash(rel))) {
			t.Fatalf("%s differs", rel)
		}
	}
	used := map[string]bool{}
	for _, info := range d.Downloads().List() {
		for _, s := range info.Sources {
			if s.Bytes > 0 {
				used[s.Name] = true
			}
		}
	}
	t.Logf("folder %s: %d files, %d bytes; sources used: %v", fd.Dir, fd.FilesDone, fd.Done, used)
	if len(used) != 2 {
		t.Fatalf("files came from %d friends; want 2", len(used))
	}
	// Forgetting the folder keeps its files; the client maps the error back.
	if _, err := c.CancelFolder(ctx, fd.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Folder(ctx, fd.Root); !errors.Is(err, api.ErrNoSuchFolder) {
		t.Fatalf("folder after cancel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fd.Dir, "cover.jpg")); err != nil {
		t.Fatal(err)
	}
	// The owner lists the folder's links, the share's first.
	links, err := api.NewClient(sources[0].cfg.Home).ShareFolders(ctx, "")
	if err != nil || len(links) != 6 || links[0].Link != l.Entries[0].Link {
		t.Fatalf("share folders: %+v, %v", links, err)
	}
}

// TestStreamAPI: `kith stream`'s request (POST /v1/streams) starts the
// download from a friend that uploads at most 4 MiB/s and gives a loopback
// URL. A player's requests through it: the first MiB, then a seek to 80%,
// each equal to the file's bytes, the second answered while the download
// is still far from done; nosniff; a wrong token or Host header refused;
// the whole file once done.
func TestStreamAPI(t *testing.T) {
	const size = 32 << 20
	d, dHome := testNode(t, "downloader")
	home := filepath.Join(t.TempDir(), "source")
	if _, err := Init(home, "source"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(home)
	cfg.MaxUpload = 4 << 20
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	befriend(t, d, s)
	dir := filepath.Join(t.TempDir(), "videos")
	tree := writeRandomFile(t, filepath.Join(dir, "film.mkv"), size, 3)
	shareDir(t, s, dir, share.ShareFlags{Browsable: true})
	waitFor(t, 10*time.Second, "friend online", func() bool { return isOnline(d, s) && isOnline(s, d) })
	want, _ := os.ReadFile(filepath.Join(dir, "film.mkv"))

	c := api.NewClient(dHome)
	link := share.Link{Root: tree.Root, Name: "film.mkv", Size: size}
	start := time.Now()
	si, err := c.StreamURL(context.Background(), api.StreamRequest{Link: link.String()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(si.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %s", si.URL)
	}
	get := func(from, to int64) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", si.URL, nil)
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-"+strconv.FormatInt(to, 10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[from:to+1]) {
			t.Fatalf("range %d-%d: %s, %d bytes, equal %v", from, to, resp.Status, len(body), bytes.Equal(body, want[from:min(to+1, from+int64(len(body)))]))
		}
		return resp, body
	}
	resp, _ := get(0, 1<<20-1)
	tFirst := time.Since(start)
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Type") != "video/x-matroska" {
		t.Fatalf("headers: %v", resp.Header)
	}
	seek := time.Now()
	at := int64(size) * 8 / 10
	get(at, at+1<<20-1)
	tSeek := time.Since(seek)
	info, _ := d.Downloads().Info(tree.Root)
	t.Logf("source at 4 MiB/s: first MiB after %v, the MiB at 80%% %v after the seek, with %d of %d groups verified", tFirst, tSeek, info.Received, info.Groups)
	if info.State == share.StateDone || info.Received > info.Groups/2 {
		t.Fatalf("the MiB at 80%% came with %d of %d groups verified: not fetched first", info.Received, info.Groups)
	}

	bad := si.URL[:len(si.URL)-4] + "0000"
	if r, err := http.Get(bad); err != nil || r.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong token: %v %v", r.Status, err)
	} else {
		r.Body.Close()
	}
	req, _ := http.NewRequest("GET", si.URL, nil)
	req.Host = "attacker.example:80"
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("wrong host: %v %v", r.Status, err)
	} else {
		r.Body.Close()
	}
	// The whole file, once done.
	waitDownload(t, d, tree.Root, time.Minute)
	r, err := http.Get(si.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !bytes.Equal(body, want) {
		t.Fatal("the streamed file differs")
	}
}
