package share

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// streamEnv is a downloader whose only source, the owner, uploads at most
// rate bytes a second.
func streamEnv(t *testing.T, rate int64) *swarmNet {
	t.Helper()
	return newSwarmNet(t, 1, false, Tuning{SourceRefresh: 200 * time.Millisecond}, rate)
}

// TestStreamWhileDownloading reads a 32 MiB file through a StreamReader
// while it downloads from a source throttled to 4 MiB/s (8 s for the whole
// file): the first MiB, then a seek to 80% and a MiB from there, then all
// of it. Every byte read equals the file's, and the bytes at 80% arrive
// before the part in between (the reader's window is fetched first): when
// they have been read, fewer groups are verified than a download in file
// order would need to reach them. The seek waits for the requests already
// in flight at the source (DownloadBaseWindow ranges, 2 s at 4 MiB/s), so
// the bound is on order, not on time.
func TestStreamWhileDownloading(t *testing.T) {
	const size = 32 << 20
	sn := streamEnv(t, 4<<20)
	data, link := sn.share(size)
	m := sn.nodes[1].m
	start := time.Now()
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	sr, err := m.OpenStream(context.Background(), link.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(sr, first); err != nil {
		t.Fatal(err)
	}
	tFirst := time.Since(start)
	if !bytes.Equal(first, data[:1<<20]) {
		t.Fatal("first MiB differs")
	}
	at := int64(size) * 8 / 10
	seekStart := time.Now()
	if _, err := sr.Seek(at, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	mid := make([]byte, 1<<20)
	if _, err := io.ReadFull(sr, mid); err != nil {
		t.Fatal(err)
	}
	tSeek := time.Since(seekStart)
	info, _ := m.Info(link.Root)
	if !bytes.Equal(mid, data[at:at+1<<20]) {
		t.Fatal("the MiB at 80% differs")
	}
	t.Logf("first MiB after %v; the MiB at 80%% %v after the seek, with %d of %d groups verified", tFirst, tSeek, info.Received, info.Groups)
	inOrder := (at + 1<<20) / GroupSize
	if info.State == StateDone || info.Received >= inOrder {
		t.Fatalf("the MiB at 80%% came with %d of %d groups verified (%d in file order): it was not fetched first", info.Received, info.Groups, inOrder)
	}
	if _, err := sr.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(sr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(all, data) {
		t.Fatal("the file read through the stream differs")
	}
	waitLong(t, m, link.Root, time.Minute)
}

// TestStreamHTTP serves a download in progress with ServeStream and reads
// it as a player would: ranges, the headers that keep a browser from
// running a friend's file, and ffprobe reading a generated video's duration
// and streams from the URL while the download still runs.
func TestStreamHTTP(t *testing.T) {
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		t.Skip("ffmpeg and ffprobe are needed (Debian: apt-get install ffmpeg)")
	}
	dir := t.TempDir()
	video := filepath.Join(dir, "clip.mp4")
	// An MP4 as ffmpeg writes it by default keeps its index (moov) at the
	// end: a player needs the tail early.
	gen := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=20:size=640x480:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=20", "-vf", "noise=alls=50:allf=t+u", "-c:v", "mpeg4", "-b:v", "4M", "-c:a", "aac", "-shortest", video)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	data, err := os.ReadFile(video)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	// Throttled so that the download takes about 20 s (the limiter lets a
	// burst of 64 KiB through at once).
	sn := streamEnv(t, max(size/20, 64<<10))
	cat := sn.nodes[0].srv.catalog.(*memCatalog)
	tree, err := HashFile(video)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(video)
	cat.mu.Lock()
	cat.files[tree.Root] = memFile{sf: SharedFile{Path: video, Name: "clip.mp4", ModTime: fi.ModTime(), Tree: tree}, browsable: true}
	cat.mu.Unlock()
	link := Link{Root: tree.Root, Name: "clip.mp4", Size: size}
	m := sn.nodes[1].m
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sr, err := m.OpenStream(req.Context(), link.Root)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer sr.Close()
		ServeStream(w, req, sr)
	}))
	defer srv.Close()
	url := srv.URL + "/v1/stream/" + hex.EncodeToString(link.Root[:])

	// A range from the middle.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", "bytes="+strconv.FormatInt(size/2, 10)+"-"+strconv.FormatInt(size/2+999, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[size/2:size/2+1000]) {
		t.Fatalf("range: %s, %d bytes", resp.Status, len(body))
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Fatalf("headers %v", resp.Header)
	}

	probeStart := time.Now()
	probe := exec.Command(ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", url)
	out, err := probe.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	info, _ := m.Info(link.Root)
	var res struct {
		Format  struct{ Duration string } `json:"format"`
		Streams []struct {
			CodecType string `json:"codec_type"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	d, _ := strconv.ParseFloat(res.Format.Duration, 64)
	t.Logf("ffprobe: duration %.2fs, %d streams, in %v, with %d of %d groups of %d bytes verified", d, len(res.Streams), time.Since(probeStart), info.Received, info.Groups, size)
	if d < 19 || d > 21 || len(res.Streams) != 2 {
		t.Fatalf("ffprobe read duration %q and %d streams", res.Format.Duration, len(res.Streams))
	}
	if info.State == StateDone {
		t.Fatal("the download was done before ffprobe finished: the test proves nothing")
	}
}

// TestStreamHeaders checks that a file that is not audio or video is sent
// as an attachment, never as a page a browser would render.
func TestStreamHeaders(t *testing.T) {
	for name, want := range map[string]string{"x.html": "attachment", "x.svg": "attachment", "a.mkv": "inline", "b.flac": "inline", "noext": "attachment"} {
		if (MediaType(name) != "") != (want == "inline") {
			t.Errorf("%s: media type %q", name, MediaType(name))
		}
	}
}

// TestStreamLyingSource reads a file through a StreamReader while it
// downloads from an honest owner and a liar that flips a byte of every
// range: every byte the reader hands out equals the file's, while the
// download caught the liar.
func TestStreamLyingSource(t *testing.T) {
	const size = 12 << 20
	sn := newSwarmNet(t, 2, false, Tuning{SourceRefresh: 100 * time.Millisecond, RangeGroups: 2, Window: 2}, 0)
	data, link := sn.share(size)
	sn.nodes[2].srv = sn.nodes[0].srv
	sn.nodes[1].peers = []int{0, 2}
	sn.nodes[1].wrap = func(j int, p *Peer) Fetcher {
		if j == 2 {
			return haveFetcher{lie(false)(p, nil), p}
		}
		return haveFetcher{waitThen(nil, 30*time.Millisecond)(p, nil), p}
	}
	m := sn.nodes[1].m
	if _, err := m.Add(link, ""); err != nil {
		t.Fatal(err)
	}
	sr, err := m.OpenStream(context.Background(), link.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	got, err := io.ReadAll(sr)
	if err != nil {
		t.Fatal(err)
	}
	info := waitLong(t, m, link.Root, time.Minute)
	t.Logf("read %d bytes through the stream; the download caught %d bad groups", len(got), info.BadRanges)
	if info.BadRanges == 0 {
		t.Fatal("the liar was never caught: the test proves nothing")
	}
	if !bytes.Equal(got, data) {
		for i := range got {
			if got[i] != data[i] {
				t.Fatalf("the stream handed out a wrong byte at %d (group %d)", i, i/GroupSize)
			}
		}
		t.Fatal("the stream's bytes differ")
	}
}
