package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// TestWebUIFriendsShareDownloadChat drives two daemons through their web
// pages only: they become friends by copying and pasting invites, alice
// shares a folder, bob browses it and downloads a 64 MiB file while the
// progress bar moves, and they chat both ways with delivery ticks,
// unread counts and typing notices. A third node, carol (bob's friend,
// not alice's), shares a file anonymously; alice finds it by search on
// her page and fetches it anonymously. The page hook records no script of
// any kind running, and no page throws.
func TestWebUIFriendsShareDownloadChat(t *testing.T) {
	chromiumPath(t)
	dir := t.TempDir()
	homeA, homeB, homeC := filepath.Join(dir, "alice"), filepath.Join(dir, "bob"), filepath.Join(dir, "carol")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", "bob", "--home", homeB)
	mustKith(t, "init", "--name", "carol", "--home", homeC)
	// alice's uploads are capped so that the 64 MiB download takes some
	// seconds and the test sees its progress bar move.
	webUp(t, homeA, "--max-upload", "12MiB")
	webUp(t, homeB)
	startDaemon(t, homeC, "--no-web")
	var idA, idB, idC api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeB)), &idB)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeC)), &idC)

	br := newBrowser(t)
	a, b := br.tab("alice"), br.tab("bob")
	a.login(webLoginLink(t, homeA))
	b.login(webLoginLink(t, homeB))

	// Friends, through the pages: copy alice's invite, paste it at bob's,
	// and bob's at alice's.
	invite := func(tb *tab) string {
		tb.open("#/friends")
		tb.waitJS("the invite", `document.querySelector('[data-test=my-invite]').value.startsWith('kith:')`, 10*time.Second)
		tb.waitJS("the invite's QR code", `(() => { const i = document.querySelector('img[data-test=invite-qr]'); return i && i.complete && i.naturalWidth > 100; })()`, 10*time.Second)
		tb.clipboard() // allowed to read it back
		tb.click(`[data-test=copy-invite]`)
		tb.waitJS("the copy toast", `document.querySelector('#toasts').textContent.includes('invite copied')`, 5*time.Second)
		var shown string
		tb.eval(`document.querySelector('[data-test=my-invite]').value`, &shown)
		if got := tb.clipboard(); got != shown {
			t.Fatalf("%s: the Copy button put %q on the clipboard; the page shows %q", tb.name, got, shown)
		}
		return shown
	}
	invA, invB := invite(a), invite(b)
	if invA == invB || !strings.HasPrefix(invA, "kith:") || !strings.HasPrefix(invB, "kith:") {
		t.Fatalf("the pages' invites: %q, %q", invA, invB)
	}
	add := func(tb *tab, inv string) {
		tb.setValue(`[data-test=add-invite]`, inv)
		tb.click(`[data-test=add-friend]`)
	}
	add(b, invA)
	add(a, invB)
	online := func(tb *tab, peerID string) {
		tb.waitJS("friend online", fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-peer=%q]'); return r && r.textContent.includes('online') && !r.textContent.includes('offline'); })()`, peerID), 30*time.Second)
	}
	online(a, idB.PeerID)
	online(b, idA.PeerID)
	waitFriend(t, homeA, idB.PeerID, true)
	a.screenshot("friends")

	// bob and carol are friends (by the CLI: carol has no browser); carol
	// shares a folder anonymously only.
	mustKith(t, "friend", "add", idC.Invite, "--home", homeB)
	mustKith(t, "friend", "add", idB.Invite, "--home", homeC)
	waitFriend(t, homeB, idC.PeerID, true)
	secret := filepath.Join(dir, "carol-share")
	os.MkdirAll(secret, 0o700)
	anonContent := bytes.Repeat([]byte("through two tunnels "), 50_000) // 1 MB
	os.WriteFile(filepath.Join(secret, "Lighthouse keepers log.txt"), anonContent, 0o600)
	mustKith(t, "share", "add", secret, "--anonymous", "--home", homeC)

	// alice shares a folder on her Shares page.
	films := filepath.Join(dir, "alice-films")
	os.MkdirAll(filepath.Join(films, "Summer"), 0o700)
	big := make([]byte, 64<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(films, "Summer", "Beach day.mkv"), big, 0o600)
	os.WriteFile(filepath.Join(films, "Summer", "Rain day.mkv"), big[:32<<20], 0o600)
	os.WriteFile(filepath.Join(films, "notes.txt"), []byte("films to watch\n"), 0o600)
	a.open("#/shares")
	a.setValue(`[data-test=share-dir]`, films)
	a.click(`[data-test=share-add]`)
	a.waitJS("the share listed with its files", `(() => { const c = document.querySelector('[data-test=share-files]'); return c && c.textContent === '3'; })()`, 60*time.Second)
	// A file added to the folder shows after Rescan.
	os.WriteFile(filepath.Join(films, "cast.txt"), []byte("who is in it\n"), 0o600)
	a.click(`[data-test=rescan]`)
	a.waitJS("the rescanned share", `(() => { const c = document.querySelector('[data-test=share-files]'); return c && c.textContent === '4'; })()`, 30*time.Second)
	a.click(`[data-test=share-show-files]`)
	a.waitJS("the share's files and links", `document.querySelectorAll('[data-test=copy-link]').length === 4`, 10*time.Second)
	a.screenshot("shares")

	// bob browses alice: the folder, then the file in it.
	b.open("#/browse/" + idA.PeerID)
	b.waitJS("alice's shared folder", `[...document.querySelectorAll('[data-test=folder]')].some((e) => e.textContent.includes('alice-films'))`, 20*time.Second)
	b.click(`[data-test=folder]`)
	b.waitJS("the folder in it", `[...document.querySelectorAll('[data-test=folder]')].some((e) => e.textContent.includes('Summer'))`, 20*time.Second)
	b.waitJS("the crumbs", `document.querySelector('[data-test=crumbs]').textContent.includes('alice-films')`, 5*time.Second)
	b.click(`[data-test=folder]`)
	b.waitJS("the big file", `[...document.querySelectorAll('tr[data-test=file]')].some((e) => e.textContent.includes('Beach day.mkv') && e.textContent.includes('64 MiB'))`, 20*time.Second)
	b.screenshot("browse")
	clickFile := func(name string) {
		t.Helper()
		var ok bool
		b.eval(fmt.Sprintf(`(() => { const r = [...document.querySelectorAll('tr[data-test=file]')].find((e) => e.textContent.includes(%q));
			if (!r) return false; r.querySelector('[data-test=download]').click(); return true; })()`, name), &ok)
		if !ok {
			t.Fatalf("no file %q to download on bob's Browse page", name)
		}
	}
	clickFile("Beach day.mkv")

	// bob's Downloads page: the progress bar moves, then the file is done.
	b.open("#/downloads")
	b.waitJS("the download's row", `document.querySelector('tr[data-test=download-row]') !== null`, 10*time.Second)
	seen := map[int64]bool{}
	var shot bool
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var st struct {
			Value int64  `json:"value"`
			Max   int64  `json:"max"`
			State string `json:"state"`
			Src   string `json:"src"`
		}
		b.eval(`(() => { const r = document.querySelector('tr[data-test=download-row]'); const p = r.querySelector('progress');
			return { value: Math.round(p.value), max: Math.round(p.max), state: r.querySelector('[data-test=state]').textContent, src: r.textContent }; })()`, &st)
		if st.Value > 0 && st.Value < st.Max {
			seen[st.Value] = true
			if !shot && st.Value > st.Max/4 && strings.Contains(st.Src, "alice") {
				b.screenshot("downloads")
				shot = true
			}
		}
		if st.State == "done" {
			if st.Value != st.Max || st.Max != 64<<20 {
				t.Fatalf("a done download's bar: %d of %d", st.Value, st.Max)
			}
			break
		}
		if st.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("download: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Fatalf("the progress bar showed %d values between 0 and the end; want it moving (3 or more)", len(seen))
	}
	t.Logf("the progress bar showed %d distinct values on the way", len(seen))
	got, err := os.ReadFile(filepath.Join(homeB, "downloads", "Beach day.mkv"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("bob's copy of the file: %d bytes, %v", len(got), err)
	}
	// The finished file is offered by the page's "Save file" link.
	var n int
	b.eval(`(async () => { const a = document.querySelector('[data-test=open-file]'); const r = await fetch(a.getAttribute('href')); return (await r.arrayBuffer()).byteLength; })()`, &n)
	if n != 64<<20 {
		t.Fatalf("the page's Save file link gave %d bytes", n)
	}

	// bob starts another download and cancels it on the page: the row
	// goes, the daemon forgets it, and no partial file is left.
	b.open("#/browse/" + idA.PeerID + "/alice-films/Summer")
	b.waitJS("the second file", `[...document.querySelectorAll('tr[data-test=file]')].some((e) => e.textContent.includes('Rain day.mkv'))`, 20*time.Second)
	clickFile("Rain day.mkv")
	b.open("#/downloads")
	rain := `[...document.querySelectorAll('tr[data-test=download-row]')].find((r) => r.textContent.includes('Rain day.mkv'))`
	b.waitJS("the second download running", rain+` && `+rain+`.querySelector('[data-test=cancel]') !== null`, 20*time.Second)
	b.eval(rain+`.querySelector('[data-test=cancel]').click()`, nil)
	b.waitJS("the cancelled download's row gone", `!(`+rain+`)`, 20*time.Second)
	if out := mustKith(t, "downloads", "--json", "--home", homeB); strings.Contains(out, "Rain day") {
		t.Fatalf("the daemon still lists the cancelled download: %s", out)
	}
	var left []string
	filepath.WalkDir(filepath.Join(homeB, "downloads"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "Beach day.mkv" {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("files left in bob's downloads folder after the cancel: %q", left)
	}

	// Chat, both ways. alice writes while bob is on another page: bob's
	// unread count shows it.
	a.open("#/chat/friend/" + idB.PeerID)
	a.typeKeys(`[data-test=compose]`, "hi bob, got the film?\r")
	a.waitJS("alice's message shown", `[...document.querySelectorAll('[data-test=msg]')].some((m) => m.textContent.includes('got the film?'))`, 10*time.Second)
	b.open("#/friends")
	b.waitJS("bob's unread count", `(() => { const u = document.querySelector('#unread'); return !u.hidden && u.textContent === '1'; })()`, 20*time.Second)
	a.waitJS("alice's delivery tick", `[...document.querySelectorAll('[data-test=tick]')].some((e) => e.dataset.delivered === 'true')`, 20*time.Second)
	b.open("#/chat/friend/" + idA.PeerID)
	b.waitJS("alice's message at bob's", `[...document.querySelectorAll('[data-test=msg]')].some((m) => m.textContent.includes('hi bob, got the film?'))`, 10*time.Second)
	b.waitJS("read: the unread count gone", `(() => { const u = document.querySelector('#unread'); return u.hidden && getComputedStyle(u).display === 'none'; })()`, 10*time.Second)
	// bob types: alice sees the notice; then his answer, delivered.
	b.typeKeys(`[data-test=compose]`, "yes, thanks")
	a.waitJS("alice sees bob typing", `document.querySelector('[data-test=typing]').textContent.includes('bob is typing')`, 10*time.Second)
	b.typeKeys(`[data-test=compose]`, "! 64 MiB in a few seconds\r")
	a.waitJS("bob's answer at alice's", `[...document.querySelectorAll('[data-test=msg]')].some((m) => m.textContent.includes('yes, thanks! 64 MiB in a few seconds'))`, 10*time.Second)
	b.waitJS("bob's delivery tick", `[...document.querySelectorAll('.msg.out [data-test=tick]')].some((e) => e.dataset.delivered === 'true')`, 20*time.Second)
	a.waitJS("alice read it: no unread count", `document.querySelector('#unread').hidden`, 10*time.Second)
	a.screenshot("chat")

	// Scroll-back: bob sends 60 more; alice opens the conversation again,
	// sees the last page of it and loads the older ones at the top.
	for i := range 60 {
		apiCall(t, homeB, "POST", "/v1/chat/"+idA.PeerID+"/messages", fmt.Sprintf(`{"text":"old news %d"}`, i+1))
	}
	a.waitJS("bob's 60 messages, live", `[...document.querySelectorAll('[data-test=msg]')].some((m) => m.textContent.includes('old news 60'))`, 20*time.Second)
	a.open("#/friends")
	a.open("#/chat/friend/" + idB.PeerID)
	a.waitJS("the last page of the conversation", `document.querySelectorAll('[data-test=msg]').length === 50`, 10*time.Second)
	for i := 0; i < 5; i++ {
		var done bool
		a.eval(`document.querySelector('[data-test=older]') === null`, &done)
		if done {
			break
		}
		a.click(`[data-test=older]`)
		time.Sleep(300 * time.Millisecond)
	}
	a.waitJS("the whole conversation, in order", `(() => { const ms = [...document.querySelectorAll('[data-test=msg] .body')].map((e) => e.textContent);
		return ms.length === 62 && ms[0] === 'hi bob, got the film?' && ms[2] === 'old news 1' && ms[61] === 'old news 60'; })()`, 10*time.Second)

	// alice renames bob on her Friends page.
	a.open("#/friends")
	// (clicked from the page's script: a live update may redraw the row
	// between finding the button and a mouse click on it)
	a.waitJS("bob's row", fmt.Sprintf(`document.querySelector('tr[data-peer=%q] td.actions button') !== null`, idB.PeerID), 10*time.Second)
	a.eval(fmt.Sprintf(`[...document.querySelectorAll('tr[data-peer=%q] td.actions button')].find((b) => b.textContent === 'Rename').click()`, idB.PeerID), nil)
	a.waitJS("the rename field", `document.querySelector('[data-test=rename-input]') !== null`, 10*time.Second)
	a.setValue(`[data-test=rename-input]`, "Bob (film club)")
	a.click(`[data-test=rename-save]`)
	a.waitJS("the new name", fmt.Sprintf(`document.querySelector('tr[data-peer=%q] td.name').textContent.includes('Bob (film club)')`, idB.PeerID), 10*time.Second)
	if fs := friendLs(t, homeA); len(fs) != 1 || fs[0].Name != "Bob (film club)" {
		t.Fatalf("after the rename on the page: %+v", fs)
	}

	// Distant chat: alice makes a chat identity on her page and writes to
	// carol's chat id (carol is no friend of hers) through tunnels.
	carolID := strings.Fields(mustKith(t, "identity", "new", "carol-pseudo", "--home", homeC))[1]
	a.open("#/chat/identities")
	a.setValue(`[data-test=identity-nick]`, "alice-pseudo")
	a.click(`[data-test=identity-new]`)
	a.waitJS("alice's identity", `document.querySelector('[data-test=identities]').textContent.includes('alice-pseudo')`, 10*time.Second)
	var aliceID string
	a.eval(`document.querySelector('[data-test=identities] td.mono').textContent`, &aliceID)
	a.open("#/chat/distant-new")
	a.setValue(`[data-test=distant-to]`, carolID)
	a.setValue(`[data-test=distant-text]`, "hello from a pseudonym")
	a.click(`[data-test=distant-send]`)
	a.waitJS("the distant conversation", `location.hash.startsWith('#/chat/distant/') && [...document.querySelectorAll('[data-test=msg]')].some((m) => m.textContent.includes('hello from a pseudonym'))`, 10*time.Second)
	deadline = time.Now().Add(60 * time.Second)
	for !strings.Contains(mustKith(t, "distant", "requests", "--home", homeC), "hello from a pseudonym") {
		if time.Now().After(deadline) {
			t.Fatal("carol never got alice's distant message")
		}
		time.Sleep(300 * time.Millisecond)
	}
	a.waitJS("alice's distant delivery tick", `[...document.querySelectorAll('[data-test=tick]')].some((e) => e.dataset.delivered === 'true')`, 30*time.Second)
	mustKith(t, "distant", "accept", aliceID, "--home", homeC)
	mustKith(t, "distant", "send", aliceID, "hello, whoever you are", "--home", homeC)
	a.waitJS("carol's answer, live", `[...document.querySelectorAll('[data-test=msg]')].some((m) => m.textContent.includes('hello, whoever you are'))`, 60*time.Second)
	a.screenshot("distant")

	// alice searches: carol's anonymous file comes through bob.
	a.open("#/search")
	var found bool
	for try := 0; try < 6 && !found; try++ {
		a.setValue(`[data-test=search-q]`, "lighthouse keepers")
		a.click(`[data-test=search-go]`)
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			var k int
			a.eval(`document.querySelectorAll('tr[data-test=result]').length`, &k)
			if k > 0 {
				found = true
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !found {
		t.Fatalf("alice's search found nothing: %q", a.text(`[data-test=search-state]`))
	}
	if s := a.text(`tr[data-test=result]`); !strings.Contains(s, "Lighthouse keepers log.txt") {
		t.Fatalf("search result: %q", s)
	}
	// It showed as it arrived: the search (listening 15 s) still runs.
	if s := a.text(`[data-test=search-state]`); !strings.HasPrefix(s, "searching") {
		t.Fatalf("the result showed only when the search ended: %q", s)
	}
	a.screenshot("search")
	a.click(`tr[data-test=result] [data-test=download-anon]`)
	a.open("#/downloads")
	a.waitJS("the anonymous download done", `[...document.querySelectorAll('tr[data-test=download-row]')].some((r) => r.textContent.includes('Lighthouse') && r.querySelector('[data-test=state]').textContent === 'done')`, 90*time.Second)
	got, err = os.ReadFile(filepath.Join(homeA, "downloads", "Lighthouse keepers log.txt"))
	if err != nil || !bytes.Equal(got, anonContent) {
		t.Fatalf("alice's anonymous copy: %d bytes, %v", len(got), err)
	}
	// It came from carol through a tunnel: alice's only friend, bob, does
	// not have it, and carol is no friend of alice's.
	var dl []struct {
		Name    string `json:"name"`
		Sources []struct {
			Name  string `json:"name"`
			Bytes int64  `json:"bytes"`
		} `json:"sources"`
	}
	json.Unmarshal([]byte(mustKith(t, "downloads", "--json", "--home", homeA)), &dl)
	if len(dl) != 1 || len(dl[0].Sources) == 0 {
		t.Fatalf("alice's downloads: %+v", dl)
	}
	for _, src := range dl[0].Sources {
		if !strings.HasPrefix(src.Name, "tunnel") {
			t.Fatalf("the anonymous download had a source that is not a tunnel: %+v", dl)
		}
	}

	a.open("#/status")
	a.waitJS("the status page's counters", `document.querySelector('[data-test=counters] table') !== null`, 15*time.Second)
	// The chart has sampled the rates since alice's page opened, before
	// she uploaded the 64 MiB file to bob: what its points add up to is
	// at least that (unless the test ran so long that its first points
	// were dropped).
	a.waitJS("the chart's points", `Number(document.querySelector('canvas[data-test=chart]').dataset.points) >= 3`, 15*time.Second)
	var chart struct {
		Sent int64  `json:"sent"`
		Full string `json:"full"`
	}
	a.eval(`(() => { const c = document.querySelector('canvas[data-test=chart]'); return { sent: Number(c.dataset.sent), full: c.dataset.full }; })()`, &chart)
	if chart.Full != "true" && chart.Sent < 64<<20 {
		t.Fatalf("the rate chart's points add up to %d bytes sent; alice uploaded 64 MiB", chart.Sent)
	}
	t.Logf("the rate chart's points add up to %d bytes sent", chart.Sent)
	a.screenshot("status")
	a.checkClean()
	b.checkClean()
}

// apiCall sends one request to a daemon's API socket (as the CLI does)
// and fails the test unless it succeeds.
func apiCall(t *testing.T, home, method, path, body string) string {
	t.Helper()
	sock := filepath.Join(home, api.SocketFile)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, _ := http.NewRequest(method, "http://kith"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return string(b)
}
