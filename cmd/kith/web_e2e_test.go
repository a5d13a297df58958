package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kith/node"
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
	var idA, idB, idC node.InviteInfo
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
		tb.click(`[data-test=copy-invite]`)
		tb.waitJS("the copy toast", `document.querySelector('#toasts').textContent.includes('invite copied')`, 5*time.Second)
		var v string
		tb.eval(`document.querySelector('[data-test=my-invite]').value`, &v)
		return v
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
	os.WriteFile(filepath.Join(films, "notes.txt"), []byte("films to watch\n"), 0o600)
	a.open("#/shares")
	a.setValue(`[data-test=share-dir]`, films)
	a.click(`[data-test=share-add]`)
	a.waitJS("the share listed with its files", `(() => { const c = document.querySelector('[data-test=share-files]'); return c && c.textContent === '2'; })()`, 60*time.Second)
	a.click(`[data-test=share-show-files]`)
	a.waitJS("the share's files and links", `document.querySelectorAll('[data-test=copy-link]').length === 2`, 10*time.Second)
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
	b.click(`tr[data-test=file] [data-test=download]`)

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
	b.waitJS("read: the unread count gone", `document.querySelector('#unread').hidden`, 10*time.Second)
	// bob types: alice sees the notice; then his answer, delivered.
	b.typeKeys(`[data-test=compose]`, "yes, thanks")
	a.waitJS("alice sees bob typing", `document.querySelector('[data-test=typing]').textContent.includes('bob is typing')`, 10*time.Second)
	b.typeKeys(`[data-test=compose]`, "! 64 MiB in a few seconds\r")
	a.waitJS("bob's answer at alice's", `[...document.querySelectorAll('[data-test=msg]')].some((m) => m.textContent.includes('yes, thanks! 64 MiB in a few seconds'))`, 10*time.Second)
	b.waitJS("bob's delivery tick", `[...document.querySelectorAll('.msg.out [data-test=tick]')].some((e) => e.dataset.delivered === 'true')`, 20*time.Second)
	a.waitJS("alice read it: no unread count", `document.querySelector('#unread').hidden`, 10*time.Second)
	a.screenshot("chat")

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
	// The chart has sampled the rates since alice's page opened: her
	// upload of the 64 MiB file to bob, at up to 12 MiB/s, is its peak.
	a.waitJS("the chart's points", `Number(document.querySelector('canvas[data-test=chart]').dataset.points) >= 3`, 15*time.Second)
	var peak int64
	a.eval(`Number(document.querySelector('canvas[data-test=chart]').dataset.peak)`, &peak)
	if peak < 2<<20 {
		t.Fatalf("the rate chart's peak is %d B/s; alice uploaded 64 MiB at up to 12 MiB/s", peak)
	}
	a.screenshot("status")
	a.checkClean()
	b.checkClean()
}
