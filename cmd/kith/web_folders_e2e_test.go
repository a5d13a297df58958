package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// xssFolder is the hostile name of a folder and of a file in it (no "/").
const xssFolder = `<img src=x onerror=__pwn(1)>`

// TestWebUIFolderDownloadAndPlay: alice shares a folder (a subfolder and
// three files, one a 5 s video made by ffmpeg, and a subfolder and file
// with a hostile name); on her Shares page the folder's kith://folder/ link
// is copied. bob's page browses alice, clicks "Download folder" and sees
// the folder finish on Downloads (3 / 3 files, every byte); bob's copies
// equal alice's files; the copied link pasted on bob's Downloads page
// fetches it again. A second, slow folder is cancelled from the page
// while it runs. Then Play on the video: the page's <video> plays the
// daemon's stream URL (another loopback port, allowed by the page's CSP
// media-src and nothing else) up to HAVE_CURRENT_DATA with a duration of
// about 5 s; and Play on Browse of a 20 MiB video has its first frame
// while the download still runs. The hostile names show literally, and
// the page hook records no payload call, CSP violation or element made
// from one.
func TestWebUIFolderDownloadAndPlay(t *testing.T) {
	chromiumPath(t)
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	// alice's uploads are capped so that the slow folder is still running
	// when the page cancels it, and the long video when its first frame
	// shows.
	webUp(t, homeA, "--max-upload", "2MiB")
	webUp(t, homeB)
	var idA, idB api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	mustKith(t, "friend", "add", idB.Invite, "--home", homeA)
	mustKith(t, "friend", "add", idA.Invite, "--home", homeB)
	waitFriend(t, homeB, idA.PeerID, true)
	waitFriend(t, homeA, idB.PeerID, true)

	// alice's folder: Holiday/{clip.mp4, notes.txt, <hostile>/<hostile>.bin}.
	holiday := filepath.Join(dir, "Holiday")
	os.MkdirAll(filepath.Join(holiday, xssFolder), 0o700)
	files := map[string][]byte{
		"notes.txt":                          []byte("where we went\n"),
		xssFolder + "/" + xssFolder + ".bin": randBytes(t, 300<<10),
	}
	haveVideo := true
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		haveVideo = false
		t.Log("ffmpeg is not installed: the folder has a stand-in for the video and the player part is skipped (Debian: apt-get install ffmpeg; .ci/run installs it)")
		files["clip.mp4"] = randBytes(t, 64<<10)
	} else {
		out := filepath.Join(dir, "clip.mp4")
		// yuv420p: the profile every browser's H.264 decoder plays.
		cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
			"-f", "lavfi", "-i", "testsrc=duration=5:size=160x120:rate=10", "-f", "lavfi", "-i", "sine=duration=5",
			"-shortest", "-pix_fmt", "yuv420p", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files["clip.mp4"] = b
	}
	for rel, b := range files {
		if err := os.WriteFile(filepath.Join(holiday, filepath.FromSlash(rel)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustKith(t, "share", "add", holiday, "--browsable", "--home", homeA)
	// A second folder, a 40 MiB "video" at alice's 2 MiB/s: cancelled while
	// it runs.
	slow := filepath.Join(dir, "Slow")
	os.MkdirAll(slow, 0o700)
	os.WriteFile(filepath.Join(slow, "big.mkv"), randBytes(t, 40<<20), 0o600)
	mustKith(t, "share", "add", slow, "--browsable", "--home", homeA)
	// A third share: a 5 s video of about 20 MiB (lossless noise), 10 s at
	// alice's 2 MiB/s, its index at the end (ffmpeg's default): played
	// while it downloads.
	var long []byte
	if haveVideo {
		films := filepath.Join(dir, "Films")
		os.MkdirAll(films, 0o700)
		out := filepath.Join(films, "long.mp4")
		cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
			"-f", "lavfi", "-i", "testsrc=duration=5:size=640x480:rate=10,noise=alls=100:allf=t", "-f", "lavfi", "-i", "sine=duration=5",
			"-shortest", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, b)
		}
		var err error
		if long, err = os.ReadFile(out); err != nil || len(long) < 8<<20 {
			t.Fatalf("the long video: %d bytes, %v; want 8 MiB or more", len(long), err)
		}
		mustKith(t, "share", "add", films, "--browsable", "--home", homeA)
	}

	br := newBrowser(t)
	a, b := br.tab("alice"), br.tab("bob")
	a.login(webLoginLink(t, homeA))
	b.login(webLoginLink(t, homeB))

	// alice's Shares page: the folder's link, copied.
	a.open("#/shares")
	a.waitJS("the Holiday share", `document.querySelector('tr[data-share=Holiday] [data-test=share-show-files]') !== null`, 20*time.Second)
	a.click(`tr[data-share=Holiday] [data-test=share-show-files]`)
	a.waitJS("the share's folders", `document.querySelectorAll('tr[data-test=share-folder]').length === 2`, 20*time.Second)
	var links []struct {
		Share string `json:"share"`
		Path  string `json:"path"`
		Link  string `json:"link"`
	}
	a.eval(`fetch('/v1/shares/folders?dir=' + encodeURIComponent(`+jsString(holiday)+`)).then((r) => r.json())`, &links)
	var holidayLink string
	for _, l := range links {
		if l.Path == "" {
			holidayLink = l.Link
		}
	}
	if !strings.HasPrefix(holidayLink, "kith://folder/") {
		t.Fatalf("GET /v1/shares/folders: %+v", links)
	}
	a.waitJS("the hostile subfolder shown literally", `[...document.querySelectorAll('tr[data-test=share-folder] td.name > bdi')].some((e) => e.textContent === `+jsString("Holiday/"+xssFolder)+`)`, 5*time.Second)
	a.clipboard() // allowed to read it back
	a.click(`tr[data-test=share-folder][data-path=""] [data-test=copy-folder-link]`)
	a.waitJS("the copy toast", `document.querySelector('#toasts').textContent.includes('folder link copied')`, 5*time.Second)
	if got := a.clipboard(); got != holidayLink {
		t.Fatalf("Copy folder link put %q on the clipboard; the folder's link is %q", got, holidayLink)
	}
	a.checkClean()

	// bob browses alice; each shared folder has a "Download folder" button.
	dirRow := func(name string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('tr[data-test=dir]')].find((r) => r.querySelector('[data-test=folder] bdi').textContent === %s)`, jsString(name))
	}
	b.open("#/browse/" + idA.PeerID)
	b.waitJS("alice's folders with their buttons", dirRow("Holiday")+`?.querySelector('[data-test=download-folder]') && `+dirRow("Slow")+`?.querySelector('[data-test=download-folder]')`, 20*time.Second)
	// The hostile subfolder, inside, as text.
	b.eval(dirRow("Holiday")+`.querySelector('[data-test=folder]').click()`, nil)
	b.waitJS("the hostile subfolder shown literally", dirRow(xssFolder), 20*time.Second)
	b.open("#/browse/" + idA.PeerID)
	b.waitJS("alice's folders", dirRow("Slow")+`?.querySelector('[data-test=download-folder]')`, 20*time.Second)
	b.eval(dirRow("Slow")+`.querySelector('[data-test=download-folder]').click()`, nil)
	b.waitJS("the folder download's toast", `document.querySelector('#toasts').textContent.includes('downloading folder Slow')`, 60*time.Second)
	b.eval(dirRow("Holiday")+`.querySelector('[data-test=download-folder]').click()`, nil)
	b.waitJS("the folder download's toast", `document.querySelector('#toasts').textContent.includes('downloading folder Holiday')`, 60*time.Second)
	b.checkClean()

	// bob's Downloads page: Slow runs (its bytes grow), and is cancelled.
	folderRow := func(name string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('tr[data-test=folder-row]')].find((r) => r.querySelector('td.name > bdi').textContent === %s)`, jsString(name))
	}
	b.open("#/downloads")
	b.waitJS("Slow running with bytes done", `(() => { const r = `+folderRow("Slow")+`; if (!r) return false; const p = r.querySelector('[data-test=folder-progress]');
		return r.querySelector('[data-test=folder-state]').textContent !== 'done' && p.value > 0 && p.value < p.max; })()`, 60*time.Second)
	// A video still downloading has its Play button too (the stream waits
	// for verified bytes).
	b.waitJS("big.mkv's row running, with a Play button", `(() => { const r = [...document.querySelectorAll('tr[data-test=download-row]')].find((r) => r.querySelector('td.name > bdi').textContent === 'big.mkv');
		return r && r.querySelector('[data-test=state]').textContent !== 'done' && r.querySelector('[data-test=play]') !== null; })()`, 20*time.Second)
	b.eval(folderRow("Slow")+`.querySelector('[data-test=folder-cancel]').click()`, nil)
	b.waitJS("Slow gone from the page", `!`+folderRow("Slow"), 20*time.Second)
	b.waitJS("big.mkv's row gone with it", `![...document.querySelectorAll('tr[data-test=download-row] td.name > bdi')].some((e) => e.textContent === 'big.mkv')`, 20*time.Second)
	var left []api.FolderDownload
	b.eval(`fetch('/v1/folders').then((r) => r.json())`, &left)
	for _, f := range left {
		if f.Name == "Slow" {
			t.Fatalf("Slow is still a folder download after Cancel: %+v", f)
		}
	}
	var dls []api.DownloadInfo
	b.eval(`fetch('/v1/downloads').then((r) => r.json())`, &dls)
	for _, d := range dls {
		if d.Name == "big.mkv" {
			t.Fatalf("big.mkv is still a download after its folder's Cancel: %+v", d)
		}
	}

	// Holiday finishes: 3 / 3 files, every byte.
	b.waitJS("Holiday done", `(() => { const r = `+folderRow("Holiday")+`; return r && r.querySelector('[data-test=folder-state]').textContent === 'done' &&
		r.querySelector('[data-test=folder-files]').textContent === '3 / 3 files' && r.querySelector('[data-test=folder-percent]').textContent === '100%'; })()`, 90*time.Second)
	b.eval(folderRow("Holiday")+`.querySelector('[data-test=folder-show-files]').click()`, nil)
	b.waitJS("Holiday's files, the hostile one literally", `[...document.querySelectorAll('tr[data-test=folder-file] td.name > bdi')].some((e) => e.textContent === `+jsString(xssFolder+"/"+xssFolder+".bin")+`)`, 10*time.Second)
	b.waitJS("the hostile file's download row, literally", `[...document.querySelectorAll('tr[data-test=download-row] td.name > bdi')].some((e) => e.textContent === `+jsString(xssFolder+".bin")+`)`, 10*time.Second)
	var fileCount int
	b.eval(`document.querySelectorAll('tr[data-test=folder-file]').length`, &fileCount)
	if fileCount != 3 {
		t.Fatalf("Holiday's file list shows %d files, want 3", fileCount)
	}
	var done []api.FolderDownload
	b.eval(`fetch('/v1/folders').then((r) => r.json())`, &done)
	if len(done) != 1 || done[0].Name != "Holiday" || done[0].State != "done" || done[0].FilesDone != 3 {
		t.Fatalf("bob's folder downloads: %+v", done)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(done[0].Dir, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("bob's copy of %q: %d bytes (want %d), %v", rel, len(got), len(want), err)
		}
	}
	b.screenshot("folders")
	b.checkClean()
	// The link alice copied, pasted into bob's Downloads page: a second
	// copy of the folder, next to the first.
	b.setValue(`[data-test=get-link]`, holidayLink)
	b.click(`[data-test=get]`)
	b.waitJS("Holiday (2) done", `(() => { const r = `+folderRow("Holiday (2)")+`; return r && r.querySelector('[data-test=folder-state]').textContent === 'done' &&
		r.querySelector('[data-test=folder-files]').textContent === '3 / 3 files'; })()`, 90*time.Second)
	b.checkClean()

	if !haveVideo {
		t.Skip("ffmpeg is not installed: the player part needs a real video (Debian: apt-get install ffmpeg; .ci/run installs it)")
	}
	// Play: the row of clip.mp4 (a file of the folder) has a Play button.
	clipRow := `[...document.querySelectorAll('tr[data-test=download-row]')].find((r) => r.querySelector('td.name > bdi').textContent === 'clip.mp4')`
	b.waitJS("clip.mp4's Play button", clipRow+`?.querySelector('[data-test=play]')`, 20*time.Second)
	b.eval(clipRow+`.querySelector('[data-test=play]').click()`, nil)
	b.waitJS("the video has its current frame", `(() => { const v = document.querySelector('video[data-test=player]'); return v && v.readyState >= 2; })()`, 60*time.Second)
	var v struct {
		Duration float64 `json:"duration"`
		Ready    int     `json:"ready"`
		Src      string  `json:"src"`
		Width    int     `json:"width"`
	}
	b.eval(`(() => { const v = document.querySelector('video[data-test=player]'); return { duration: v.duration, ready: v.readyState, src: v.currentSrc, width: v.videoWidth }; })()`, &v)
	if v.Duration < 4.5 || v.Duration > 5.5 || v.Width != 160 {
		t.Fatalf("the player: %+v; want a 5 s video 160 pixels wide", v)
	}
	u, err := url.Parse(v.Src)
	if err != nil || u.Scheme != "http" || !strings.HasPrefix(u.Host, "127.0.0.1:") || u.Host == strings.TrimPrefix(b.base, "http://") ||
		!strings.HasPrefix(u.Path, "/v1/stream/") || u.Query().Get("t") == "" {
		t.Fatalf("the player's source %q: want the daemon's stream port with a token", v.Src)
	}
	// The page's policy lets media come from that port and nothing else
	// from anywhere but the page's own origin.
	var csp string
	b.eval(`fetch('/').then((r) => r.headers.get('Content-Security-Policy'))`, &csp)
	if !strings.Contains(csp, "media-src http://"+u.Host) || !strings.Contains(csp, "script-src 'self';") ||
		strings.Count(csp, "127.0.0.1") != 1 || strings.Contains(csp, "unsafe") {
		t.Fatalf("the page's CSP %q: want media-src %s only and script-src 'self'", csp, u.Host)
	}
	t.Logf("the player: %+v; the page's CSP: %s", v, csp)
	b.screenshot("player")
	b.checkClean()

	// Play while it downloads: Browse has Play on alice's long.mp4; it
	// opens the Downloads page, which starts the download and plays it.
	// The video has its first frame, and its whole length, while the
	// download still runs (the stream fetches the index at the file's end
	// first).
	fileRow := `[...document.querySelectorAll('tr[data-test=file]')].find((r) => r.querySelector('td.name > bdi').textContent === 'long.mp4')`
	b.open("#/browse/" + idA.PeerID + "/Films")
	b.waitJS("long.mp4 with a Play button", fileRow+`?.querySelector('[data-test=play]')`, 20*time.Second)
	b.eval(fileRow+`.querySelector('[data-test=play]').click()`, nil)
	b.waitJS("long.mp4's first frame", `(() => { const v = document.querySelector('video[data-test=player]');
		return location.hash === '#/downloads' && v && v.readyState >= 2 && document.querySelector('[data-test=player-box]').textContent.includes('long.mp4'); })()`, 60*time.Second)
	var at struct {
		State    string  `json:"state"`
		Done     int64   `json:"done"`
		Size     int64   `json:"size"`
		Duration float64 `json:"duration"`
		Width    int     `json:"width"`
	}
	b.eval(`(async () => { const v = document.querySelector('video[data-test=player]'); const duration = v.duration, width = v.videoWidth;
		const d = (await (await fetch('/v1/downloads')).json()).find((d) => d.name === 'long.mp4');
		return { state: d.state, done: d.bytes_done, size: d.size, duration, width }; })()`, &at)
	t.Logf("long.mp4 at its first frame: %+v", at)
	if at.State == "done" || at.Done >= at.Size || at.Size != int64(len(long)) {
		t.Fatalf("long.mp4 at the player's first frame: %+v; want its download still running (%d bytes)", at, len(long))
	}
	if at.Duration < 4.5 || at.Duration > 5.5 || at.Width != 640 {
		t.Fatalf("the player of long.mp4: %+v; want a 5 s video 640 pixels wide", at)
	}
	b.waitJS("long.mp4 downloaded", `[...document.querySelectorAll('tr[data-test=download-row]')].some((r) => r.querySelector('td.name > bdi').textContent === 'long.mp4' && r.querySelector('[data-test=state]').textContent === 'done')`, 120*time.Second)
	if got, err := os.ReadFile(filepath.Join(homeB, "downloads", "long.mp4")); err != nil || !bytes.Equal(got, long) {
		t.Fatalf("bob's copy of long.mp4: %d bytes (want %d), %v", len(got), len(long), err)
	}
	b.checkClean()
}

// randBytes returns n random bytes.
func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}
